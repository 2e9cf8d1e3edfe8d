/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A device made of fuzzer bytes, for the targets that drive sessions,
 * uploads and updates (fuzz-upload, fuzz-update): a transport ("fuzz")
 * registered with smp_context_add_transport() whose link keeps every
 * request frame the session sends, and answers, drops, duplicates or
 * garbles them as the input says; and a fake clock, so that the session's
 * and the procedures' timers fire when the input (or idleness) moves time
 * on, never by the wall clock: a run is a function of its input.  With
 * the clock fake, the loop's timerfd_settime() and polling epoll_wait()
 * calls are skipped too (fuzz-device.c says why).
 *
 * Input: FUZZ_DEVICE_CONFIG_SIZE bytes of configuration (struct
 * fuzz_device_config; missing bytes count as 0), then actions, one byte
 * each with the operands it names:
 *
 *   0..3   answer a pending request the way a device would (operand: which
 *          one; then what the answer says, see device_answer())
 *   4, 5   answer with a body from the input (which, length, bytes); the
 *          high bits pick the version, a lying length, and whether the
 *          request stays pending (to be answered again)
 *   6      drop a pending request (lost)
 *   7      deliver the last packet again; with the high bit, cancel the
 *          procedure instead (fuzz_device_set_cancel())
 *   8      deliver raw bytes (length, bytes)
 *   9      move time on by 2^n µs
 *   10     the link goes down
 *   11     the next sends are refused with -EAGAIN (writable() later)
 *   12     the next send fails (-EIO, -EMSGSIZE, -ENOTCONN, -ENOBUFS)
 *   13     the link goes down from inside the next send
 *   14     the next opens fail
 *   15     answer the two oldest requests in one packet
 *
 * Actions are read only while the device has a request to answer; with
 * none, time moves on by itself (the session's timers, the update's
 * polls), in steps that double while nothing happens.  When the input ends the device falls silent, and whatever runs
 * must then end on its own within FUZZ_DEVICE_PATIENCE_USEC of fake time:
 * a procedure that waits for ever is a finding (abort).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smpgw/smp-img.h"
#include "smpgw/smp-session.h"

#define FUZZ_DEVICE_CONFIG_SIZE 16u
/* Fake time a silent device waits for a procedure to end. */
#define FUZZ_DEVICE_PATIENCE_USEC (3600ull * 1000000ull)
/* Image sizes the targets upload (fuzz_image()). */
#define FUZZ_IMAGE_SIZES 8u

struct fuzz_device_config {
        uint8_t flags;           /* FUZZ_LINK_* */
        uint8_t mtu[2];          /* little endian; below 32: 32 */
        uint8_t image_size;      /* index into the sizes, modulo */
        uint8_t mode;            /* the target's to read */
        uint8_t window;
        uint8_t chunk[2];
        uint8_t path_mtu[2];
        uint8_t session;         /* timeout 250 ms * (1 + low 4 bits), retries high bits % 4 */
        uint8_t timing;          /* the target's to read */
        uint8_t piece;           /* stream links: bytes per receive() (0: whole packets) */
        uint8_t buf_size[2];
        uint8_t buf_count;
};

enum {
        FUZZ_LINK_STREAM = 1u << 0,
        FUZZ_LINK_FRAGMENTS = 1u << 1,
        FUZZ_LINK_BUFFER_OVERHEAD = 1u << 2,   /* 4, like serial */
        FUZZ_LINK_START_V1 = 1u << 3,
        FUZZ_LINK_FLAG_A = 1u << 4,            /* the target's to read */
        FUZZ_LINK_FLAG_B = 1u << 5,            /* the target's to read */
};

struct fuzz_device;

/* Sets up the clock, the transport and a session on it, on the event loop
 * all inputs share, for one input; NULL when the input is too short to
 * say anything. */
struct fuzz_device *fuzz_device_new(const uint8_t *data, size_t size);
const struct fuzz_device_config *fuzz_device_get_config(const struct fuzz_device *d);
struct smp_session *fuzz_device_get_session(struct fuzz_device *d);
static inline uint16_t fuzz_le16(const uint8_t b[2]) {
        return (uint16_t) (b[0] | b[1] << 8);
}

/* The image the device's answers know by hash (its SHA256 TLV); the
 * state answers of device_answer() list it or the "old" one. */
void fuzz_device_set_new_hash(struct fuzz_device *d, const uint8_t hash[32]);

/* Called with every request frame the session sends, to check what a
 * procedure asks of the device; upload is the body of an image upload
 * request, decoded (NULL for other requests). */
typedef void (*fuzz_request_fn)(const struct smp_frame *f, const struct smp_img_upload_req *upload, void *userdata);
void fuzz_device_set_observer(struct fuzz_device *d, fuzz_request_fn fn, void *userdata);

/* What cancels the target's procedure (smp_update_cancel(), ...): called
 * at most once, and the target then counts as done. */
typedef void (*fuzz_cancel_fn)(void *userdata);
void fuzz_device_set_cancel(struct fuzz_device *d, fuzz_cancel_fn fn, void *userdata);

/* Runs the loop, acting on the input, until *done is set; aborts when
 * something waits for ever (see the top). */
void fuzz_device_run(struct fuzz_device *d, const bool *done);

/* Fake microseconds since fuzz_device_new(). */
uint64_t fuzz_device_elapsed(const struct fuzz_device *d);

/* Frees the session and the device (the event loop, empty again, is kept
 * for the next input); the clock is real again. */
void fuzz_device_free(struct fuzz_device *d);

/* Checks an upload request (req, decoded from f; NULL: not an upload
 * request, which passes) against the file it uploads: the data at its
 * offset is the file's, a first chunk carries the file's length and
 * SHA-256. */
void fuzz_check_upload_request(const struct smp_frame *f, const struct smp_img_upload_req *req, const uint8_t *file,
                               size_t len);

/* An unsigned MCUboot image of one of FUZZ_IMAGE_SIZES body sizes (index
 * modulo), built once and kept; *ret_hash is its SHA256 TLV. */
const uint8_t *fuzz_image(unsigned index, size_t *ret_len, const uint8_t **ret_hash);
