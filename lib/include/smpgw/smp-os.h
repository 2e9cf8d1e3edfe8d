/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OS management group (0): bodies of echo, task statistics, date-time,
 * reset, mcumgr parameters, OS/application info and bootloader info, in
 * both directions (the client encodes requests and decodes responses; the
 * device simulator decodes requests and encodes responses).
 *
 * Conventions shared with smp-img.h and smp-stat.h:
 *   - encoders write one body into a struct smp_cbor_writer (definite or
 *     zcbor-style indefinite containers, as the writer is set up) and
 *     return w->err (0 or -ENOBUFS), or -EINVAL for arguments they refuse;
 *   - decoders take the whole body, return 0 or a negative errno, write
 *     ret only on success and a sentence into error (may be NULL) on
 *     failure;
 *   - response decoders first look for "rc"/"err" and return -EREMOTEIO
 *     when the device reported a failure (decode it with
 *     smp_status_decode() to get the codes);
 *   - unknown keys are skipped; a known key present twice is -EBADMSG;
 *   - struct smp_cbor_slice fields of decoded structs borrow the body:
 *     keep it alive as long as the struct.  Arrays allocated by a decoder
 *     belong to the struct and are released by its *_done() function.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-cbor.h>

#ifdef __cplusplus
extern "C" {
#endif

enum smp_os_cmd {
        SMP_OS_CMD_ECHO = 0,
        SMP_OS_CMD_CONS_ECHO_CTRL = 1,
        SMP_OS_CMD_TASKSTAT = 2,
        SMP_OS_CMD_MPSTAT = 3,
        SMP_OS_CMD_DATETIME = 4,
        SMP_OS_CMD_RESET = 5,
        SMP_OS_CMD_MCUMGR_PARAMS = 6,
        SMP_OS_CMD_INFO = 7,
        SMP_OS_CMD_BOOTLOADER_INFO = 8,
};

/* Echo (id 0, read or write): {"d": text} -> {"r": text}. */
int smp_os_echo_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice text);
int smp_os_echo_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_text,
                           struct smp_cbor_error *error);
int smp_os_echo_rsp_encode(struct smp_cbor_writer *w, struct smp_cbor_slice text);
int smp_os_echo_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_text,
                           struct smp_cbor_error *error);

/* Task statistics (id 2, read {}): {"tasks": {name: {...}}}.  Fields a
 * device leaves out decode as 0.  prio is signed: Zephyr's cooperative
 * threads have negative priorities. */
struct smp_os_task {
        struct smp_cbor_slice name;
        int64_t prio;
        uint64_t tid;
        uint64_t state;
        uint64_t stkuse;
        uint64_t stksiz;
        uint64_t cswcnt;
        uint64_t runtime;
        uint64_t last_checkin;
        uint64_t next_checkin;
};

struct smp_os_taskstat_rsp {
        struct smp_os_task *tasks;  /* owned after decode; see _done() */
        size_t n_tasks;
};

int smp_os_taskstat_rsp_encode(struct smp_cbor_writer *w, const struct smp_os_taskstat_rsp *rsp);
int smp_os_taskstat_rsp_decode(const uint8_t *body, size_t len, struct smp_os_taskstat_rsp *ret,
                               struct smp_cbor_error *error);
void smp_os_taskstat_rsp_done(struct smp_os_taskstat_rsp *rsp);

/* Date-time (id 4): read {} -> {"datetime": text}; write {"datetime": text}
 * -> {}.  The same body shape both ways, so one pair of functions. */
int smp_os_datetime_encode(struct smp_cbor_writer *w, struct smp_cbor_slice datetime);
/* Decodes a request (write) body: no "rc"/"err" check. */
int smp_os_datetime_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret,
                               struct smp_cbor_error *error);
int smp_os_datetime_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret,
                               struct smp_cbor_error *error);

/* Reset (id 5, write): {} or {"force": true, "boot_mode": uint}, answer {}.
 * Zephyr documents force as an int but decodes a bool; Nordic sends true.
 * We encode a bool and accept both on decode (a non-zero uint = true). */
struct smp_os_reset_req {
        bool force;
        bool has_boot_mode;
        uint32_t boot_mode;  /* 0 normal, 1 bootloader (Nordic) */
};

int smp_os_reset_req_encode(struct smp_cbor_writer *w, const struct smp_os_reset_req *req);
int smp_os_reset_req_decode(const uint8_t *body, size_t len, struct smp_os_reset_req *ret,
                            struct smp_cbor_error *error);

/* mcumgr parameters (id 6, read {}): {"buf_size", "buf_count"}.  buf_size
 * is the largest whole SMP packet (header included) the device takes. */
struct smp_os_params_rsp {
        uint32_t buf_size;
        uint32_t buf_count;
};

int smp_os_params_rsp_encode(struct smp_cbor_writer *w, const struct smp_os_params_rsp *rsp);
int smp_os_params_rsp_decode(const uint8_t *body, size_t len, struct smp_os_params_rsp *ret,
                             struct smp_cbor_error *error);

/* OS/application info (id 7, read): {"format"?: text} -> {"output": text}.
 * An absent format (ptr NULL) is left out of the request. */
int smp_os_info_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice format);
int smp_os_info_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_format,
                           struct smp_cbor_error *error);
int smp_os_info_rsp_encode(struct smp_cbor_writer *w, struct smp_cbor_slice output);
int smp_os_info_rsp_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_output,
                           struct smp_cbor_error *error);

/* Bootloader info (id 8, read): {} or {"query": "mode"} ->
 * {"bootloader": "MCUboot"} or {"mode": int, "no-downgrade"?: bool}. */
struct smp_os_bootloader_info_rsp {
        struct smp_cbor_slice bootloader;  /* absent: ptr NULL */
        bool has_mode;
        int64_t mode;                      /* -1 unknown, 0 single app, ... */
        bool no_downgrade;
};

int smp_os_bootloader_info_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice query);
int smp_os_bootloader_info_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_query,
                                      struct smp_cbor_error *error);
int smp_os_bootloader_info_rsp_encode(struct smp_cbor_writer *w,
                                      const struct smp_os_bootloader_info_rsp *rsp);
int smp_os_bootloader_info_rsp_decode(const uint8_t *body, size_t len,
                                      struct smp_os_bootloader_info_rsp *ret,
                                      struct smp_cbor_error *error);

#ifdef __cplusplus
}
#endif
