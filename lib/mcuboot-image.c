/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MCUboot image parser and hash check.  The rules follow MCUboot's own
 * reader (boot/bootutil/src/tlv.c: bootutil_tlv_iter_begin/_next) and hash
 * (bootutil_img_hash.c), made stricter where MCUboot merely tolerates
 * something no image tool writes: TLV entries must fill each area exactly.
 *
 * Never over-reads: each length field is compared against what is left of
 * the buffer (by subtraction, so nothing can wrap) before the bytes it
 * covers are touched, and every offset is then a sum known to be <= size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha-digest.h"
#include "smpgw/mcuboot-image.h"
#include "util.h"

/* The 16-byte magic at the end of an MCUboot slot trailer (imgtool
 * image.py, boot_magic, for the default max-align of 8). */
static const uint8_t trailer_magic[16] = {
        0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f,
        0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
};
/* With --max-align other than 8 the first two bytes hold the alignment and
 * these 14 follow. */
static const uint8_t trailer_magic_aligned_tail[14] = {
        0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d,
        0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
};

_printf_(2, 3) static int fail(struct mcuboot_error *error, const char *fmt, ...) {
        if (error) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(error->message, sizeof(error->message), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

const char *mcuboot_tlv_type_to_string(uint16_t type) {
        switch (type) {
        case MCUBOOT_TLV_KEYHASH: return "KEYHASH";
        case MCUBOOT_TLV_PUBKEY: return "PUBKEY";
        case MCUBOOT_TLV_SHA256: return "SHA256";
        case MCUBOOT_TLV_SHA384: return "SHA384";
        case MCUBOOT_TLV_SHA512: return "SHA512";
        case MCUBOOT_TLV_RSA2048_PSS: return "RSA2048_PSS";
        case MCUBOOT_TLV_ECDSA224: return "ECDSA224";
        case MCUBOOT_TLV_ECDSA_SIG: return "ECDSA_SIG";
        case MCUBOOT_TLV_RSA3072_PSS: return "RSA3072_PSS";
        case MCUBOOT_TLV_ED25519: return "ED25519";
        case MCUBOOT_TLV_SIG_PURE: return "SIG_PURE";
        case MCUBOOT_TLV_ENC_RSA2048: return "ENC_RSA2048";
        case MCUBOOT_TLV_ENC_KW: return "ENC_KW";
        case MCUBOOT_TLV_ENC_EC256: return "ENC_EC256";
        case MCUBOOT_TLV_ENC_X25519: return "ENC_X25519";
        case MCUBOOT_TLV_ENC_X25519_SHA512: return "ENC_X25519_SHA512";
        case MCUBOOT_TLV_DEPENDENCY: return "DEPENDENCY";
        case MCUBOOT_TLV_SEC_CNT: return "SEC_CNT";
        case MCUBOOT_TLV_BOOT_RECORD: return "BOOT_RECORD";
        case MCUBOOT_TLV_DECOMP_SIZE: return "DECOMP_SIZE";
        case MCUBOOT_TLV_DECOMP_SHA: return "DECOMP_SHA";
        case MCUBOOT_TLV_DECOMP_SIGNATURE: return "DECOMP_SIGNATURE";
        case MCUBOOT_TLV_COMP_DEC_SIZE: return "COMP_DEC_SIZE";
        case MCUBOOT_TLV_UUID_VID: return "UUID_VID";
        case MCUBOOT_TLV_UUID_CID: return "UUID_CID";
        default: return NULL;
        }
}

const char *mcuboot_flag_to_string(uint32_t flag) {
        switch (flag) {
        case MCUBOOT_FLAG_PIC: return "PIC";
        case MCUBOOT_FLAG_ENCRYPTED_AES128: return "ENCRYPTED_AES128";
        case MCUBOOT_FLAG_ENCRYPTED_AES256: return "ENCRYPTED_AES256";
        case MCUBOOT_FLAG_NON_BOOTABLE: return "NON_BOOTABLE";
        case MCUBOOT_FLAG_RAM_LOAD: return "RAM_LOAD";
        case MCUBOOT_FLAG_ROM_FIXED: return "ROM_FIXED";
        case MCUBOOT_FLAG_COMPRESSED_LZMA1: return "COMPRESSED_LZMA1";
        case MCUBOOT_FLAG_COMPRESSED_LZMA2: return "COMPRESSED_LZMA2";
        case MCUBOOT_FLAG_COMPRESSED_ARM_THUMB: return "COMPRESSED_ARM_THUMB";
        default: return NULL;
        }
}

const char *mcuboot_hash_status_to_string(enum mcuboot_hash_status status) {
        switch (status) {
        case MCUBOOT_HASH_MATCH: return "match";
        case MCUBOOT_HASH_MISMATCH: return "mismatch";
        case MCUBOOT_HASH_MISSING: return "missing";
        case MCUBOOT_HASH_DUPLICATE: return "duplicate";
        case MCUBOOT_HASH_ENCRYPTED: return "encrypted";
        }
        return NULL;
}

const char *mcuboot_trailing_to_string(enum mcuboot_trailing trailing) {
        switch (trailing) {
        case MCUBOOT_TRAILING_NONE: return "none";
        case MCUBOOT_TRAILING_TRAILER: return "trailer";
        case MCUBOOT_TRAILING_ERASED: return "erased";
        }
        return NULL;
}

int mcuboot_version_format(const struct mcuboot_version *version, char *buf, size_t size) {
        if (!version || !buf)
                return -EINVAL;
        int n = snprintf(buf, size, "%u.%u.%u+%u", version->major, version->minor,
                         version->revision, version->build);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

/* One decimal field of a version, at most max: digits only, no sign, no
 * leading zero (one spelling per number). */
static const char *version_field(const char *s, uint32_t max, uint32_t *ret) {
        uint64_t v = 0;
        const char *p = s;

        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
                return NULL;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (uint64_t) (*p - '0');
                if (v > max)
                        return NULL;
        }
        *ret = (uint32_t) v;
        return p;
}

int mcuboot_version_parse(const char *s, struct mcuboot_version *ret) {
        uint32_t major, minor, revision, build = 0;

        if (!s || !ret)
                return -EINVAL;
        if (!(s = version_field(s, UINT8_MAX, &major)) || *s++ != '.' ||
            !(s = version_field(s, UINT8_MAX, &minor)) || *s++ != '.' ||
            !(s = version_field(s, UINT16_MAX, &revision)))
                return -EINVAL;
        if (*s == '+' || *s == '.') {
                s = version_field(s + 1, UINT32_MAX, &build);
                if (!s)
                        return -EINVAL;
        }
        if (*s)
                return -EINVAL;
        *ret = (struct mcuboot_version) {
                .major = (uint8_t) major,
                .minor = (uint8_t) minor,
                .revision = (uint16_t) revision,
                .build = build,
        };
        return 0;
}

int mcuboot_version_normalize(char *version, size_t size) {
        struct mcuboot_version v;
        char buf[MCUBOOT_VERSION_STRING_MAX];
        int r;

        r = mcuboot_version_parse(version, &v);
        if (r < 0)
                return r;
        r = mcuboot_version_format(&v, buf, sizeof(buf));
        if (r < 0)
                return r;
        if ((size_t) r >= size)
                return -ENOBUFS;
        memcpy(version, buf, (size_t) r + 1);
        return r;
}

/* The digest length of a hash TLV type, 0 for other types. */
static size_t hash_type_len(uint16_t type) {
        switch (type) {
        case MCUBOOT_TLV_SHA256:
                return SHA256_DIGEST_SIZE;
        case MCUBOOT_TLV_SHA384:
                return SHA384_DIGEST_SIZE;
        case MCUBOOT_TLV_SHA512:
                return SHA512_DIGEST_SIZE;
        default:
                return 0;
        }
}

static bool is_hash_tlv(uint16_t type) {
        return type == MCUBOOT_TLV_SHA256 || type == MCUBOOT_TLV_SHA384 ||
               type == MCUBOOT_TLV_SHA512;
}

/* Counts the entries of the TLV area at [start + 4, end) and checks that
 * they fill it exactly; end is already known to lie inside the buffer. */
static int tlv_area_count(const uint8_t *data, size_t start, size_t end, const char *area,
                          size_t *ret_count, struct mcuboot_error *error) {
        size_t count = 0;

        for (size_t off = start + MCUBOOT_TLV_INFO_SIZE; off < end;) {
                if (end - off < MCUBOOT_TLV_HEADER_SIZE)
                        return fail(error,
                                    "%zu stray bytes at offset 0x%zx at the end of the %s TLV "
                                    "area: too short for a TLV header",
                                    end - off, off, area);
                uint16_t type = unaligned_read_le16(data + off);
                uint16_t len = unaligned_read_le16(data + off + 2);
                if (len > end - off - MCUBOOT_TLV_HEADER_SIZE)
                        return fail(error,
                                    "TLV at offset 0x%zx (type 0x%02x, length %u) runs past the "
                                    "end of the %s TLV area at 0x%zx",
                                    off, type, len, area, end);
                off += MCUBOOT_TLV_HEADER_SIZE + len;
                count++;
        }
        *ret_count = count;
        return 0;
}

static size_t tlv_area_collect(const uint8_t *data, size_t start, size_t end, bool is_protected,
                               struct mcuboot_tlv *out) {
        size_t n = 0;

        /* Bounds were checked by tlv_area_count(). */
        for (size_t off = start + MCUBOOT_TLV_INFO_SIZE; off < end; n++) {
                out[n] = (struct mcuboot_tlv) {
                        .type = unaligned_read_le16(data + off),
                        .len = unaligned_read_le16(data + off + 2),
                        .offset = off,
                        .is_protected = is_protected,
                        .value = data + off + MCUBOOT_TLV_HEADER_SIZE,
                };
                off += MCUBOOT_TLV_HEADER_SIZE + out[n].len;
        }
        return n;
}

static bool all_bytes_are(const uint8_t *p, size_t n, uint8_t v) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != v)
                        return false;
        return true;
}

static int classify_trailing(const uint8_t *p, size_t n, enum mcuboot_trailing *ret) {
        if (n == 0) {
                *ret = MCUBOOT_TRAILING_NONE;
                return 0;
        }
        if (n >= sizeof(trailer_magic) &&
            (memcmp(p + n - sizeof(trailer_magic), trailer_magic, sizeof(trailer_magic)) == 0 ||
             memcmp(p + n - sizeof(trailer_magic_aligned_tail), trailer_magic_aligned_tail,
                    sizeof(trailer_magic_aligned_tail)) == 0)) {
                *ret = MCUBOOT_TRAILING_TRAILER;
                return 0;
        }
        if (all_bytes_are(p, n, 0xff) || all_bytes_are(p, n, 0x00)) {
                *ret = MCUBOOT_TRAILING_ERASED;
                return 0;
        }
        return -EBADMSG;
}

/* Fills hash_*, sha256_tlv and sig_pure from the TLVs and the data. */
static int image_check_hash(struct mcuboot_image *img, struct mcuboot_error *error) {
        unsigned count[3] = {};
        const struct mcuboot_tlv *first_hash = NULL;

        for (size_t i = 0; i < img->n_tlvs; i++) {
                const struct mcuboot_tlv *t = &img->tlvs[i];
                if (t->type == MCUBOOT_TLV_SIG_PURE && t->len == 1 && t->value[0] == 1)
                        img->sig_pure = true;
                if (!is_hash_tlv(t->type))
                        continue;
                size_t want = hash_type_len(t->type);
                if (t->len != want)
                        return fail(error, "%s TLV at offset 0x%zx has length %u, expected %zu",
                                    mcuboot_tlv_type_to_string(t->type), t->offset, t->len, want);
                count[t->type - MCUBOOT_TLV_SHA256]++;
                if (!first_hash)
                        first_hash = t;
        }

        img->hash_type = first_hash ? first_hash->type : MCUBOOT_TLV_SHA256;
        img->hash_len = hash_type_len(img->hash_type);
        size_t hashed = (size_t) img->hdr_size + img->img_size + img->protect_tlv_size;
        int r = sha2_of(img->hash_len, img->data, hashed, img->hash);
        if (r < 0)
                return r;

        if (count[0] == 1)
                for (size_t i = 0; i < img->n_tlvs; i++)
                        if (img->tlvs[i].type == MCUBOOT_TLV_SHA256)
                                img->sha256_tlv = img->tlvs[i].value;

        if (img->flags & (MCUBOOT_FLAG_ENCRYPTED_AES128 | MCUBOOT_FLAG_ENCRYPTED_AES256)) {
                img->hash_status = MCUBOOT_HASH_ENCRYPTED;
                return 0;
        }
        if (!first_hash) {
                img->hash_status = MCUBOOT_HASH_MISSING;
                return 0;
        }
        if (count[0] > 1 || count[1] > 1 || count[2] > 1) {
                img->hash_status = MCUBOOT_HASH_DUPLICATE;
                return 0;
        }

        img->hash_status = MCUBOOT_HASH_MATCH;
        for (size_t i = 0; i < img->n_tlvs; i++) {
                const struct mcuboot_tlv *t = &img->tlvs[i];
                uint8_t digest[MCUBOOT_DIGEST_MAX];

                if (!is_hash_tlv(t->type))
                        continue;
                r = sha2_of(t->len, img->data, hashed, digest);
                if (r < 0)
                        return r;
                if (memcmp(digest, t->value, t->len) != 0)
                        img->hash_status = MCUBOOT_HASH_MISMATCH;
        }
        return 0;
}

struct mcuboot_image *mcuboot_image_free(struct mcuboot_image *image) {
        if (!image)
                return NULL;
        free(image->tlvs);
        free(image->owned_data);
        free(image);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);

int mcuboot_image_parse(const void *buf, size_t size, struct mcuboot_image **ret,
                        struct mcuboot_error *error) {
        const uint8_t *data = buf;
        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;
        int r;

        if ((!data && size > 0) || !ret)
                return -EINVAL;

        if (size < MCUBOOT_HEADER_SIZE)
                return fail(error, "file has %zu bytes, too short for the %u-byte header", size,
                            MCUBOOT_HEADER_SIZE);

        img = calloc(1, sizeof(*img));
        if (!img)
                return -ENOMEM;
        img->data = data;
        img->size = size;

        img->magic = unaligned_read_le32(data + 0);
        img->load_addr = unaligned_read_le32(data + 4);
        img->hdr_size = unaligned_read_le16(data + 8);
        img->protect_tlv_size = unaligned_read_le16(data + 10);
        img->img_size = unaligned_read_le32(data + 12);
        img->flags = unaligned_read_le32(data + 16);
        img->version = (struct mcuboot_version) {
                .major = data[20],
                .minor = data[21],
                .revision = unaligned_read_le16(data + 22),
                .build = unaligned_read_le32(data + 24),
        };

        if (img->magic == MCUBOOT_IMAGE_MAGIC_V1)
                return fail(error, "header magic 0x%08x is the pre-1.0 MCUboot format, which is "
                            "not supported", img->magic);
        if (img->magic != MCUBOOT_IMAGE_MAGIC)
                return fail(error, "header magic 0x%08x, expected 0x%08x: not an MCUboot image",
                            img->magic, MCUBOOT_IMAGE_MAGIC);
        if (img->hdr_size < MCUBOOT_HEADER_SIZE)
                return fail(error, "hdr_size %u is smaller than the %u-byte header",
                            img->hdr_size, MCUBOOT_HEADER_SIZE);
        if (img->hdr_size > size)
                return fail(error, "hdr_size %u but the file has only %zu bytes", img->hdr_size,
                            size);
        if (img->img_size > size - img->hdr_size)
                return fail(error,
                            "header says image size %u but file has only %zu bytes after the "
                            "header",
                            img->img_size, size - img->hdr_size);

        size_t off = (size_t) img->hdr_size + img->img_size;
        img->protected_tlv_offset = off;
        if (size - off < MCUBOOT_TLV_INFO_SIZE)
                return fail(error, "file ends at 0x%zx, %zu bytes after the image body: no room "
                            "for a TLV area",
                            size, size - off);

        uint16_t magic = unaligned_read_le16(data + off);
        uint16_t tot = unaligned_read_le16(data + off + 2);
        size_t prot_end = off;
        if (img->protect_tlv_size != 0) {
                if (magic != MCUBOOT_TLV_PROT_INFO_MAGIC)
                        return fail(error,
                                    "protected TLV area magic 0x%04x at offset 0x%zx, expected "
                                    "0x%04x (header says protect_tlv_size %u)",
                                    magic, off, MCUBOOT_TLV_PROT_INFO_MAGIC,
                                    img->protect_tlv_size);
                if (tot != img->protect_tlv_size)
                        return fail(error,
                                    "protected TLV area says it is %u bytes but the header's "
                                    "protect_tlv_size is %u",
                                    tot, img->protect_tlv_size);
                if (tot < MCUBOOT_TLV_INFO_SIZE)
                        return fail(error, "protected TLV area size %u is smaller than its "
                                    "4-byte info", tot);
                if (tot > size - off)
                        return fail(error,
                                    "protected TLV area (%u bytes at 0x%zx) runs past the end of "
                                    "the file at 0x%zx",
                                    tot, off, size);
                prot_end = off + tot;
        } else if (magic == MCUBOOT_TLV_PROT_INFO_MAGIC)
                return fail(error,
                            "protected TLV area at offset 0x%zx but the header's "
                            "protect_tlv_size is 0",
                            off);

        if (size - prot_end < MCUBOOT_TLV_INFO_SIZE)
                return fail(error, "file ends at 0x%zx: no room for the TLV area info at 0x%zx",
                            size, prot_end);
        magic = unaligned_read_le16(data + prot_end);
        tot = unaligned_read_le16(data + prot_end + 2);
        if (magic != MCUBOOT_TLV_INFO_MAGIC)
                return fail(error, "TLV area magic 0x%04x at offset 0x%zx, expected 0x%04x", magic,
                            prot_end, MCUBOOT_TLV_INFO_MAGIC);
        if (tot < MCUBOOT_TLV_INFO_SIZE)
                return fail(error, "TLV area size %u at offset 0x%zx is smaller than its 4-byte "
                            "info", tot, prot_end);
        if (tot > size - prot_end)
                return fail(error,
                            "TLV area (%u bytes at 0x%zx) runs past the end of the file at 0x%zx",
                            tot, prot_end, size);
        img->tlv_offset = prot_end;
        img->tlv_size = tot;
        img->end_offset = prot_end + tot;

        size_t n_prot = 0, n_unprot = 0;
        if (img->protect_tlv_size != 0) {
                r = tlv_area_count(data, off, prot_end, "protected", &n_prot, error);
                if (r < 0)
                        return r;
        }
        r = tlv_area_count(data, prot_end, img->end_offset, "unprotected", &n_unprot, error);
        if (r < 0)
                return r;

        if (classify_trailing(data + img->end_offset, size - img->end_offset, &img->trailing) < 0)
                return fail(error,
                            "%zu bytes after the TLV area end at 0x%zx are neither an MCUboot "
                            "trailer nor erased flash",
                            size - img->end_offset, img->end_offset);

        if (n_prot + n_unprot > 0) {
                img->tlvs = calloc(n_prot + n_unprot, sizeof(struct mcuboot_tlv));
                if (!img->tlvs)
                        return -ENOMEM;
        }
        /* Both areas may be empty: then img->tlvs stays NULL, and even
         * NULL + 0 is undefined behaviour in C, so skip what is empty. */
        if (n_prot > 0)
                img->n_tlvs = tlv_area_collect(data, off, prot_end, true, img->tlvs);
        if (n_unprot > 0)
                img->n_tlvs += tlv_area_collect(data, prot_end, img->end_offset, false,
                                                img->tlvs + img->n_tlvs);

        r = image_check_hash(img, error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(img);
        return 0;
}

int mcuboot_image_load_file(const char *path, struct mcuboot_image **ret,
                            struct mcuboot_error *error) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        size_t size = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        if (st.st_size > (off_t) MCUBOOT_IMAGE_FILE_MAX)
                return -EFBIG;

        /* Read up to one byte past the limit, so a file that grows while we
         * read is still caught. */
        size_t cap = (size_t) st.st_size + 1;
        data = malloc(cap);
        if (!data)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, data + size, cap - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size == cap) {
                        if (cap > MCUBOOT_IMAGE_FILE_MAX)
                                return -EFBIG;
                        size_t ncap = MIN((size_t) MCUBOOT_IMAGE_FILE_MAX + 1, cap * 2);
                        uint8_t *p = realloc(data, ncap);
                        if (!p)
                                return -ENOMEM;
                        data = p;
                        cap = ncap;
                }
        }

        struct mcuboot_image *img;
        r = mcuboot_image_parse(data, size, &img, error);
        if (r < 0)
                return r;
        img->owned_data = TAKE_PTR(data);
        *ret = img;
        return 0;
}
