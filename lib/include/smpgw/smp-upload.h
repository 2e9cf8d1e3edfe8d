/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image upload (image group, command 1) over an SMP session, pipelined:
 *
 *  - reads mcumgr parameters (buf_size, buf_count) unless given;
 *  - sizes every chunk exactly: the largest data that keeps the whole SMP
 *    packet within the device's buffer (less what the transport keeps in
 *    it) and, unless the transport fragments, within one link packet;
 *  - sends the first chunk (with len, the SHA-256 of the whole file, the
 *    image number) alone, with its own long timeout, because the device
 *    erases the slot before it answers; its answer is where the device
 *    wants us to go on from (a resumed upload answers with its offset);
 *  - on links that do not fragment (UDP), unless a chunk size is given,
 *    finds the largest packet the path carries (RFC 8899 datagram
 *    PLPMTUD): chunks start at a size any path carries (548 bytes, or a
 *    size an earlier upload learned: params.path_mtu), and probes, one
 *    chunk-sized packet at a time beside the data, search up to the
 *    transport's limit; the first chunk never exceeds 548 bytes, so a
 *    narrow path cannot cost the 40 s slot erase timeout; data that
 *    stops arriving at the learned size (a black hole) takes chunks back
 *    to 548 and the search starts again.  result.path_mtu is what was
 *    learned, to give the next upload to the same device;
 *  - then keeps up to `window` chunks in flight: by default the device's
 *    buf_count - 1, one netbuf being needed for each answer (Nordic's
 *    nRF Connect Device Manager does the same);
 *  - when an answer carries another offset than the end of its chunk
 *    (a chunk was lost, the device rebooted), stops sending, lets the
 *    chunks in flight drain, and goes on from the device's offset;
 *    halves the window on loss and timeouts and grows it back by one per
 *    window of clean answers;
 *  - a device that answers offset 0 to the last chunk (a lost answer to
 *    the chunk that completed the upload) is asked whether it holds the
 *    image (params.image_hash) before the file goes again;
 *  - gives up after max_failures timeouts or resyncs without progress.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-error.h>
#include <smpgw/smp-session.h>

#ifdef __cplusplus
extern "C" {
#endif

struct smp_upload;

#define SMP_UPLOAD_FIRST_TIMEOUT_DEFAULT_USEC (40u * 1000000u)  /* slot erase */
#define SMP_UPLOAD_MAX_FAILURES_DEFAULT 5u
#define SMP_UPLOAD_WINDOW_MAX 64u
#define SMP_UPLOAD_IMAGE_HASH_SIZE 32u

struct smp_upload_progress {
        uint64_t offset;           /* bytes the device has acknowledged */
        uint64_t total;
        uint64_t resumed_at;       /* offset the device resumed from (0: fresh) */
        double rate;               /* bytes/s over this run, resumed part excluded */
        double eta_sec;            /* -1 when unknown */
        unsigned window;           /* chunks in flight allowed now */
        size_t chunk;              /* data bytes per full chunk */
        uint64_t retransmits;      /* chunks sent again */
};

typedef void (*smp_upload_progress_fn)(struct smp_upload *u, const struct smp_upload_progress *p,
                                       void *userdata);

struct smp_upload_result {
        int error;                 /* 0 or negative errno (-EREMOTEIO: see status) */
        struct smp_status status;  /* the device's error, when it reported one */
        uint64_t resumed_at;
        bool has_match;            /* the device compared flash with the sha */
        bool match;
        uint64_t elapsed_usec;
        double rate;               /* bytes/s over this run */
        uint64_t retransmits;
        unsigned window_max;       /* the window used at most */
        size_t chunk;              /* data bytes per full chunk */
        uint32_t buf_size, buf_count;  /* what the device advertised (or was assumed) */
        /* The largest SMP packet (header and body; on UDP the datagram's
         * payload, the unit of ",mtu=") the path was found to carry, or
         * the seed while no loss disproved it; 0: not searched (the link
         * fragments, or a chunk size was given).  A lower bound while the
         * search was cut short by the end of the file. */
        size_t path_mtu;
};

typedef void (*smp_upload_done_fn)(struct smp_upload *u, const struct smp_upload_result *result,
                                   void *userdata);

struct smp_upload_params {
        const uint8_t *data;       /* the image file; must outlive the upload */
        size_t len;
        bool has_image;
        uint32_t image;            /* image number (0: application) */
        bool upgrade;              /* device refuses anything not newer */
        unsigned window;           /* 0: buf_count - 1 */
        /* 0: as large as fits; else data bytes per chunk at most, but the
         * first chunk carries 32 at least (the image header Zephyr needs
         * in it), or the whole file when shorter.  smp_upload_start()
         * says -EMSGSIZE when the device's buffer cannot hold that. */
        size_t chunk;
        /* A result.path_mtu an earlier upload to this device learned, or
         * 0.  Chunks use it from the start but the first; it is dropped
         * as a black hole when chunks that size stop arriving, and the
         * search still tries the larger sizes above it. */
        size_t path_mtu;
        /* 0: read mcumgr parameters first.  Given, it is taken as the
         * device's params answer: over BLE, packets beyond the link's MTU
         * then count on the device's reassembly, as after an answer. */
        uint32_t buf_size;
        uint32_t buf_count;
        uint64_t first_timeout_usec;  /* 0: default */
        uint64_t timeout_usec;     /* 0: from the measured round trip */
        unsigned max_failures;     /* 0: default */
        /* The image's own hash (MCUboot's SHA-256 TLV, what the image
         * state lists), SMP_UPLOAD_IMAGE_HASH_SIZE bytes, or NULL.  Given,
         * a device that answers offset 0 to the file's last chunk (Zephyr
         * clears its upload state with the chunk that completes it, so
         * the last chunk sent again after its answer was lost finds none)
         * is asked for its image state first: a slot of this image number
         * that does not run and holds this hash ends the upload as done
         * (result.has_match false) instead of sending the file again. */
        const uint8_t *image_hash;
        smp_upload_progress_fn progress;
        smp_upload_done_fn done;
        void *userdata;
};

/* Starts an upload on the session.  done is called exactly once unless the
 * upload is cancelled. */
int smp_upload_start(struct smp_session *s, const struct smp_upload_params *params, struct smp_upload **ret);

/* Stops and frees (no callback).  The device keeps its upload state, so a
 * later upload of the same file resumes. */
void smp_upload_cancel(struct smp_upload *u);

/* The SHA-256 an upload of data sends as "sha". */
void smp_upload_file_sha256(const uint8_t *data, size_t len, uint8_t ret[32]);

#ifdef __cplusplus
}
#endif
