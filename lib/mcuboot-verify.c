/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Signature verification of MCUboot images with OpenSSL, loaded when the
 * first key is (libcrypto-dlopen.h: every OpenSSL call is a sym_*
 * pointer, and a struct mcuboot_key exists only once it is).  What each
 * signature covers, and which key bytes a KEYHASH TLV hashes, come from
 * MCUboot itself (boot/bootutil/src/ in mcu-tools/mcuboot, v2.4.0-114):
 *
 *  - image_validate.c, bootutil_img_validate(): the signature TLV is checked
 *    against the key named by the KEYHASH (or PUBKEY) TLV that precedes it;
 *    the key choice is reset after each signature TLV; a signature whose
 *    key is not found is skipped.  The message is the computed image hash,
 *    or with MCUBOOT_SIGN_PURE the region [0, hdr+img+protected) itself.
 *  - bootutil_find_key.c: KEYHASH = hash of the key bytes as embedded in the
 *    bootloader, compared over the TLV's length.  Those bytes are what
 *    `imgtool getpub` prints: DER SubjectPublicKeyInfo for EC and Ed25519
 *    (imgtool keys/ecdsa.py, keys/ed25519.py get_public_bytes), DER PKCS#1
 *    RSAPublicKey for RSA (keys/rsa.py; image_rsa.c parses RFC 3447 A.1.1).
 *    imgtool hashes them with the image's hash algorithm (image.py create),
 *    so the TLV length tells SHA-256/384/512.
 *  - image_ecdsa.c + include/bootutil/crypto/ecdsa.h: ECDSA_SIG is a DER
 *    SEQUENCE of r and s over the SHA-256 (P-256) or SHA-384 (P-384) digest;
 *    bytes after the SEQUENCE are ignored (imgtool --pad-sig adds zeros).
 *  - image_ed25519.c: ED25519 signs the image digest itself (mlen must be
 *    IMAGE_HASH_SIZE unless MCUBOOT_SIGN_PURE), a 64-byte signature;
 *    imgtool keys/ed25519.py sign_digest(digest).
 *  - image_rsa.c: RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32; the
 *    signature is exactly the modulus size (256 for RSA2048_PSS, 384 for
 *    RSA3072_PSS).
 *  - SIG_PURE (imgtool --pure, Ed25519 only): a 1-byte TLV with value 1 that
 *    marks the ED25519 TLV as signed over the region (image.py create and
 *    verify; image_validate.c bootutil_check_for_pure).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libcrypto-dlopen.h"
#include "sha-digest.h"
#include "smpgw/mcuboot-image.h"
#include "util.h"

/* Key files are a few hundred bytes; this only bounds a wrong argument. */
#define KEY_FILE_MAX (1024u * 1024u)

enum key_kind {
        KEY_ECDSA_P256,
        KEY_ECDSA_P384,
        KEY_ED25519,
        KEY_RSA_2048,
        KEY_RSA_3072,
};

struct mcuboot_key {
        EVP_PKEY *pkey;
        enum key_kind kind;
        char *label;
        uint8_t *public_bytes;  /* what a bootloader embeds, see above */
        size_t public_size;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, sym_EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, sym_EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, sym_EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, sym_BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_key *, mcuboot_key_free);

/* OPENSSL_free(), which is CRYPTO_free() with the caller's place. */
static void openssl_freep(void *p) {
        if (*(void **) p)
                sym_CRYPTO_free(*(void **) p, OPENSSL_FILE, OPENSSL_LINE);
}

struct mcuboot_key *mcuboot_key_free(struct mcuboot_key *key) {
        if (!key)
                return NULL;
        if (key->pkey)
                sym_EVP_PKEY_free(key->pkey);
        free(key->label);
        free(key->public_bytes);
        free(key);
        return NULL;
}

const char *mcuboot_key_label(const struct mcuboot_key *key) {
        return key ? key->label : NULL;
}

const char *mcuboot_key_type(const struct mcuboot_key *key) {
        if (!key)
                return NULL;
        switch (key->kind) {
        case KEY_ECDSA_P256: return "ecdsa-p256";
        case KEY_ECDSA_P384: return "ecdsa-p384";
        case KEY_ED25519: return "ed25519";
        case KEY_RSA_2048: return "rsa-2048";
        case KEY_RSA_3072: return "rsa-3072";
        }
        return NULL;
}

const uint8_t *mcuboot_key_public_bytes(const struct mcuboot_key *key, size_t *ret_size) {
        if (!key || !ret_size)
                return NULL;
        *ret_size = key->public_size;
        return key->public_bytes;
}

static int ec_curve_nid(EVP_PKEY *pkey) {
        char name[64];
        if (sym_EVP_PKEY_get_group_name(pkey, name, sizeof(name), NULL) != 1)
                return NID_undef;
        int nid = sym_OBJ_sn2nid(name);
        return nid != NID_undef ? nid : sym_OBJ_txt2nid(name);
}

static int key_classify(EVP_PKEY *pkey, enum key_kind *ret) {
        switch (sym_EVP_PKEY_get_base_id(pkey)) {
        case EVP_PKEY_EC:
                switch (ec_curve_nid(pkey)) {
                case NID_X9_62_prime256v1:
                        *ret = KEY_ECDSA_P256;
                        return 0;
                case NID_secp384r1:
                        *ret = KEY_ECDSA_P384;
                        return 0;
                default:
                        return -EOPNOTSUPP;
                }
        case EVP_PKEY_ED25519:
                *ret = KEY_ED25519;
                return 0;
        case EVP_PKEY_RSA:
                switch (sym_EVP_PKEY_get_bits(pkey)) {
                case 2048:
                        *ret = KEY_RSA_2048;
                        return 0;
                case 3072:
                        *ret = KEY_RSA_3072;
                        return 0;
                default:
                        return -EOPNOTSUPP;
                }
        default:
                return -EOPNOTSUPP;
        }
}

int mcuboot_key_from_pkey(EVP_PKEY *pkey, const char *label, struct mcuboot_key **ret) {
        _cleanup_(mcuboot_key_freep) struct mcuboot_key *key = NULL;
        enum key_kind kind;
        int r;

        if (!pkey || !ret)
                return -EINVAL;
        /* The caller's pkey comes from libcrypto, so it is mapped already;
         * this only finds it. */
        r = libcrypto_dlopen();
        if (r < 0)
                return r;
        r = key_classify(pkey, &kind);
        if (r < 0)
                return r;

        key = calloc(1, sizeof(*key));
        if (!key)
                return -ENOMEM;
        key->kind = kind;
        key->label = strdup(label ?: "");
        if (!key->label)
                return -ENOMEM;
        if (sym_EVP_PKEY_up_ref(pkey) != 1)
                return -EIO;
        key->pkey = pkey;

        /* RSA keys are embedded as PKCS#1 RSAPublicKey, everything else as
         * SubjectPublicKeyInfo (see the top of this file). */
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        int n = kind == KEY_RSA_2048 || kind == KEY_RSA_3072 ? sym_i2d_PublicKey(pkey, &der)
                                                             : sym_i2d_PUBKEY(pkey, &der);
        if (n <= 0)
                return -EIO;
        key->public_bytes = malloc((size_t) n);
        if (!key->public_bytes)
                return -ENOMEM;
        memcpy(key->public_bytes, der, (size_t) n);
        key->public_size = (size_t) n;

        *ret = TAKE_PTR(key);
        return 0;
}

/* One DER blob: SubjectPublicKeyInfo, any private key format OpenSSL
 * recognises without a passphrase, or a PKCS#1 RSAPublicKey. */
static EVP_PKEY *pkey_from_der(const uint8_t *der, size_t size) {
        const unsigned char *p;
        EVP_PKEY *pkey;

        if (size > LONG_MAX)
                return NULL;
        p = der;
        pkey = sym_d2i_PUBKEY(NULL, &p, (long) size);
        if (pkey && p == der + size)
                return pkey;
        sym_EVP_PKEY_free(pkey);
        p = der;
        pkey = sym_d2i_AutoPrivateKey(NULL, &p, (long) size);
        if (pkey && p == der + size)
                return pkey;
        sym_EVP_PKEY_free(pkey);
        p = der;
        pkey = sym_d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long) size);
        if (pkey && p == der + size)
                return pkey;
        sym_EVP_PKEY_free(pkey);
        return NULL;
}

int mcuboot_key_load_mem(const void *data, size_t size, const char *label,
                         struct mcuboot_key **ret) {
        _cleanup_(sym_EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!data || !ret || size > INT_MAX)
                return -EINVAL;
        r = libcrypto_dlopen();
        if (r < 0)
                return r;

        /* PEM: take the first block whatever its label says ("PUBLIC KEY",
         * "PRIVATE KEY", "EC PRIVATE KEY", "RSA PUBLIC KEY", ...) and let the
         * DER decoders work out what it is. */
        _cleanup_(sym_BIO_freep) BIO *bio = sym_BIO_new_mem_buf(data, (int) size);
        if (!bio)
                return -ENOMEM;
        _cleanup_(openssl_freep) char *name = NULL;
        _cleanup_(openssl_freep) char *header = NULL;
        _cleanup_(openssl_freep) unsigned char *der = NULL;
        long der_len = 0;
        if (sym_PEM_read_bio(bio, &name, &header, &der, &der_len) == 1 && der_len > 0)
                pkey = pkey_from_der(der, (size_t) der_len);
        else
                pkey = pkey_from_der(data, size);
        if (!pkey)
                return -EBADMSG;

        return mcuboot_key_from_pkey(pkey, label, ret);
}

int mcuboot_key_load_file(const char *path, struct mcuboot_key **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        size_t size = 0;

        if (!path || !ret)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        if (st.st_size > (off_t) KEY_FILE_MAX)
                return -EFBIG;
        data = malloc(KEY_FILE_MAX + 1);
        if (!data)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, data + size, KEY_FILE_MAX + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > KEY_FILE_MAX)
                        return -EFBIG;
        }
        return mcuboot_key_load_mem(data, size, path, ret);
}

const char *mcuboot_sig_status_to_string(enum mcuboot_sig_status status) {
        switch (status) {
        case MCUBOOT_SIG_VALID: return "valid";
        case MCUBOOT_SIG_INVALID: return "invalid";
        case MCUBOOT_SIG_NO_KEY: return "no key";
        case MCUBOOT_SIG_MALFORMED: return "malformed";
        case MCUBOOT_SIG_UNSUPPORTED: return "unsupported";
        }
        return NULL;
}

const char *mcuboot_key_match_to_string(enum mcuboot_key_match match) {
        switch (match) {
        case MCUBOOT_KEY_MATCH_NONE: return "none";
        case MCUBOOT_KEY_MATCH_KEYHASH: return "keyhash";
        case MCUBOOT_KEY_MATCH_PUBKEY: return "pubkey";
        case MCUBOOT_KEY_MATCH_TRIAL: return "trial";
        }
        return NULL;
}

static bool is_sig_tlv(uint16_t type) {
        return type == MCUBOOT_TLV_RSA2048_PSS || type == MCUBOOT_TLV_ECDSA224 ||
               type == MCUBOOT_TLV_ECDSA_SIG || type == MCUBOOT_TLV_RSA3072_PSS ||
               type == MCUBOOT_TLV_ED25519;
}

static bool key_fits_tlv(const struct mcuboot_key *key, uint16_t type) {
        switch (type) {
        case MCUBOOT_TLV_ECDSA_SIG:
                return key->kind == KEY_ECDSA_P256 || key->kind == KEY_ECDSA_P384;
        case MCUBOOT_TLV_ED25519:
                return key->kind == KEY_ED25519;
        case MCUBOOT_TLV_RSA2048_PSS:
                return key->kind == KEY_RSA_2048;
        case MCUBOOT_TLV_RSA3072_PSS:
                return key->kind == KEY_RSA_3072;
        default:
                return false;
        }
}

/* The hash is the one of the TLV's length: SHA-256, -384 or -512. */
static bool key_matches_keyhash(const struct mcuboot_key *key, const struct mcuboot_tlv *tlv) {
        uint8_t digest[MCUBOOT_DIGEST_MAX];

        if (sha2_of(tlv->len, key->public_bytes, key->public_size, digest) < 0)
                return false;
        return memcmp(digest, tlv->value, tlv->len) == 0;
}

static bool key_matches_pubkey(const struct mcuboot_key *key, const struct mcuboot_tlv *tlv) {
        return tlv->len == key->public_size &&
               memcmp(tlv->value, key->public_bytes, key->public_size) == 0;
}

/* The length of the DER SEQUENCE at the start of sig, if the bytes after it
 * are zeros (imgtool --pad-sig); 0 when sig is not such a thing.  Only the
 * short and one-byte long length forms fit ECDSA signatures. */
static size_t ecdsa_der_length(const uint8_t *sig, size_t len) {
        size_t der_len;

        if (len < 2 || sig[0] != 0x30)
                return 0;
        if (sig[1] < 0x80)
                der_len = 2 + (size_t) sig[1];
        else if (sig[1] == 0x81 && len >= 3)
                der_len = 3 + (size_t) sig[2];
        else
                return 0;
        if (der_len > len)
                return 0;
        for (size_t i = der_len; i < len; i++)
                if (sig[i] != 0)
                        return 0;
        return der_len;
}

struct verify_input {
        const struct mcuboot_image *image;
        size_t region_size;        /* hdr + img + protected TLVs */
        uint8_t sha256[32];
        uint8_t sha384[48];
};

/* 1 valid, 0 invalid, -EBADMSG malformed (detail says why), -EIO. */
static int verify_one(const struct verify_input *in, const struct mcuboot_tlv *sig,
                      const struct mcuboot_key *key, char *detail, size_t detail_size) {
        switch (sig->type) {
        case MCUBOOT_TLV_ECDSA_SIG: {
                size_t der_len = ecdsa_der_length(sig->value, sig->len);
                if (der_len == 0) {
                        snprintf(detail, detail_size,
                                 "not a DER SEQUENCE (optionally zero-padded)");
                        return -EBADMSG;
                }
                _cleanup_(sym_EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = sym_EVP_PKEY_CTX_new(key->pkey, NULL);
                if (!ctx || sym_EVP_PKEY_verify_init(ctx) != 1)
                        return -EIO;
                bool p384 = key->kind == KEY_ECDSA_P384;
                const uint8_t *digest = p384 ? in->sha384 : in->sha256;
                /* < 0 is a signature OpenSSL cannot decode: still "invalid"
                 * for this key, as MCUboot would fail it too. */
                return sym_EVP_PKEY_verify(ctx, sig->value, der_len, digest, p384 ? 48 : 32) == 1;
        }
        case MCUBOOT_TLV_RSA2048_PSS:
        case MCUBOOT_TLV_RSA3072_PSS: {
                size_t want = sig->type == MCUBOOT_TLV_RSA2048_PSS ? 256 : 384;
                if (sig->len != want) {
                        snprintf(detail, detail_size, "length %u, expected %zu", sig->len, want);
                        return -EBADMSG;
                }
                _cleanup_(sym_EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = sym_EVP_PKEY_CTX_new(key->pkey, NULL);
                if (!ctx || sym_EVP_PKEY_verify_init(ctx) != 1 ||
                    sym_EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                    sym_EVP_PKEY_CTX_set_signature_md(ctx, sym_EVP_sha256()) != 1 ||
                    sym_EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, sym_EVP_sha256()) != 1 ||
                    sym_EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) != 1)
                        return -EIO;
                return sym_EVP_PKEY_verify(ctx, sig->value, sig->len, in->sha256, 32) == 1;
        }
        case MCUBOOT_TLV_ED25519: {
                if (sig->len != 64) {
                        snprintf(detail, detail_size, "length %u, expected 64", sig->len);
                        return -EBADMSG;
                }
                const uint8_t *msg = in->image->sig_pure ? in->image->data : in->image->hash;
                size_t msg_len = in->image->sig_pure ? in->region_size : in->image->hash_len;
                _cleanup_(sym_EVP_MD_CTX_freep) EVP_MD_CTX *mctx = sym_EVP_MD_CTX_new();
                if (!mctx || sym_EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key->pkey) != 1)
                        return -EIO;
                return sym_EVP_DigestVerify(mctx, sig->value, sig->len, msg, msg_len) == 1;
        }
        default:
                return -EBADMSG;
        }
}

static int verify_signature(const struct verify_input *in, const struct mcuboot_tlv *sig,
                            const struct mcuboot_tlv *key_tlv, struct mcuboot_key *const *keys,
                            size_t n_keys, struct mcuboot_sig_result *res) {
        int r;

        *res = (struct mcuboot_sig_result) {
                .sig_tlv = sig,
                .key_tlv = key_tlv,
                .status = MCUBOOT_SIG_NO_KEY,
                .key_match = MCUBOOT_KEY_MATCH_NONE,
                .key_index = SIZE_MAX,
                .pure = in->image->sig_pure && sig->type == MCUBOOT_TLV_ED25519,
        };

        if (in->image->flags & (MCUBOOT_FLAG_ENCRYPTED_AES128 | MCUBOOT_FLAG_ENCRYPTED_AES256)) {
                res->status = MCUBOOT_SIG_UNSUPPORTED;
                snprintf(res->detail, sizeof(res->detail),
                         "image is encrypted: the signature covers the plaintext");
                return 0;
        }
        if (sig->type == MCUBOOT_TLV_ECDSA224) {
                res->status = MCUBOOT_SIG_UNSUPPORTED;
                snprintf(res->detail, sizeof(res->detail),
                         "ECDSA224 was dropped from MCUboot and is not supported");
                return 0;
        }
        if (in->image->sig_pure && sig->type != MCUBOOT_TLV_ED25519) {
                res->status = MCUBOOT_SIG_UNSUPPORTED;
                snprintf(res->detail, sizeof(res->detail),
                         "SIG_PURE is defined for Ed25519 signatures only");
                return 0;
        }

        /* The key TLV picks the one key MCUboot would use. */
        if (key_tlv) {
                enum mcuboot_key_match how = key_tlv->type == MCUBOOT_TLV_KEYHASH
                                                     ? MCUBOOT_KEY_MATCH_KEYHASH
                                                     : MCUBOOT_KEY_MATCH_PUBKEY;
                for (size_t k = 0; k < n_keys; k++) {
                        bool named = how == MCUBOOT_KEY_MATCH_KEYHASH
                                             ? key_matches_keyhash(keys[k], key_tlv)
                                             : key_matches_pubkey(keys[k], key_tlv);
                        if (!named)
                                continue;
                        res->key_index = k;
                        res->key_match = how;
                        if (!key_fits_tlv(keys[k], sig->type)) {
                                res->status = MCUBOOT_SIG_INVALID;
                                snprintf(res->detail, sizeof(res->detail),
                                         "the %s key named by %s cannot make a %s signature",
                                         mcuboot_key_type(keys[k]),
                                         mcuboot_tlv_type_to_string(key_tlv->type),
                                         mcuboot_tlv_type_to_string(sig->type));
                                return 0;
                        }
                        r = verify_one(in, sig, keys[k], res->detail, sizeof(res->detail));
                        if (r == -EBADMSG) {
                                res->status = MCUBOOT_SIG_MALFORMED;
                                return 0;
                        }
                        if (r < 0)
                                return r;
                        res->status = r ? MCUBOOT_SIG_VALID : MCUBOOT_SIG_INVALID;
                        return 0;
                }
                snprintf(res->detail, sizeof(res->detail), "%s",
                         n_keys == 0 ? "no keys given"
                                     : how == MCUBOOT_KEY_MATCH_KEYHASH
                                               ? "no given key has the hash in the KEYHASH TLV"
                                               : "no given key equals the PUBKEY TLV");
                return 0;
        }

        /* No key TLV (MCUBOOT_BUILTIN_KEY style): try every key that can
         * make this kind of signature. */
        bool tried = false;
        for (size_t k = 0; k < n_keys; k++) {
                if (!key_fits_tlv(keys[k], sig->type))
                        continue;
                tried = true;
                r = verify_one(in, sig, keys[k], res->detail, sizeof(res->detail));
                if (r == -EBADMSG) {
                        res->status = MCUBOOT_SIG_MALFORMED;
                        return 0;
                }
                if (r < 0)
                        return r;
                if (r) {
                        res->status = MCUBOOT_SIG_VALID;
                        res->key_match = MCUBOOT_KEY_MATCH_TRIAL;
                        res->key_index = k;
                        return 0;
                }
        }
        if (tried) {
                res->status = MCUBOOT_SIG_INVALID;
                snprintf(res->detail, sizeof(res->detail),
                         "no KEYHASH TLV, and no given key verifies it");
        } else
                snprintf(res->detail, sizeof(res->detail), "%s",
                         n_keys == 0 ? "no keys given" : "no given key is of this type");
        return 0;
}

int mcuboot_image_verify(const struct mcuboot_image *image, struct mcuboot_key *const *keys,
                         size_t n_keys, struct mcuboot_sig_result **ret_results,
                         size_t *ret_n_results) {
        _cleanup_free_ struct mcuboot_sig_result *results = NULL;
        struct verify_input in = { .image = image };
        size_t n_results = 0, n_sigs = 0;
        int valid = 0, r;

        if (!image || (!keys && n_keys > 0) || !ret_results || !ret_n_results)
                return -EINVAL;

        in.region_size = (size_t) image->hdr_size + image->img_size + image->protect_tlv_size;
        sha256_of(image->data, in.region_size, in.sha256);
        r = sha2_of(SHA384_DIGEST_SIZE, image->data, in.region_size, in.sha384);
        if (r < 0)
                return r;

        for (size_t i = 0; i < image->n_tlvs; i++)
                if (is_sig_tlv(image->tlvs[i].type))
                        n_sigs++;
        if (n_sigs > 0) {
                results = calloc(n_sigs, sizeof(*results));
                if (!results)
                        return -ENOMEM;
        }

        const struct mcuboot_tlv *key_tlv = NULL;
        for (size_t i = 0; i < image->n_tlvs; i++) {
                const struct mcuboot_tlv *t = &image->tlvs[i];

                if (t->type == MCUBOOT_TLV_KEYHASH || t->type == MCUBOOT_TLV_PUBKEY) {
                        key_tlv = t;
                        continue;
                }
                if (!is_sig_tlv(t->type))
                        continue;
                r = verify_signature(&in, t, key_tlv, keys, n_keys, &results[n_results]);
                if (r < 0)
                        return r;
                if (results[n_results].status == MCUBOOT_SIG_VALID)
                        valid++;
                n_results++;
                /* As in bootutil_img_validate(): a key TLV names the key of
                 * the next signature only. */
                key_tlv = NULL;
        }

        *ret_results = TAKE_PTR(results);
        *ret_n_results = n_results;
        return valid;
}
