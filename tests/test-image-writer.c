/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MCUboot image writer for tests, independent of lib/mcuboot-build.c: its
 * own byte packing, and OpenSSL's one-shot DigestSign (which hashes the
 * region itself) where the library signs a precomputed digest.  The facts
 * it encodes are MCUboot's (image.h, bootutil_img_hash.c, image_*.c) and
 * imgtool's (image.py create).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "test-image-writer.h"

#define CHECK(expr)                                                                    \
        do {                                                                           \
                if (!(expr)) {                                                         \
                        fprintf(stderr, "%s:%d: test image writer: %s failed\n",       \
                                __FILE__, __LINE__, #expr);                            \
                        abort();                                                       \
                }                                                                      \
        } while (0)

EVP_PKEY *tiw_key_new(enum tiw_key_type type) {
        EVP_PKEY *pkey = NULL;

        switch (type) {
        case TIW_KEY_ECDSA_P256:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
                break;
        case TIW_KEY_ECDSA_P384:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
                break;
        case TIW_KEY_ED25519:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
                break;
        case TIW_KEY_RSA_2048:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
                break;
        }
        CHECK(pkey);
        return pkey;
}

struct out {
        uint8_t *buf;
        size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n) {
        if (o->len + n > o->cap) {
                o->cap = (o->len + n) * 2;
                o->buf = realloc(o->buf, o->cap);
                CHECK(o->buf);
        }
        memcpy(o->buf + o->len, p, n);
        o->len += n;
}

static void put_u8(struct out *o, uint8_t v) {
        put(o, &v, 1);
}

static void put_u16(struct out *o, uint16_t v) {
        put_u8(o, v & 0xff);
        put_u8(o, v >> 8);
}

static void put_u32(struct out *o, uint32_t v) {
        put_u16(o, v & 0xffff);
        put_u16(o, v >> 16);
}

static void set_u16(struct out *o, size_t at, uint16_t v) {
        o->buf[at] = v & 0xff;
        o->buf[at + 1] = v >> 8;
}

static void put_tlv(struct out *o, uint16_t type, const void *value, size_t len) {
        CHECK(len <= 0xffff);
        put_u16(o, type);
        put_u16(o, (uint16_t) len);
        put(o, value, len);
}

static int key_kind(EVP_PKEY *key) {
        if (EVP_PKEY_is_a(key, "ED25519"))
                return TIW_KEY_ED25519;
        if (EVP_PKEY_is_a(key, "RSA"))
                return TIW_KEY_RSA_2048;
        char group[32];
        CHECK(EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                             NULL) == 1);
        return strcmp(group, "secp384r1") == 0 ? TIW_KEY_ECDSA_P384 : TIW_KEY_ECDSA_P256;
}

/* The key bytes a bootloader embeds (imgtool getpub): PKCS#1 for RSA,
 * SubjectPublicKeyInfo otherwise; written with OSSL_ENCODER here. */
static void key_public_der(EVP_PKEY *key, uint8_t **ret, size_t *ret_len) {
        const char *structure = EVP_PKEY_is_a(key, "RSA") ? "type-specific" : "SubjectPublicKeyInfo";
        OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_PUBLIC_KEY, "DER",
                                                              structure, NULL);
        CHECK(ctx);
        *ret = NULL;
        *ret_len = 0;
        CHECK(OSSL_ENCODER_to_data(ctx, ret, ret_len) == 1);
        OSSL_ENCODER_CTX_free(ctx);
}

void tiw_build(const struct tiw_params *p, uint8_t **ret, size_t *ret_size,
               struct tiw_layout *ret_layout) {
        struct out o = {};
        struct tiw_layout l = {};
        uint16_t hdr_size = p->hdr_size ? p->hdr_size : 0x200;
        uint16_t prot_size = p->sec_cnt ? 4 + 4 + 4 : 0;
        int kind = p->key ? key_kind(p->key) : -1;
        const EVP_MD *md = kind == TIW_KEY_ECDSA_P384 ? EVP_sha384() : EVP_sha256();
        uint16_t hash_tlv = kind == TIW_KEY_ECDSA_P384 ? 0x11 : 0x10;

        put_u32(&o, 0x96f3b83d);
        put_u32(&o, p->load_addr);
        put_u16(&o, hdr_size);
        put_u16(&o, prot_size);
        put_u32(&o, (uint32_t) p->body_size);
        put_u32(&o, p->flags);
        put_u8(&o, p->major);
        put_u8(&o, p->minor);
        put_u16(&o, p->revision);
        put_u32(&o, p->build);
        put_u32(&o, 0);
        while (o.len < hdr_size)
                put_u8(&o, 0);
        for (size_t i = 0; i < p->body_size; i++)
                put_u8(&o, (uint8_t) (i * 31 + p->body_seed));

        if (p->sec_cnt) {
                l.prot_off = o.len;
                put_u16(&o, 0x6908);
                put_u16(&o, prot_size);
                uint8_t v[4] = { p->sec_cnt_value & 0xff, (p->sec_cnt_value >> 8) & 0xff,
                                 (p->sec_cnt_value >> 16) & 0xff, p->sec_cnt_value >> 24 };
                put_tlv(&o, 0x50, v, sizeof(v));
        }
        size_t region = o.len;

        uint8_t digest[EVP_MAX_MD_SIZE];
        unsigned digest_len;
        CHECK(EVP_Digest(o.buf, region, digest, &digest_len, md, NULL) == 1);

        l.tlv_off = o.len;
        put_u16(&o, 0x6907);
        put_u16(&o, 0); /* total, patched below */
        if (!p->no_hash) {
                l.hash_value_off = o.len + 4;
                put_tlv(&o, hash_tlv, digest, digest_len);
                if (p->two_sha256)
                        put_tlv(&o, hash_tlv, digest, digest_len);
        }

        if (p->key) {
                if (!p->no_keyhash) {
                        uint8_t *pub;
                        size_t pub_len;
                        uint8_t keyhash[EVP_MAX_MD_SIZE];
                        unsigned keyhash_len;
                        key_public_der(p->key, &pub, &pub_len);
                        CHECK(EVP_Digest(pub, pub_len, keyhash, &keyhash_len, md, NULL) == 1);
                        OPENSSL_free(pub);
                        put_tlv(&o, 0x01, keyhash, keyhash_len);
                }

                uint8_t sig[1024];
                size_t sig_len = sizeof(sig);
                uint16_t sig_tlv;
                EVP_MD_CTX *mctx = EVP_MD_CTX_new();
                EVP_PKEY_CTX *pctx = NULL;
                CHECK(mctx);
                switch (kind) {
                case TIW_KEY_ED25519:
                        /* PureEdDSA over the 32-byte image digest. */
                        CHECK(EVP_DigestSignInit(mctx, NULL, NULL, NULL, p->key) == 1);
                        CHECK(EVP_DigestSign(mctx, sig, &sig_len, digest, digest_len) == 1);
                        sig_tlv = 0x24;
                        break;
                case TIW_KEY_RSA_2048:
                        /* hashes the region itself: same as signing its digest */
                        CHECK(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL, p->key) == 1);
                        CHECK(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
                        CHECK(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1);
                        CHECK(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1);
                        CHECK(EVP_DigestSign(mctx, sig, &sig_len, o.buf, region) == 1);
                        sig_tlv = 0x20;
                        break;
                default:
                        CHECK(EVP_DigestSignInit(mctx, NULL, md, NULL, p->key) == 1);
                        CHECK(EVP_DigestSign(mctx, sig, &sig_len, o.buf, region) == 1);
                        sig_tlv = 0x22;
                        break;
                }
                EVP_MD_CTX_free(mctx);
                l.sig_tlv_off = o.len;
                l.sig_value_off = o.len + 4;
                l.sig_len = sig_len;
                put_tlv(&o, sig_tlv, sig, sig_len);
        }
        set_u16(&o, l.tlv_off + 2, (uint16_t) (o.len - l.tlv_off));
        l.end = o.len;

        *ret = o.buf;
        *ret_size = o.len;
        if (ret_layout)
                *ret_layout = l;
}
