/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP result codes in responses, their names and sentences.
 *
 * Two shapes, both decoded from any response body (Zephyr
 * smp_error_version_{1,2}.cddl):
 *   v1: {"rc": int, "rsn"?: text}          MGMT_ERR_* (0 = success)
 *   v2: {"err": {"group": uint, "rc": uint}}  the group's own enum
 * A v2 server still reports SMP-layer failures (unknown group/command,
 * decode errors, ENOMEM, ...) as a top-level "rc", so a response may carry
 * either; both are kept.  No "rc"/"err", or a zero code, means success.
 *
 * Names: Zephyr's constant with "MGMT_ERR_" removed, so they are stable
 * and greppable in Zephyr's sources:
 *   MGMT_ERR_ENOENT                   -> "ENOENT"
 *   OS_MGMT_ERR_RTC_NOT_SET           -> "OS_RTC_NOT_SET"
 *   IMG_MGMT_ERR_NO_FREE_SLOT         -> "IMG_NO_FREE_SLOT"
 *   STAT_MGMT_ERR_INVALID_GROUP       -> "STAT_INVALID_GROUP"
 *   SETTINGS_MGMT_ERR_KEY_NOT_FOUND   -> "SETTINGS_KEY_NOT_FOUND"
 *   FS_MGMT_ERR_FILE_NOT_FOUND        -> "FS_FILE_NOT_FOUND"
 *   SHELL_MGMT_RET_RC_COMMAND_TOO_LONG -> "SHELL_COMMAND_TOO_LONG"
 * MGMT codes >= 256 are "EPERUSER" (application-defined).  Codes we do not
 * know get NULL from the name and message lookups; smp_status_format()
 * then prints a generic sentence with the numbers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-cbor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MGMT_ERR_* (Zephyr mgmt/mcumgr/mgmt/mgmt_defines.h). */
enum smp_mgmt_err {
        SMP_MGMT_ERR_EOK = 0,
        SMP_MGMT_ERR_EUNKNOWN = 1,
        SMP_MGMT_ERR_ENOMEM = 2,
        SMP_MGMT_ERR_EINVAL = 3,
        SMP_MGMT_ERR_ETIMEOUT = 4,
        SMP_MGMT_ERR_ENOENT = 5,
        SMP_MGMT_ERR_EBADSTATE = 6,
        SMP_MGMT_ERR_EMSGSIZE = 7,
        SMP_MGMT_ERR_ENOTSUP = 8,
        SMP_MGMT_ERR_ECORRUPT = 9,
        SMP_MGMT_ERR_EBUSY = 10,
        SMP_MGMT_ERR_EACCESSDENIED = 11,
        SMP_MGMT_ERR_UNSUPPORTED_TOO_OLD = 12,
        SMP_MGMT_ERR_UNSUPPORTED_TOO_NEW = 13,
        SMP_MGMT_ERR_EPERUSER = 256,
};

/* OS group (0) errors (Zephyr os_mgmt.h; 7 as listed in protocol.md). */
enum smp_os_err {
        SMP_OS_ERR_OK = 0,
        SMP_OS_ERR_UNKNOWN = 1,
        SMP_OS_ERR_INVALID_FORMAT = 2,
        SMP_OS_ERR_QUERY_YIELDS_NO_ANSWER = 3,
        SMP_OS_ERR_RTC_NOT_SET = 4,
        SMP_OS_ERR_RTC_COMMAND_FAILED = 5,
        SMP_OS_ERR_QUERY_RESPONSE_VALUE_NOT_VALID = 6,
        SMP_OS_ERR_HEAP_STATS_FAILED = 7,
};

/* Image group (1) errors (Zephyr img_mgmt.h 0-29; 30-34 numbered as in
 * Nordic's Android library, used by zephyr_img_mgmt.c/img_mgmt_state.c). */
enum smp_img_err {
        SMP_IMG_ERR_OK = 0,
        SMP_IMG_ERR_UNKNOWN = 1,
        SMP_IMG_ERR_FLASH_CONFIG_QUERY_FAIL = 2,
        SMP_IMG_ERR_NO_IMAGE = 3,
        SMP_IMG_ERR_NO_TLVS = 4,
        SMP_IMG_ERR_INVALID_TLV = 5,
        SMP_IMG_ERR_TLV_MULTIPLE_HASHES_FOUND = 6,
        SMP_IMG_ERR_TLV_INVALID_SIZE = 7,
        SMP_IMG_ERR_HASH_NOT_FOUND = 8,
        SMP_IMG_ERR_NO_FREE_SLOT = 9,
        SMP_IMG_ERR_FLASH_OPEN_FAILED = 10,
        SMP_IMG_ERR_FLASH_READ_FAILED = 11,
        SMP_IMG_ERR_FLASH_WRITE_FAILED = 12,
        SMP_IMG_ERR_FLASH_ERASE_FAILED = 13,
        SMP_IMG_ERR_INVALID_SLOT = 14,
        SMP_IMG_ERR_NO_FREE_MEMORY = 15,
        SMP_IMG_ERR_FLASH_CONTEXT_ALREADY_SET = 16,
        SMP_IMG_ERR_FLASH_CONTEXT_NOT_SET = 17,
        SMP_IMG_ERR_FLASH_AREA_DEVICE_NULL = 18,
        SMP_IMG_ERR_INVALID_PAGE_OFFSET = 19,
        SMP_IMG_ERR_INVALID_OFFSET = 20,
        SMP_IMG_ERR_INVALID_LENGTH = 21,
        SMP_IMG_ERR_INVALID_IMAGE_HEADER = 22,
        SMP_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC = 23,
        SMP_IMG_ERR_INVALID_HASH = 24,
        SMP_IMG_ERR_INVALID_FLASH_ADDRESS = 25,
        SMP_IMG_ERR_VERSION_GET_FAILED = 26,
        SMP_IMG_ERR_CURRENT_VERSION_IS_NEWER = 27,
        SMP_IMG_ERR_IMAGE_ALREADY_PENDING = 28,
        SMP_IMG_ERR_INVALID_IMAGE_VECTOR_TABLE = 29,
        SMP_IMG_ERR_INVALID_IMAGE_TOO_LARGE = 30,
        SMP_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN = 31,
        SMP_IMG_ERR_IMAGE_CONFIRMATION_DENIED = 32,
        SMP_IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED = 33,
        SMP_IMG_ERR_ACTIVE_SLOT_NOT_KNOWN = 34,
};

/* Stat group (2) errors (Zephyr stat_mgmt.h). */
enum smp_stat_err {
        SMP_STAT_ERR_OK = 0,
        SMP_STAT_ERR_UNKNOWN = 1,
        SMP_STAT_ERR_INVALID_GROUP = 2,
        SMP_STAT_ERR_INVALID_STAT_NAME = 3,
        SMP_STAT_ERR_INVALID_STAT_SIZE = 4,
        SMP_STAT_ERR_WALK_ABORTED = 5,
};

/* Shell group (9) errors (Zephyr shell_mgmt.h, enum shell_mgmt_ret_code_t). */
enum smp_shell_err {
        SMP_SHELL_ERR_OK = 0,
        SMP_SHELL_ERR_UNKNOWN = 1,
        SMP_SHELL_ERR_COMMAND_TOO_LONG = 2,
        SMP_SHELL_ERR_EMPTY_COMMAND = 3,
};

/* The result of a response, as found in its body.  rsn borrows the body. */
struct smp_status {
        bool has_rc;
        int64_t rc;                   /* top-level "rc" (MGMT_ERR_*) */
        struct smp_cbor_slice rsn;    /* "rsn", ptr NULL when absent */
        bool has_err;
        uint64_t err_group;           /* v2 "err" */
        uint64_t err_rc;
};

static inline bool smp_status_failed(const struct smp_status *s) {
        return (s->has_rc && s->rc != 0) || (s->has_err && s->err_rc != 0);
}

/* Reads "rc", "rsn" and "err" of a response body; everything else is
 * ignored.  Returns 0 (whether or not the device reported a failure), or
 * the reader's errors when the body is malformed or those keys have the
 * wrong type.  error (may be NULL) is written on failure. */
int smp_status_decode(const uint8_t *body, size_t len, struct smp_status *ret,
                      struct smp_cbor_error *error);
/* The same on an already parsed body (map = SMP_CBOR_ROOT). */
int smp_status_from_doc(const struct smp_cbor_doc *doc, uint32_t map, struct smp_status *ret);

/* For typed response decoders: 0 when the body reports success,
 * -EREMOTEIO when it reports a failure (the document's error then says
 * "device reported an error: IMG_NO_FREE_SLOT: ..."), or a decode error. */
int smp_status_check(const struct smp_cbor_doc *doc, uint32_t map);

/* Parses a body with smp_cbor_parse_alloc() and, when response is true,
 * runs smp_status_check() on it.  *ret_items is to be free()d after the
 * last use of *ret_doc; both are written only on success. */
int smp_body_parse(const uint8_t *body, size_t len, bool response, struct smp_cbor_error *error,
                   struct smp_cbor_item **ret_items, struct smp_cbor_doc *ret_doc);

/* Encoders for servers (the simulator): {"rc": rc[, "rsn": rsn]} and
 * {"err": {"group": g, "rc": rc}}.  rsn may be NULL.  Return w->err. */
int smp_status_encode_v1(struct smp_cbor_writer *w, int64_t rc, const char *rsn);
int smp_status_encode_v2(struct smp_cbor_writer *w, uint16_t group, uint16_t rc);

/* Names and sentences; NULL when the code is unknown.  group is the SMP
 * group number of a v2 "err". */
const char *smp_mgmt_err_name(int64_t rc);
const char *smp_mgmt_err_message(int64_t rc);
const char *smp_group_err_name(uint64_t group, uint64_t rc);
const char *smp_group_err_message(uint64_t group, uint64_t rc);

/* One line describing a status, e.g.
 *   "IMG_NO_FREE_SLOT: no free slot to upload the image to (group 1, rc 9)"
 *   "ENOTSUP: command or operation not supported (rc 8)"
 *   "unknown error 77 in group 64"
 *   "success"
 * plus ": <rsn>" when the device sent a reason.  Returns the length
 * snprintf() would have produced (>= 0), or -EINVAL. */
int smp_status_format(const struct smp_status *s, char *buf, size_t size);

/* What a Zephyr server with CONFIG_MCUMGR_SMP_SUPPORT_ORIGINAL_PROTOCOL
 * answers a v1 request with instead of a v2 group error (the
 * *_mgmt_translate_error_code() functions of the OS, image and stat
 * groups).  Groups without a known translation give EUNKNOWN; 0 stays 0. */
int smp_err_v1_legacy_rc(uint64_t group, uint64_t rc);

/* A negative errno for a failed status, 0 for success.  Group errors are
 * first reduced with smp_err_v1_legacy_rc().  EBADSTATE becomes -EBADFD,
 * ENOTSUP -EOPNOTSUPP, ECORRUPT -EBADMSG, EACCESSDENIED -EACCES, the
 * version mismatches -EPROTONOSUPPORT, EUNKNOWN -EIO, application and
 * unknown codes -EREMOTEIO. */
int smp_status_to_errno(const struct smp_status *s);

#ifdef __cplusplus
}
#endif
