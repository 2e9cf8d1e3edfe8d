/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl image info FILE [--key KEY]... : everything about an MCUboot
 * image file, and whether it would pass MCUboot's checks (hash, and with
 * keys given, a signature).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/mcuboot-image.h"
#include "ctl-session.h"
#include "smpgwctl.h"
#include "util.h"

/* TLV values up to this long are printed in hex in text output. */
#define TEXT_VALUE_MAX 64u

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mcuboot_image *, mcuboot_image_free);
/* json_decrefp() comes with jansson (>= 2.9). */

struct key_list {
        struct mcuboot_key **keys;
        size_t n;
};

static void key_list_done(struct key_list *l) {
        for (size_t i = 0; i < l->n; i++)
                mcuboot_key_free(l->keys[i]);
        free(l->keys);
}

static void info_help(FILE *f) {
        fprintf(f,
                "Usage: smpgwctl [--json] image info FILE [--key KEY]...\n"
                "\n"
                "Shows an MCUboot image file: header (version, sizes, flags, load address),\n"
                "every TLV, the image hash and whether it matches the SHA256/384/512 TLV,\n"
                "and the status of each signature against the given public keys.\n"
                "\n"
                "Options:\n"
                "  -k, --key KEY   public key to check signatures with: PEM or DER,\n"
                "                  public or private key file (imgtool keygen/getpub);\n"
                "                  ECDSA P-256/P-384, Ed25519, RSA-2048/3072; repeatable\n"
                "  -j, --json      print JSON on stdout\n"
                "  -h, --help      show this help\n"
                "\n"
                "Trailing data after the TLV area is accepted only as an imgtool --pad\n"
                "trailer or erased flash (all 0xff or all 0x00). Files over %u MiB are refused.\n"
                "\n"
                "Exit codes:\n"
                "  0  the image is well-formed, its hash matches, and if keys were given\n"
                "     at least one signature is valid with one of them\n"
                "  1  the file or a key could not be read\n"
                "  2  usage error\n"
                "  3  not a well-formed MCUboot image (the message says why)\n"
                "  4  hash TLV missing, duplicated or not matching (or image encrypted)\n"
                "  5  keys given, but no signature is valid with any of them\n",
                MCUBOOT_IMAGE_FILE_MAX / (1024u * 1024u));
}

static const char *tlv_name(uint16_t type) {
        return mcuboot_tlv_type_to_string(type) ?: "unknown";
}

static void print_flags(uint32_t flags) {
        printf("flags:            0x%08x", flags);
        const char *sep = " (";
        for (unsigned bit = 0; bit < 32; bit++) {
                uint32_t f = 1u << bit;
                if (!(flags & f))
                        continue;
                const char *name = mcuboot_flag_to_string(f);
                if (name)
                        printf("%s%s", sep, name);
                else
                        printf("%sunknown 0x%x", sep, f);
                sep = ", ";
        }
        printf("%s\n", flags ? ")" : "");
}

static const char *key_label(struct mcuboot_key *const *keys, const struct mcuboot_sig_result *r) {
        return r->key_index != SIZE_MAX ? mcuboot_key_label(keys[r->key_index]) : NULL;
}

static int print_text(const char *path, const struct mcuboot_image *img,
                      struct mcuboot_key *const *keys, size_t n_keys,
                      const struct mcuboot_sig_result *sigs, size_t n_sigs) {
        char version[MCUBOOT_VERSION_STRING_MAX];
        (void) mcuboot_version_format(&img->version, version, sizeof(version));
        _cleanup_free_ char *hash = ctl_hex(img->hash, img->hash_len);
        if (!hash)
                return -ENOMEM;

        printf("file:             %s (%zu bytes)\n", path, img->size);
        printf("version:          %s\n", version);
        printf("header size:      %u (0x%x)\n", img->hdr_size, img->hdr_size);
        printf("image size:       %u (0x%x)\n", img->img_size, img->img_size);
        printf("protected TLVs:   %u bytes\n", img->protect_tlv_size);
        printf("TLV area:         %zu bytes at 0x%zx\n", img->tlv_size, img->tlv_offset);
        printf("load address:     0x%08x\n", img->load_addr);
        print_flags(img->flags);
        printf("hash:             %s (%s, %s)\n", hash, tlv_name(img->hash_type),
               mcuboot_hash_status_to_string(img->hash_status));
        printf("trailing data:    %zu bytes (%s)\n", img->size - img->end_offset,
               mcuboot_trailing_to_string(img->trailing));
        printf("TLVs:\n");
        for (size_t i = 0; i < img->n_tlvs; i++) {
                const struct mcuboot_tlv *t = &img->tlvs[i];
                char type[48];
                snprintf(type, sizeof(type), "%s (0x%02x)", tlv_name(t->type), t->type);
                printf("  0x%06zx %-9s %-22s len %-4u", t->offset,
                       t->is_protected ? "protected" : "", type, t->len);
                if (t->len <= TEXT_VALUE_MAX) {
                        _cleanup_free_ char *v = ctl_hex(t->value, t->len);
                        if (!v)
                                return -ENOMEM;
                        printf(" %s\n", v);
                } else
                        printf(" (%u bytes)\n", t->len);
        }
        if (n_sigs > 0)
                printf("signatures:\n");
        for (size_t i = 0; i < n_sigs; i++) {
                const struct mcuboot_sig_result *r = &sigs[i];
                printf("  %s at 0x%zx: %s", tlv_name(r->sig_tlv->type), r->sig_tlv->offset,
                       mcuboot_sig_status_to_string(r->status));
                const char *label = key_label(keys, r);
                if (label)
                        printf(", key %s (%s, by %s)", label,
                               mcuboot_key_type(keys[r->key_index]),
                               mcuboot_key_match_to_string(r->key_match));
                if (r->pure)
                        printf(", pure (over the image)");
                if (r->detail[0])
                        printf(": %s", r->detail);
                printf("\n");
        }
        if (n_keys == 0 && n_sigs > 0)
                printf("  (give --key to check signatures)\n");
        return 0;
}

static json_t *json_hex(const uint8_t *p, size_t n) {
        _cleanup_free_ char *s = ctl_hex(p, n);
        return s ? json_string(s) : NULL;
}

static int print_json(const char *path, const struct mcuboot_image *img,
                      struct mcuboot_key *const *keys, const struct mcuboot_sig_result *sigs,
                      size_t n_sigs, bool ok) {
        char version[MCUBOOT_VERSION_STRING_MAX];
        (void) mcuboot_version_format(&img->version, version, sizeof(version));

        _cleanup_(json_decrefp) json_t *flags = json_array();
        _cleanup_(json_decrefp) json_t *tlvs = json_array();
        _cleanup_(json_decrefp) json_t *signatures = json_array();
        if (!flags || !tlvs || !signatures)
                return -ENOMEM;
        for (unsigned bit = 0; bit < 32; bit++)
                if (img->flags & (1u << bit)) {
                        const char *name = mcuboot_flag_to_string(1u << bit);
                        if (json_array_append_new(flags, name ? json_string(name)
                                                              : json_integer(1u << bit)) < 0)
                                return -ENOMEM;
                }
        for (size_t i = 0; i < img->n_tlvs; i++) {
                const struct mcuboot_tlv *t = &img->tlvs[i];
                const char *name = mcuboot_tlv_type_to_string(t->type);
                if (json_array_append_new(tlvs,
                                          json_pack("{s:i, s:o, s:i, s:I, s:b, s:o}", "type",
                                                    t->type, "name",
                                                    name ? json_string(name) : json_null(),
                                                    "length", t->len, "offset",
                                                    (json_int_t) t->offset, "protected",
                                                    t->is_protected, "value",
                                                    json_hex(t->value, t->len))) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n_sigs; i++) {
                const struct mcuboot_sig_result *r = &sigs[i];
                const char *label = key_label(keys, r);
                if (json_array_append_new(
                            signatures,
                            json_pack("{s:i, s:s, s:I, s:s, s:o, s:o, s:s, s:b, s:s}", "type",
                                      r->sig_tlv->type, "name", tlv_name(r->sig_tlv->type),
                                      "offset", (json_int_t) r->sig_tlv->offset, "status",
                                      mcuboot_sig_status_to_string(r->status), "key",
                                      label ? json_string(label) : json_null(), "key_type",
                                      label ? json_string(mcuboot_key_type(keys[r->key_index]))
                                            : json_null(),
                                      "key_match", mcuboot_key_match_to_string(r->key_match),
                                      "pure", r->pure, "detail", r->detail)) < 0)
                        return -ENOMEM;
        }

        _cleanup_(json_decrefp) json_t *root = json_pack(
                "{s:s, s:I, s:s, s:{s:i, s:i, s:i, s:I}, s:i, s:I, s:i, s:I, s:I, s:I, s:O, "
                "s:{s:s, s:o, s:s}, s:o, s:s, s:I, s:O, s:O, s:b}",
                "file", path, "size", (json_int_t) img->size, "version", version,
                "version_fields", "major", img->version.major, "minor", img->version.minor,
                "revision", img->version.revision, "build", (json_int_t) img->version.build,
                "header_size", img->hdr_size, "image_size", (json_int_t) img->img_size,
                "protected_tlv_size", img->protect_tlv_size, "tlv_area_size",
                (json_int_t) img->tlv_size, "load_address", (json_int_t) img->load_addr,
                "flags", (json_int_t) img->flags, "flag_names", flags, "hash", "type",
                tlv_name(img->hash_type), "value", json_hex(img->hash, img->hash_len),
                "status", mcuboot_hash_status_to_string(img->hash_status), "sha256_tlv",
                img->sha256_tlv ? json_hex(img->sha256_tlv, 32) : json_null(), "trailing",
                mcuboot_trailing_to_string(img->trailing), "trailing_size",
                (json_int_t) (img->size - img->end_offset), "tlvs", tlvs, "signatures",
                signatures, "ok", ok);
        if (!root)
                return -ENOMEM;
        if (json_dumpf(root, stdout, JSON_INDENT(2)) < 0)
                return -EIO;
        putchar('\n');
        return 0;
}

/* --json and a failure before there is an image to show. */
static void print_json_error(const char *path, const char *error) {
        _cleanup_(json_decrefp) json_t *root =
                json_pack("{s:s, s:s, s:b}", "file", path, "error", error, "ok", false);
        if (root && json_dumpf(root, stdout, JSON_INDENT(2)) == 0)
                putchar('\n');
}

/* Why mcuboot_key_load_file() failed, for people. */
static const char *key_load_error_to_string(int r) {
        switch (r) {
        case -EBADMSG:
                return "no public or private key in it";
        case -EOPNOTSUPP:
                return "key type not used by MCUboot (want ECDSA P-256/P-384, Ed25519, RSA-2048/3072)";
        case -ELIBACC:
                /* libsmpgw loads OpenSSL with the first key. */
                return "signature checks need OpenSSL's libcrypto (Debian package libssl3), which cannot be "
                       "loaded";
        default:
                return strerror(-r);
        }
}

int cmd_image_info(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(key_list_done) struct key_list kl = {};
        int c, r, exit_code;

        while ((c = getopt_long(argc, argv, "k:jh", options, NULL)) >= 0)
                switch (c) {
                case 'k': {
                        struct mcuboot_key *key;
                        r = mcuboot_key_load_file(optarg, &key);
                        if (r < 0) {
                                fprintf(stderr, "smpgwctl: cannot load key '%s': %s\n", optarg,
                                        key_load_error_to_string(r));
                                return CTL_EXIT_FAILURE;
                        }
                        struct mcuboot_key **p = realloc(kl.keys, (kl.n + 1) * sizeof(*kl.keys));
                        if (!p) {
                                mcuboot_key_free(key);
                                fprintf(stderr, "smpgwctl: out of memory\n");
                                return CTL_EXIT_FAILURE;
                        }
                        kl.keys = p;
                        kl.keys[kl.n++] = key;
                        break;
                }
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        info_help(stdout);
                        return CTL_EXIT_OK;
                default:
                        return CTL_EXIT_USAGE;
                }
        if (optind != argc - 1) {
                fprintf(stderr, "smpgwctl: image info needs exactly one FILE; see 'smpgwctl image "
                                "info --help'\n");
                return CTL_EXIT_USAGE;
        }
        const char *path = argv[optind];

        _cleanup_(mcuboot_image_freep) struct mcuboot_image *img = NULL;
        struct mcuboot_error error = {};
        r = mcuboot_image_load_file(path, &img, &error);
        if (r == -EBADMSG) {
                fprintf(stderr, "smpgwctl: '%s' is not a valid MCUboot image: %s\n", path,
                        error.message);
                if (ctx->json)
                        print_json_error(path, error.message);
                return CTL_EXIT_BAD_IMAGE;
        }
        if (r < 0) {
                const char *why = r == -EFBIG ? "larger than the 16 MiB limit" : strerror(-r);
                fprintf(stderr, "smpgwctl: cannot read '%s': %s\n", path, why);
                if (ctx->json)
                        print_json_error(path, why);
                return CTL_EXIT_FAILURE;
        }

        _cleanup_free_ struct mcuboot_sig_result *sigs = NULL;
        size_t n_sigs = 0;
        r = mcuboot_image_verify(img, kl.keys, kl.n, &sigs, &n_sigs);
        if (r < 0) {
                fprintf(stderr, "smpgwctl: checking signatures of '%s' failed: %s\n", path,
                        strerror(-r));
                return CTL_EXIT_FAILURE;
        }
        int n_valid = r;

        if (img->hash_status != MCUBOOT_HASH_MATCH)
                exit_code = CTL_EXIT_BAD_HASH;
        else if (kl.n > 0 && n_valid == 0)
                exit_code = CTL_EXIT_BAD_SIGNATURE;
        else
                exit_code = CTL_EXIT_OK;

        r = ctx->json ? print_json(path, img, kl.keys, sigs, n_sigs, exit_code == CTL_EXIT_OK)
                      : print_text(path, img, kl.keys, kl.n, sigs, n_sigs);
        if (r < 0) {
                fprintf(stderr, "smpgwctl: %s\n", strerror(-r));
                return CTL_EXIT_FAILURE;
        }

        switch (exit_code) {
        case CTL_EXIT_BAD_HASH:
                switch (img->hash_status) {
                case MCUBOOT_HASH_MISMATCH:
                        fprintf(stderr, "smpgwctl: '%s': the hash TLV does not match the image "
                                        "(corrupted or modified)\n", path);
                        break;
                case MCUBOOT_HASH_MISSING:
                        fprintf(stderr, "smpgwctl: '%s': no SHA256/384/512 TLV\n", path);
                        break;
                case MCUBOOT_HASH_DUPLICATE:
                        fprintf(stderr, "smpgwctl: '%s': more than one hash TLV of a type; "
                                        "Zephyr's img_mgmt refuses such images\n", path);
                        break;
                case MCUBOOT_HASH_ENCRYPTED:
                        fprintf(stderr, "smpgwctl: '%s': encrypted image; its hash covers the "
                                        "plaintext and cannot be checked\n", path);
                        break;
                case MCUBOOT_HASH_MATCH:
                        break;
                }
                break;
        case CTL_EXIT_BAD_SIGNATURE:
                fprintf(stderr, "smpgwctl: '%s': %s\n", path,
                        n_sigs == 0 ? "not signed"
                                    : "no signature is valid with the given key(s)");
                break;
        }

        return exit_code;
}
