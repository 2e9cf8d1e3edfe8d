/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP result codes: decoding "rc"/"rsn"/"err" from responses, the tables
 * of names and sentences, Zephyr's v1 legacy translation and errno.
 * Tables follow Zephyr's headers (mgmt_defines.h, os_mgmt.h, img_mgmt.h,
 * stat_mgmt.h, settings_mgmt.h, fs_mgmt.h, shell_mgmt.h) and protocol.md
 * sections 1-3.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "util.h"

struct err_entry {
        const char *name;
        const char *message;
};

static const struct err_entry mgmt_errors[] = {
        [0] = { "EOK", "success" },
        [1] = { "EUNKNOWN", "unknown error" },
        [2] = { "ENOMEM", "the device is out of memory" },
        [3] = { "EINVAL", "invalid request or argument" },
        [4] = { "ETIMEOUT", "operation timed out on the device" },
        [5] = { "ENOENT", "no such entry" },
        [6] = { "EBADSTATE", "the device is in a state that does not allow this" },
        [7] = { "EMSGSIZE", "the response does not fit the device's buffer" },
        [8] = { "ENOTSUP", "command or operation not supported" },
        [9] = { "ECORRUPT", "the request is corrupt or could not be decoded" },
        [10] = { "EBUSY", "the device is busy, try again later" },
        [11] = { "EACCESSDENIED", "access denied" },
        [12] = { "UNSUPPORTED_TOO_OLD", "the request's SMP version is too old for this device" },
        [13] = { "UNSUPPORTED_TOO_NEW", "the request's SMP version is too new for this device" },
};

static const struct err_entry os_errors[] = {
        [0] = { "OS_OK", "success" },
        [1] = { "OS_UNKNOWN", "unknown OS management error" },
        [2] = { "OS_INVALID_FORMAT", "the requested format is not valid" },
        [3] = { "OS_QUERY_YIELDS_NO_ANSWER", "the query was not recognised" },
        [4] = { "OS_RTC_NOT_SET", "the real-time clock is not set" },
        [5] = { "OS_RTC_COMMAND_FAILED", "the real-time clock command failed" },
        [6] = { "OS_QUERY_RESPONSE_VALUE_NOT_VALID", "the query has no valid value to report" },
        [7] = { "OS_HEAP_STATS_FAILED", "reading heap statistics failed" },
};

static const struct err_entry img_errors[] = {
        [0] = { "IMG_OK", "success" },
        [1] = { "IMG_UNKNOWN", "unknown image management error" },
        [2] = { "IMG_FLASH_CONFIG_QUERY_FAIL", "querying the flash area configuration failed" },
        [3] = { "IMG_NO_IMAGE", "there is no image in the slot" },
        [4] = { "IMG_NO_TLVS", "the image has no TLV area" },
        [5] = { "IMG_INVALID_TLV", "the image has an invalid TLV" },
        [6] = { "IMG_TLV_MULTIPLE_HASHES_FOUND", "the image has more than one hash TLV" },
        [7] = { "IMG_TLV_INVALID_SIZE", "an image TLV has an invalid size" },
        [8] = { "IMG_HASH_NOT_FOUND", "no image with that hash" },
        [9] = { "IMG_NO_FREE_SLOT", "no free slot to upload the image to" },
        [10] = { "IMG_FLASH_OPEN_FAILED", "opening the flash area failed" },
        [11] = { "IMG_FLASH_READ_FAILED", "reading flash failed" },
        [12] = { "IMG_FLASH_WRITE_FAILED", "writing flash failed" },
        [13] = { "IMG_FLASH_ERASE_FAILED", "erasing flash failed" },
        [14] = { "IMG_INVALID_SLOT", "invalid slot" },
        [15] = { "IMG_NO_FREE_MEMORY", "the device is out of memory for the image operation" },
        [16] = { "IMG_FLASH_CONTEXT_ALREADY_SET", "the flash context is already set" },
        [17] = { "IMG_FLASH_CONTEXT_NOT_SET", "the flash context is not set" },
        [18] = { "IMG_FLASH_AREA_DEVICE_NULL", "the flash area has no device" },
        [19] = { "IMG_INVALID_PAGE_OFFSET", "invalid page offset" },
        [20] = { "IMG_INVALID_OFFSET", "missing or invalid upload offset" },
        [21] = { "IMG_INVALID_LENGTH", "missing or invalid image length" },
        [22] = { "IMG_INVALID_IMAGE_HEADER", "invalid image header (first chunk too short?)" },
        [23] = { "IMG_INVALID_IMAGE_HEADER_MAGIC", "the image header has a bad magic number" },
        [24] = { "IMG_INVALID_HASH", "invalid hash (wrong length)" },
        [25] = { "IMG_INVALID_FLASH_ADDRESS", "the image is built for a different flash address" },
        [26] = { "IMG_VERSION_GET_FAILED", "reading the running image's version failed" },
        [27] = { "IMG_CURRENT_VERSION_IS_NEWER", "the running image is newer than the upload" },
        [28] = { "IMG_IMAGE_ALREADY_PENDING", "another image is already pending" },
        [29] = { "IMG_INVALID_IMAGE_VECTOR_TABLE", "the image has an invalid vector table" },
        [30] = { "IMG_INVALID_IMAGE_TOO_LARGE", "the image is too large for the slot" },
        [31] = { "IMG_INVALID_IMAGE_DATA_OVERRUN", "the upload runs past the announced length" },
        [32] = { "IMG_IMAGE_CONFIRMATION_DENIED", "confirming this image is not allowed" },
        [33] = { "IMG_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED", "the running image cannot be marked for test" },
        [34] = { "IMG_ACTIVE_SLOT_NOT_KNOWN", "the active slot cannot be determined" },
};

static const struct err_entry stat_errors[] = {
        [0] = { "STAT_OK", "success" },
        [1] = { "STAT_UNKNOWN", "unknown statistics error" },
        [2] = { "STAT_INVALID_GROUP", "no such statistics group" },
        [3] = { "STAT_INVALID_STAT_NAME", "no such statistic" },
        [4] = { "STAT_INVALID_STAT_SIZE", "the statistic has a size that cannot be reported" },
        [5] = { "STAT_WALK_ABORTED", "walking the statistics was aborted" },
};

static const struct err_entry settings_errors[] = {
        [0] = { "SETTINGS_OK", "success" },
        [1] = { "SETTINGS_UNKNOWN", "unknown settings error" },
        [2] = { "SETTINGS_KEY_TOO_LONG", "the settings key is too long" },
        [3] = { "SETTINGS_KEY_NOT_FOUND", "no such settings key" },
        [4] = { "SETTINGS_READ_NOT_SUPPORTED", "reading this setting is not supported" },
        [5] = { "SETTINGS_ROOT_KEY_NOT_FOUND", "no such settings root key" },
        [6] = { "SETTINGS_WRITE_NOT_SUPPORTED", "writing this setting is not supported" },
        [7] = { "SETTINGS_DELETE_NOT_SUPPORTED", "deleting this setting is not supported" },
};

static const struct err_entry fs_errors[] = {
        [0] = { "FS_OK", "success" },
        [1] = { "FS_UNKNOWN", "unknown file system error" },
        [2] = { "FS_FILE_INVALID_NAME", "invalid file name" },
        [3] = { "FS_FILE_NOT_FOUND", "no such file" },
        [4] = { "FS_FILE_IS_DIRECTORY", "the path is a directory" },
        [5] = { "FS_FILE_OPEN_FAILED", "opening the file failed" },
        [6] = { "FS_FILE_SEEK_FAILED", "seeking in the file failed" },
        [7] = { "FS_FILE_READ_FAILED", "reading the file failed" },
        [8] = { "FS_FILE_TRUNCATE_FAILED", "truncating the file failed" },
        [9] = { "FS_FILE_DELETE_FAILED", "deleting the file failed" },
        [10] = { "FS_FILE_WRITE_FAILED", "writing the file failed" },
        [11] = { "FS_FILE_OFFSET_NOT_VALID", "the offset does not match the file on the device" },
        [12] = { "FS_FILE_OFFSET_LARGER_THAN_FILE", "the offset is past the end of the file" },
        [13] = { "FS_CHECKSUM_HASH_NOT_FOUND", "the checksum or hash type is not supported" },
        [14] = { "FS_MOUNT_POINT_NOT_FOUND", "no such mount point" },
        [15] = { "FS_READ_ONLY_FILESYSTEM", "the file system is read-only" },
        [16] = { "FS_FILE_EMPTY", "the file is empty" },
};

static const struct err_entry shell_errors[] = {
        [0] = { "SHELL_OK", "success" },
        [1] = { "SHELL_UNKNOWN", "unknown shell management error" },
        [2] = { "SHELL_COMMAND_TOO_LONG", "the command line does not fit the device's shell buffer" },
        [3] = { "SHELL_EMPTY_COMMAND", "no command to run was given" },
};

static const struct err_entry *mgmt_entry(int64_t rc) {
        if (rc < 0 || rc >= (int64_t) ELEMENTSOF(mgmt_errors))
                return NULL;
        return &mgmt_errors[rc];
}

static const struct err_entry *group_entry(uint64_t group, uint64_t rc) {
        const struct err_entry *table;
        size_t n;

        switch (group) {
        case SMP_GROUP_OS:
                table = os_errors, n = ELEMENTSOF(os_errors);
                break;
        case SMP_GROUP_IMAGE:
                table = img_errors, n = ELEMENTSOF(img_errors);
                break;
        case SMP_GROUP_STAT:
                table = stat_errors, n = ELEMENTSOF(stat_errors);
                break;
        case SMP_GROUP_SETTINGS:
                table = settings_errors, n = ELEMENTSOF(settings_errors);
                break;
        case SMP_GROUP_FS:
                table = fs_errors, n = ELEMENTSOF(fs_errors);
                break;
        case SMP_GROUP_SHELL:
                table = shell_errors, n = ELEMENTSOF(shell_errors);
                break;
        default:
                return NULL;
        }
        return rc < n ? &table[rc] : NULL;
}

const char *smp_mgmt_err_name(int64_t rc) {
        const struct err_entry *e = mgmt_entry(rc);

        if (e)
                return e->name;
        return rc >= SMP_MGMT_ERR_EPERUSER ? "EPERUSER" : NULL;
}

const char *smp_mgmt_err_message(int64_t rc) {
        const struct err_entry *e = mgmt_entry(rc);

        if (e)
                return e->message;
        return rc >= SMP_MGMT_ERR_EPERUSER ? "application-defined error" : NULL;
}

const char *smp_group_err_name(uint64_t group, uint64_t rc) {
        const struct err_entry *e = group_entry(group, rc);
        return e ? e->name : NULL;
}

const char *smp_group_err_message(uint64_t group, uint64_t rc) {
        const struct err_entry *e = group_entry(group, rc);
        return e ? e->message : NULL;
}

int smp_status_from_doc(const struct smp_cbor_doc *doc, uint32_t map, struct smp_status *ret) {
        struct smp_status s = { 0 };
        uint32_t err;
        int r;

        r = smp_cbor_map_opt_int(doc, map, "rc", &s.rc);
        if (r < 0)
                return r;
        s.has_rc = r > 0;

        r = smp_cbor_map_opt_text(doc, map, "rsn", &s.rsn);
        if (r < 0)
                return r;

        r = smp_cbor_map_find(doc, map, "err", &err);
        if (r >= 0) {
                r = smp_cbor_item_map(doc, err, "err");
                if (r < 0)
                        return r;
                r = smp_cbor_map_get_uint(doc, err, "group", &s.err_group);
                if (r < 0)
                        return r;
                r = smp_cbor_map_get_uint(doc, err, "rc", &s.err_rc);
                if (r < 0)
                        return r;
                s.has_err = true;
        } else if (r != -ENOENT)
                return r;

        *ret = s;
        return 0;
}

int smp_status_check(const struct smp_cbor_doc *doc, uint32_t map) {
        struct smp_status s;
        char text[256];
        int r;

        r = smp_status_from_doc(doc, map, &s);
        if (r < 0)
                return r;
        if (!smp_status_failed(&s))
                return 0;
        (void) smp_status_format(&s, text, sizeof(text));
        return smp_cbor_doc_fail(doc, -EREMOTEIO, 0, "device reported an error: %s", text);
}

int smp_status_decode(const uint8_t *body, size_t len, struct smp_status *ret,
                      struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        struct smp_status s;
        int r;

        r = smp_cbor_parse_alloc(body, len, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_status_from_doc(&doc, SMP_CBOR_ROOT, &s);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int smp_body_parse(const uint8_t *body, size_t len, bool response, struct smp_cbor_error *error,
                   struct smp_cbor_item **ret_items, struct smp_cbor_doc *ret_doc) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_cbor_doc doc;
        int r;

        if (!ret_items || !ret_doc)
                return -EINVAL;
        r = smp_cbor_parse_alloc(body, len, error, &items, &doc);
        if (r < 0)
                return r;
        if (response) {
                /* An error reply carries none of the command's fields: report
                 * the device's error rather than a "missing field". */
                r = smp_status_check(&doc, SMP_CBOR_ROOT);
                if (r < 0)
                        return r;
        }
        *ret_items = TAKE_PTR(items);
        *ret_doc = doc;
        return 0;
}

int smp_status_encode_v1(struct smp_cbor_writer *w, int64_t rc, const char *rsn) {
        smp_cbor_put_map(w, rsn ? 2 : 1);
        smp_cbor_put_text(w, "rc");
        smp_cbor_put_int(w, rc);
        if (rsn) {
                smp_cbor_put_text(w, "rsn");
                smp_cbor_put_text(w, rsn);
        }
        return smp_cbor_put_end(w);
}

int smp_status_encode_v2(struct smp_cbor_writer *w, uint16_t group, uint16_t rc) {
        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "err");
        smp_cbor_put_map(w, 2);
        smp_cbor_put_text(w, "group");
        smp_cbor_put_uint(w, group);
        smp_cbor_put_text(w, "rc");
        smp_cbor_put_uint(w, rc);
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

int smp_status_format(const struct smp_status *s, char *buf, size_t size) {
        char reason[128] = "";
        int n;

        if (!s || (!buf && size > 0))
                return -EINVAL;

        if (smp_cbor_slice_present(s->rsn) && s->rsn.len > 0) {
                /* The reason comes from the device: keep it printable. */
                size_t k = 0;
                reason[k++] = ':';
                reason[k++] = ' ';
                for (size_t i = 0; i < s->rsn.len && k < sizeof(reason) - 1; i++) {
                        uint8_t c = s->rsn.ptr[i];
                        reason[k++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
                }
                reason[k] = 0;
        }

        if (s->has_err && s->err_rc != 0) {
                const char *name = smp_group_err_name(s->err_group, s->err_rc);
                const char *msg = smp_group_err_message(s->err_group, s->err_rc);
                if (name)
                        n = snprintf(buf, size, "%s: %s (group %" PRIu64 ", rc %" PRIu64 ")%s",
                                     name, msg, s->err_group, s->err_rc, reason);
                else
                        n = snprintf(buf, size, "unknown error %" PRIu64 " in group %" PRIu64 "%s",
                                     s->err_rc, s->err_group, reason);
        } else if (s->has_rc && s->rc != 0) {
                const char *name = smp_mgmt_err_name(s->rc);
                const char *msg = smp_mgmt_err_message(s->rc);
                if (name && s->rc >= SMP_MGMT_ERR_EPERUSER)
                        n = snprintf(buf, size, "%s+%" PRId64 ": %s (rc %" PRId64 ")%s", name,
                                     s->rc - SMP_MGMT_ERR_EPERUSER, msg, s->rc, reason);
                else if (name)
                        n = snprintf(buf, size, "%s: %s (rc %" PRId64 ")%s", name, msg, s->rc, reason);
                else
                        n = snprintf(buf, size, "unknown SMP error %" PRId64 "%s", s->rc, reason);
        } else
                n = snprintf(buf, size, "success%s", reason);

        return n < 0 ? -EINVAL : n;
}

int smp_err_v1_legacy_rc(uint64_t group, uint64_t rc) {
        if (rc == 0)
                return SMP_MGMT_ERR_EOK;

        switch (group) {
        case SMP_GROUP_OS:
                switch (rc) {
                case SMP_OS_ERR_INVALID_FORMAT:
                        return SMP_MGMT_ERR_EINVAL;
                case SMP_OS_ERR_QUERY_YIELDS_NO_ANSWER:
                case SMP_OS_ERR_RTC_NOT_SET:
                        return SMP_MGMT_ERR_ENOENT;
                default:
                        return SMP_MGMT_ERR_EUNKNOWN;
                }
        case SMP_GROUP_IMAGE:
                switch (rc) {
                case SMP_IMG_ERR_NO_IMAGE:
                case SMP_IMG_ERR_NO_TLVS:
                        return SMP_MGMT_ERR_ENOENT;
                case SMP_IMG_ERR_NO_FREE_SLOT:
                case SMP_IMG_ERR_CURRENT_VERSION_IS_NEWER:
                case SMP_IMG_ERR_IMAGE_ALREADY_PENDING:
                        return SMP_MGMT_ERR_EBADSTATE;
                case SMP_IMG_ERR_NO_FREE_MEMORY:
                        return SMP_MGMT_ERR_ENOMEM;
                case SMP_IMG_ERR_INVALID_SLOT:
                case SMP_IMG_ERR_INVALID_PAGE_OFFSET:
                case SMP_IMG_ERR_INVALID_OFFSET:
                case SMP_IMG_ERR_INVALID_LENGTH:
                case SMP_IMG_ERR_INVALID_IMAGE_HEADER:
                case SMP_IMG_ERR_INVALID_HASH:
                case SMP_IMG_ERR_INVALID_FLASH_ADDRESS:
                        return SMP_MGMT_ERR_EINVAL;
                default:
                        return SMP_MGMT_ERR_EUNKNOWN;
                }
        case SMP_GROUP_SHELL:
                /* shell_mgmt_translate_error_code() */
                switch (rc) {
                case SMP_SHELL_ERR_COMMAND_TOO_LONG:
                case SMP_SHELL_ERR_EMPTY_COMMAND:
                        return SMP_MGMT_ERR_EINVAL;
                default:
                        return SMP_MGMT_ERR_EUNKNOWN;
                }
        case SMP_GROUP_STAT:
                switch (rc) {
                case SMP_STAT_ERR_INVALID_GROUP:
                case SMP_STAT_ERR_INVALID_STAT_NAME:
                        return SMP_MGMT_ERR_ENOENT;
                case SMP_STAT_ERR_INVALID_STAT_SIZE:
                        return SMP_MGMT_ERR_EINVAL;
                default:
                        return SMP_MGMT_ERR_EUNKNOWN;
                }
        default:
                return SMP_MGMT_ERR_EUNKNOWN;
        }
}

static int mgmt_rc_to_errno(int64_t rc) {
        switch (rc) {
        case SMP_MGMT_ERR_EOK:
                return 0;
        case SMP_MGMT_ERR_EUNKNOWN:
                return -EIO;
        case SMP_MGMT_ERR_ENOMEM:
                return -ENOMEM;
        case SMP_MGMT_ERR_EINVAL:
                return -EINVAL;
        case SMP_MGMT_ERR_ETIMEOUT:
                return -ETIMEDOUT;
        case SMP_MGMT_ERR_ENOENT:
                return -ENOENT;
        case SMP_MGMT_ERR_EBADSTATE:
                return -EBADFD;
        case SMP_MGMT_ERR_EMSGSIZE:
                return -EMSGSIZE;
        case SMP_MGMT_ERR_ENOTSUP:
                return -EOPNOTSUPP;
        case SMP_MGMT_ERR_ECORRUPT:
                return -EBADMSG;
        case SMP_MGMT_ERR_EBUSY:
                return -EBUSY;
        case SMP_MGMT_ERR_EACCESSDENIED:
                return -EACCES;
        case SMP_MGMT_ERR_UNSUPPORTED_TOO_OLD:
        case SMP_MGMT_ERR_UNSUPPORTED_TOO_NEW:
                return -EPROTONOSUPPORT;
        default:
                return -EREMOTEIO;
        }
}

int smp_status_to_errno(const struct smp_status *s) {
        if (!s)
                return -EINVAL;
        if (s->has_err && s->err_rc != 0)
                return mgmt_rc_to_errno(smp_err_v1_legacy_rc(s->err_group, s->err_rc));
        if (s->has_rc && s->rc != 0)
                return mgmt_rc_to_errno(s->rc);
        return 0;
}
