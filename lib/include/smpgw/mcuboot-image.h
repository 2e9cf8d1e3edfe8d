/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MCUboot image files: parse the header and both TLV areas, check the image
 * hash, verify signatures against public keys, and write images.
 *
 * Layout (MCUboot boot/bootutil/include/bootutil/image.h, docs/design.md):
 *
 *   [header + padding: hdr_size][body: img_size][protected TLVs][TLVs][trailing]
 *
 * The header is 32 little-endian bytes.  Each TLV area starts with a 4-byte
 * info {u16 magic; u16 tlv_tot} where tlv_tot counts the info itself; the
 * protected area (magic 0x6908) exists only when the header's
 * protect_tlv_size is non-zero and must then be exactly that long, the
 * unprotected area (magic 0x6907) follows it.  Entries are
 * {u16 type; u16 len; value[len]} and must fill their area exactly.
 *
 * The image hash is over [0, hdr_size + img_size + protect_tlv_size), as
 * MCUboot's bootutil_img_hash() computes it.  Signatures cover that digest
 * (or, with a SIG_PURE TLV, the region itself).
 *
 * Trailing bytes after the unprotected TLV area are accepted in two forms
 * only, both of which appear in real files: a slot padded by `imgtool sign
 * --pad` (ends with the 16-byte MCUboot trailer magic), and erased flash
 * read back from a slot (every trailing byte 0xff, or every byte 0x00).
 * Anything else is rejected as trailing garbage.
 *
 * Multi-byte values are little-endian throughout (imgtool's default; the
 * big-endian variant `imgtool sign -e big` is not supported).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCUBOOT_IMAGE_MAGIC 0x96f3b83du
#define MCUBOOT_IMAGE_MAGIC_V1 0x96f3b83cu /* pre-1.0 MCUboot; rejected */
#define MCUBOOT_HEADER_SIZE 32u
#define MCUBOOT_TLV_INFO_MAGIC 0x6907u
#define MCUBOOT_TLV_PROT_INFO_MAGIC 0x6908u
#define MCUBOOT_TLV_INFO_SIZE 4u
#define MCUBOOT_TLV_HEADER_SIZE 4u

/* mcuboot_image_load_file() refuses larger files (-EFBIG): no MCUboot slot
 * we deal with is near this, and it bounds what a file can make us
 * allocate. */
#define MCUBOOT_IMAGE_FILE_MAX (16u * 1024u * 1024u)

/* Largest digest any hash TLV holds (SHA-512). */
#define MCUBOOT_DIGEST_MAX 64u

/* "255.255.65535+4294967295" plus NUL. */
#define MCUBOOT_VERSION_STRING_MAX 32u

/* Header flags (ih_flags). */
enum mcuboot_flag {
        MCUBOOT_FLAG_PIC = 0x00000001,
        MCUBOOT_FLAG_ENCRYPTED_AES128 = 0x00000004,
        MCUBOOT_FLAG_ENCRYPTED_AES256 = 0x00000008,
        MCUBOOT_FLAG_NON_BOOTABLE = 0x00000010,
        MCUBOOT_FLAG_RAM_LOAD = 0x00000020,
        MCUBOOT_FLAG_ROM_FIXED = 0x00000100,
        MCUBOOT_FLAG_COMPRESSED_LZMA1 = 0x00000200,
        MCUBOOT_FLAG_COMPRESSED_LZMA2 = 0x00000400,
        MCUBOOT_FLAG_COMPRESSED_ARM_THUMB = 0x00000800,
};

/* TLV types. */
enum mcuboot_tlv_type {
        MCUBOOT_TLV_KEYHASH = 0x01,
        MCUBOOT_TLV_PUBKEY = 0x02,
        MCUBOOT_TLV_SHA256 = 0x10,
        MCUBOOT_TLV_SHA384 = 0x11,
        MCUBOOT_TLV_SHA512 = 0x12,
        MCUBOOT_TLV_RSA2048_PSS = 0x20,
        MCUBOOT_TLV_ECDSA224 = 0x21,
        MCUBOOT_TLV_ECDSA_SIG = 0x22,
        MCUBOOT_TLV_RSA3072_PSS = 0x23,
        MCUBOOT_TLV_ED25519 = 0x24,
        MCUBOOT_TLV_SIG_PURE = 0x25,
        MCUBOOT_TLV_ENC_RSA2048 = 0x30,
        MCUBOOT_TLV_ENC_KW = 0x31,
        MCUBOOT_TLV_ENC_EC256 = 0x32,
        MCUBOOT_TLV_ENC_X25519 = 0x33,
        MCUBOOT_TLV_ENC_X25519_SHA512 = 0x34,
        MCUBOOT_TLV_DEPENDENCY = 0x40,
        MCUBOOT_TLV_SEC_CNT = 0x50,
        MCUBOOT_TLV_BOOT_RECORD = 0x60,
        MCUBOOT_TLV_DECOMP_SIZE = 0x70,
        MCUBOOT_TLV_DECOMP_SHA = 0x71,
        MCUBOOT_TLV_DECOMP_SIGNATURE = 0x72,
        MCUBOOT_TLV_COMP_DEC_SIZE = 0x73,
        MCUBOOT_TLV_UUID_VID = 0x74,
        MCUBOOT_TLV_UUID_CID = 0x75,
};

struct mcuboot_version {
        uint8_t major;
        uint8_t minor;
        uint16_t revision;
        uint32_t build;
};

/* One TLV entry as found in the image. */
struct mcuboot_tlv {
        uint16_t type;
        uint16_t len;
        size_t offset;          /* of the entry's 4-byte header in the file */
        bool is_protected;      /* in the protected (hashed) area */
        const uint8_t *value;   /* len bytes; borrowed from the image's data */
};

enum mcuboot_hash_status {
        MCUBOOT_HASH_MATCH,      /* every hash TLV equals the computed digest */
        MCUBOOT_HASH_MISMATCH,   /* some hash TLV differs from the digest */
        MCUBOOT_HASH_MISSING,    /* no SHA256/384/512 TLV at all */
        MCUBOOT_HASH_DUPLICATE,  /* more than one TLV of one hash type (Zephyr
                                  * img_mgmt refuses such images) */
        MCUBOOT_HASH_ENCRYPTED,  /* body is encrypted; the hash is over the
                                  * plaintext and cannot be checked here */
};

enum mcuboot_trailing {
        MCUBOOT_TRAILING_NONE,     /* file ends with the TLV area */
        MCUBOOT_TRAILING_TRAILER,  /* padded slot ending in the trailer magic */
        MCUBOOT_TRAILING_ERASED,   /* only 0xff (or only 0x00) bytes */
};

/*
 * A parsed image.  Only the library allocates it, so fields may be appended
 * in later versions; callers only read them.
 */
struct mcuboot_image {
        const uint8_t *data;          /* whole file, size bytes */
        size_t size;

        /* header */
        uint32_t magic;
        uint32_t load_addr;
        uint16_t hdr_size;
        uint16_t protect_tlv_size;
        uint32_t img_size;
        uint32_t flags;
        struct mcuboot_version version;

        /* layout */
        size_t protected_tlv_offset;  /* hdr_size + img_size; area present iff
                                       * protect_tlv_size != 0 */
        size_t tlv_offset;            /* the unprotected TLV area's info */
        size_t tlv_size;              /* its tlv_tot */
        size_t end_offset;            /* first byte after the TLV areas */
        enum mcuboot_trailing trailing;

        /* every TLV, protected ones first, in file order */
        struct mcuboot_tlv *tlvs;
        size_t n_tlvs;

        /* hash: the digest computed over the hashed region, of the type of
         * the first hash TLV (SHA256 when there is none) */
        enum mcuboot_hash_status hash_status;
        uint16_t hash_type;           /* MCUBOOT_TLV_SHA256/384/512 */
        uint8_t hash[MCUBOOT_DIGEST_MAX];
        size_t hash_len;
        /* the image's SHA256 TLV value, which mcumgr reports as the image
         * hash; NULL unless there is exactly one */
        const uint8_t *sha256_tlv;

        /* a SIG_PURE TLV with value 1: signatures cover the hashed region
         * itself rather than its digest */
        bool sig_pure;

        /* private */
        uint8_t *owned_data;
};

/* Why an image was rejected, for people: e.g. "TLV at offset 0xdc8 (type
 * 0x22, length 300) runs past the end of its area at 0xe5b". */
struct mcuboot_error {
        char message[256];
};

/*
 * Parses the image in data[0..size) and checks its hash.  data is borrowed
 * and must outlive *ret.  A hash that does not match is not a parse error
 * (see hash_status); a layout that is inconsistent, truncated or carries
 * trailing garbage is.
 *
 * Returns 0, -EBADMSG for a malformed image (error, when non-NULL, says
 * why), -ENOMEM, or -EINVAL for bad arguments.
 */
int mcuboot_image_parse(const void *data, size_t size, struct mcuboot_image **ret,
                        struct mcuboot_error *error);

/*
 * Reads path (at most MCUBOOT_IMAGE_FILE_MAX bytes) and parses it; the
 * image owns the file contents.  Returns what mcuboot_image_parse()
 * returns, or -errno from open/read, or -EFBIG for a file over the limit.
 */
int mcuboot_image_load_file(const char *path, struct mcuboot_image **ret,
                            struct mcuboot_error *error);

/* NULL-safe; returns NULL. */
struct mcuboot_image *mcuboot_image_free(struct mcuboot_image *image);

/* Writes "major.minor.revision+build".  Returns the length, or -ENOBUFS. */
int mcuboot_version_format(const struct mcuboot_version *version, char *buf, size_t size);

/* Reads a version in any of the spellings it meets: MCUboot's and
 * imgtool's "1.2.3+4", and Zephyr img_mgmt's "1.2.3" (build 0) and
 * "1.2.3.4" (what devices report in an image state answer).  Decimal
 * fields within the header's ranges, nothing else.  -EINVAL otherwise. */
int mcuboot_version_parse(const char *s, struct mcuboot_version *ret);

/* Rewrites a version string in place into the one spelling the gateway
 * shows, "major.minor.revision+build" (mcuboot_version_format()), so the
 * version a device reports for an image reads the same as the image's
 * own.  A string that is no version is left as it is: -EINVAL. */
int mcuboot_version_normalize(char *version, size_t size);

/* "SHA256", "ECDSA_SIG", ... for known types, NULL for others. */
const char *mcuboot_tlv_type_to_string(uint16_t type);
/* "PIC", "ENCRYPTED_AES128", ... for one known flag bit, NULL otherwise. */
const char *mcuboot_flag_to_string(uint32_t flag);
/* "match", "mismatch", "missing", "duplicate", "encrypted". */
const char *mcuboot_hash_status_to_string(enum mcuboot_hash_status status);
/* "none", "trailer", "erased". */
const char *mcuboot_trailing_to_string(enum mcuboot_trailing trailing);

/*
 * Signature verification (mcuboot-verify.c).
 *
 * Keys and signatures are OpenSSL's (3.x).  libsmpgw does not link
 * libcrypto: it loads it (libcrypto.so.3) when the first key is loaded or
 * made, so a program that checks no signatures never maps it.  The
 * functions that need it return -ELIBACC when it cannot be loaded.
 */

/* A public key as MCUboot's bootloader would hold it. */
struct mcuboot_key;

/*
 * Reads a PEM or DER file holding a public key (SubjectPublicKeyInfo, or
 * PKCS#1 RSAPublicKey) or a private key, whose public half is used.
 * Supported: ECDSA P-256 and P-384, Ed25519, RSA 2048 and 3072.  Returns 0,
 * -ENOENT/-EACCES/... from open, -EFBIG for a file over 1 MiB, -EBADMSG if
 * it holds no key, -EOPNOTSUPP for another key type or size, -ELIBACC
 * when libcrypto cannot be loaded (these three for _mem and _from_pkey
 * too).
 */
int mcuboot_key_load_file(const char *path, struct mcuboot_key **ret);
int mcuboot_key_load_mem(const void *data, size_t size, const char *label, struct mcuboot_key **ret);
/* Takes a reference on pkey (the caller keeps its own). */
int mcuboot_key_from_pkey(EVP_PKEY *pkey, const char *label, struct mcuboot_key **ret);
struct mcuboot_key *mcuboot_key_free(struct mcuboot_key *key);

/* The file name or label given when loading. */
const char *mcuboot_key_label(const struct mcuboot_key *key);
/* "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072". */
const char *mcuboot_key_type(const struct mcuboot_key *key);
/* The bytes a bootloader embeds for this key (imgtool getpub): DER
 * SubjectPublicKeyInfo for EC and Ed25519, DER PKCS#1 RSAPublicKey for RSA;
 * borrowed. */
const uint8_t *mcuboot_key_public_bytes(const struct mcuboot_key *key, size_t *ret_size);

enum mcuboot_sig_status {
        MCUBOOT_SIG_VALID,        /* verified with key_index */
        MCUBOOT_SIG_INVALID,      /* the key the image names (or every key
                                   * of the right type) rejects it */
        MCUBOOT_SIG_NO_KEY,       /* no given key is the one the KEYHASH or
                                   * PUBKEY TLV names, or none of the type */
        MCUBOOT_SIG_MALFORMED,    /* wrong length or encoding */
        MCUBOOT_SIG_UNSUPPORTED,  /* ECDSA224, or an encrypted image */
};

/* How the key was chosen for one signature. */
enum mcuboot_key_match {
        MCUBOOT_KEY_MATCH_NONE,     /* no key verified it */
        MCUBOOT_KEY_MATCH_KEYHASH,  /* the KEYHASH TLV before it names the key */
        MCUBOOT_KEY_MATCH_PUBKEY,   /* the PUBKEY TLV before it is the key */
        MCUBOOT_KEY_MATCH_TRIAL,    /* no key TLV: found by trying every key */
};

struct mcuboot_sig_result {
        const struct mcuboot_tlv *sig_tlv;   /* borrowed from the image */
        const struct mcuboot_tlv *key_tlv;   /* KEYHASH/PUBKEY before it, or NULL */
        enum mcuboot_sig_status status;
        enum mcuboot_key_match key_match;
        size_t key_index;                    /* into keys[]; SIZE_MAX if none */
        bool pure;                           /* signed over the region, not its digest */
        char detail[128];                    /* why, for people; may be "" */
};

/*
 * Checks every signature TLV of image (RSA2048_PSS, ECDSA224, ECDSA_SIG,
 * RSA3072_PSS, ED25519) against keys[0..n_keys), pairing each with the
 * KEYHASH or PUBKEY TLV that precedes it as MCUboot's
 * bootutil_img_validate() does.  *ret_results (one per signature TLV, in
 * file order; free() it) and *ret_n_results are written on success.
 *
 * Returns the number of valid signatures (>= 0), -ENOMEM, -EIO (OpenSSL
 * failed), or -EINVAL.
 */
int mcuboot_image_verify(const struct mcuboot_image *image, struct mcuboot_key *const *keys,
                         size_t n_keys, struct mcuboot_sig_result **ret_results,
                         size_t *ret_n_results);

/* "valid", "invalid", "no key", "malformed", "unsupported". */
const char *mcuboot_sig_status_to_string(enum mcuboot_sig_status status);
/* "none", "keyhash", "pubkey", "trial". */
const char *mcuboot_key_match_to_string(enum mcuboot_key_match match);

/*
 * Writing images (mcuboot-build.c).
 */

/* A TLV to write: type, and len bytes at value (borrowed). */
struct mcuboot_tlv_spec {
        uint16_t type;
        uint16_t len;
        const void *value;
};

struct mcuboot_build_params {
        struct mcuboot_version version;
        uint32_t load_addr;
        uint32_t flags;
        /* Header plus padding before the body; 0 means 32.  imgtool
         * commonly uses 0x200. */
        uint16_t hdr_size;
        const void *body;
        size_t body_size;
        /* Protected TLVs (SEC_CNT, DEPENDENCY, ...), written in this order. */
        const struct mcuboot_tlv_spec *protected_tlvs;
        size_t n_protected_tlvs;
        /* Private key to sign with, or NULL for an unsigned image.  Decides
         * the hash: SHA384 for P-384, SHA256 otherwise.  Signed images get a
         * KEYHASH TLV as imgtool writes it by default. */
        EVP_PKEY *sign_key;
};

/*
 * Builds a complete image: header, body, protected TLVs, hash TLV, and
 * KEYHASH plus signature TLV when signing.  *ret_data (free() it) and
 * *ret_size are written on success.  Returns 0, -EINVAL (hdr_size < 32,
 * body too large for the 32-bit size field), -E2BIG (a TLV area over
 * 64 KiB), -EOPNOTSUPP (key type), -EIO (OpenSSL failed) or -ENOMEM.
 * Unsigned images need no OpenSSL; signing loads it as
 * mcuboot_key_from_pkey() does.
 */
int mcuboot_image_build(const struct mcuboot_build_params *params, uint8_t **ret_data,
                        size_t *ret_size);

#ifdef __cplusplus
}
#endif
