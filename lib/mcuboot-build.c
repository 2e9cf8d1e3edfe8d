/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MCUboot image writer: the same layout `imgtool sign` produces (imgtool
 * image.py create): header padded with zeros to hdr_size, the body, the
 * protected TLV area when there are protected TLVs, then the unprotected
 * area with the hash TLV, and when signing a KEYHASH TLV followed by the
 * signature TLV.  What the signature covers is described at the top of
 * mcuboot-verify.c.  OpenSSL is called through libcrypto-dlopen.h, loaded
 * by mcuboot_key_from_pkey() when there is a key to sign with: unsigned
 * images (smpsim's, the tests') never load it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libcrypto-dlopen.h"
#include "sha-digest.h"
#include "smpgw/mcuboot-image.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, sym_EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, sym_EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_key *, mcuboot_key_free);

/* Large enough for any signature we make: RSA-3072 is 384 bytes, a DER
 * ECDSA P-384 signature at most 104. */
#define SIG_MAX 512u

static uint8_t *put_tlv(uint8_t *p, uint16_t type, const void *value, uint16_t len) {
        unaligned_write_le16(p, type);
        unaligned_write_le16(p + 2, len);
        if (len > 0)
                memcpy(p + MCUBOOT_TLV_HEADER_SIZE, value, len);
        return p + MCUBOOT_TLV_HEADER_SIZE + len;
}

/* Signs digest (of the image region) the way MCUboot verifies it for this
 * key type.  Returns the signature TLV type, or a negative errno. */
static int sign_digest(EVP_PKEY *pkey, const char *key_type, const uint8_t *digest,
                       size_t digest_len, uint8_t *sig, size_t *sig_len) {
        if (streq(key_type, "ed25519")) {
                /* Ed25519 signs the digest as its message (image_ed25519.c). */
                _cleanup_(sym_EVP_MD_CTX_freep) EVP_MD_CTX *mctx = sym_EVP_MD_CTX_new();
                if (!mctx || sym_EVP_DigestSignInit(mctx, NULL, NULL, NULL, pkey) != 1 ||
                    sym_EVP_DigestSign(mctx, sig, sig_len, digest, digest_len) != 1)
                        return -EIO;
                return MCUBOOT_TLV_ED25519;
        }

        _cleanup_(sym_EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = sym_EVP_PKEY_CTX_new(pkey, NULL);
        if (!ctx || sym_EVP_PKEY_sign_init(ctx) != 1)
                return -EIO;
        int type;
        if (streq(key_type, "ecdsa-p256") || streq(key_type, "ecdsa-p384"))
                type = MCUBOOT_TLV_ECDSA_SIG;
        else {
                /* RSA-PSS, SHA-256, MGF1-SHA-256, salt 32 (image_rsa.c). */
                if (sym_EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                    sym_EVP_PKEY_CTX_set_signature_md(ctx, sym_EVP_sha256()) != 1 ||
                    sym_EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, sym_EVP_sha256()) != 1 ||
                    sym_EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) != 1)
                        return -EIO;
                type = streq(key_type, "rsa-2048") ? MCUBOOT_TLV_RSA2048_PSS
                                                   : MCUBOOT_TLV_RSA3072_PSS;
        }
        if (sym_EVP_PKEY_sign(ctx, sig, sig_len, digest, digest_len) != 1)
                return -EIO;
        return type;
}

int mcuboot_image_build(const struct mcuboot_build_params *params, uint8_t **ret_data,
                        size_t *ret_size) {
        _cleanup_(mcuboot_key_freep) struct mcuboot_key *key = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        int r;

        if (!params || !ret_data || !ret_size || (!params->body && params->body_size > 0) ||
            (!params->protected_tlvs && params->n_protected_tlvs > 0))
                return -EINVAL;

        size_t hdr_size = params->hdr_size ?: MCUBOOT_HEADER_SIZE;
        if (hdr_size < MCUBOOT_HEADER_SIZE || params->body_size > UINT32_MAX)
                return -EINVAL;

        size_t prot_size = 0;
        if (params->n_protected_tlvs > 0) {
                prot_size = MCUBOOT_TLV_INFO_SIZE;
                for (size_t i = 0; i < params->n_protected_tlvs; i++) {
                        const struct mcuboot_tlv_spec *t = &params->protected_tlvs[i];
                        if (!t->value && t->len > 0)
                                return -EINVAL;
                        prot_size += MCUBOOT_TLV_HEADER_SIZE + t->len;
                        /* tlv_tot and protect_tlv_size are 16 bits */
                        if (prot_size > UINT16_MAX)
                                return -E2BIG;
                }
        }

        /* The hash follows the key as imgtool picks it: SHA-384 for P-384. */
        const char *key_type = NULL;
        size_t hash_len = SHA256_DIGEST_SIZE;
        uint16_t hash_type = MCUBOOT_TLV_SHA256;
        if (params->sign_key) {
                r = mcuboot_key_from_pkey(params->sign_key, NULL, &key);
                if (r < 0)
                        return r;
                key_type = mcuboot_key_type(key);
                if (streq(key_type, "ecdsa-p384")) {
                        hash_len = SHA384_DIGEST_SIZE;
                        hash_type = MCUBOOT_TLV_SHA384;
                }
        }

        size_t region = hdr_size + params->body_size + prot_size;
        size_t tlv_max = MCUBOOT_TLV_INFO_SIZE + MCUBOOT_TLV_HEADER_SIZE + hash_len +
                         (key ? 2 * MCUBOOT_TLV_HEADER_SIZE + hash_len + SIG_MAX : 0);
        data = calloc(1, region + tlv_max);
        if (!data)
                return -ENOMEM;

        uint8_t *p = data;
        unaligned_write_le32(p + 0, MCUBOOT_IMAGE_MAGIC);
        unaligned_write_le32(p + 4, params->load_addr);
        unaligned_write_le16(p + 8, (uint16_t) hdr_size);
        unaligned_write_le16(p + 10, (uint16_t) prot_size);
        unaligned_write_le32(p + 12, (uint32_t) params->body_size);
        unaligned_write_le32(p + 16, params->flags);
        p[20] = params->version.major;
        p[21] = params->version.minor;
        unaligned_write_le16(p + 22, params->version.revision);
        unaligned_write_le32(p + 24, params->version.build);
        p += hdr_size;
        if (params->body_size > 0)
                memcpy(p, params->body, params->body_size);
        p += params->body_size;

        if (prot_size > 0) {
                unaligned_write_le16(p, MCUBOOT_TLV_PROT_INFO_MAGIC);
                unaligned_write_le16(p + 2, (uint16_t) prot_size);
                p += MCUBOOT_TLV_INFO_SIZE;
                for (size_t i = 0; i < params->n_protected_tlvs; i++) {
                        const struct mcuboot_tlv_spec *t = &params->protected_tlvs[i];
                        p = put_tlv(p, t->type, t->value, t->len);
                }
        }

        /* Everything so far is the hashed region (bootutil_img_hash.c). */
        uint8_t digest[MCUBOOT_DIGEST_MAX];
        r = sha2_of(hash_len, data, region, digest);
        if (r < 0)
                return r;

        uint8_t *tlv_info = p;
        p += MCUBOOT_TLV_INFO_SIZE;
        p = put_tlv(p, hash_type, digest, (uint16_t) hash_len);

        if (key) {
                /* KEYHASH: the image's hash algorithm over the key bytes a
                 * bootloader embeds (imgtool image.py create). */
                size_t pub_size;
                const uint8_t *pub = mcuboot_key_public_bytes(key, &pub_size);
                uint8_t keyhash[MCUBOOT_DIGEST_MAX];
                r = sha2_of(hash_len, pub, pub_size, keyhash);
                if (r < 0)
                        return r;
                p = put_tlv(p, MCUBOOT_TLV_KEYHASH, keyhash, (uint16_t) hash_len);

                uint8_t sig[SIG_MAX];
                size_t sig_len = sizeof(sig);
                r = sign_digest(params->sign_key, key_type, digest, hash_len, sig, &sig_len);
                if (r < 0)
                        return r;
                p = put_tlv(p, (uint16_t) r, sig, (uint16_t) sig_len);
        }

        size_t tlv_size = (size_t) (p - tlv_info);
        unaligned_write_le16(tlv_info, MCUBOOT_TLV_INFO_MAGIC);
        unaligned_write_le16(tlv_info + 2, (uint16_t) tlv_size);

        *ret_size = (size_t) (p - data);
        *ret_data = TAKE_PTR(data);
        return 0;
}
