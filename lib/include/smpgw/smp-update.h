/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The safe update procedure for one device, as a state machine on an SMP
 * session:
 *
 *   read state (kept as the "before" snapshot)
 *   → done when the image is already active and confirmed
 *   → erase the secondary slot (optional)
 *   → upload (skipped when the secondary slot already holds the image)
 *   → check the new hash is in the secondary slot
 *   → test (or confirm, by mode)
 *   → reset
 *   → poll the image state until no slot is pending any more: the device
 *     answered again and MCUboot has made its decision (bounded by the
 *     swap timeout; the time it took is reported)
 *   → confirm (test-and-confirm) → verify active and confirmed.
 *
 * MCUboot cannot tell a client that it reverted; the outcome is
 * classified against the "before" snapshot:
 *   updated      the new image is active and confirmed
 *   up-to-date   it already was, nothing done
 *   testing      test-only mode: the new image runs, not confirmed
 *   uploaded     upload-only mode: the image is in the secondary slot
 *   reverted     the old image is active and the new one is not pending
 *                (rejected: MCUboot erased the new image as invalid)
 *   stuck        neither: another image runs, or the state is not what
 *                any step should have left
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-error.h>
#include <smpgw/smp-session.h>
#include <smpgw/smp-upload.h>

#ifdef __cplusplus
extern "C" {
#endif

struct smp_update;

enum smp_update_mode {
        SMP_UPDATE_TEST_AND_CONFIRM,  /* default: test, reset, confirm once it runs */
        SMP_UPDATE_CONFIRM_ONLY,      /* confirm the new image (permanent swap), reset */
        SMP_UPDATE_TEST_ONLY,         /* test, reset; the application confirms itself */
        SMP_UPDATE_UPLOAD_ONLY,       /* upload, nothing else */
        _SMP_UPDATE_MODE_MAX,
};

enum smp_update_step {
        SMP_UPDATE_STEP_READ_STATE,
        SMP_UPDATE_STEP_ERASE,
        SMP_UPDATE_STEP_UPLOAD,
        SMP_UPDATE_STEP_CHECK_UPLOAD,
        SMP_UPDATE_STEP_MARK,         /* test or confirm */
        SMP_UPDATE_STEP_RESET,
        SMP_UPDATE_STEP_WAIT_REBOOT,
        SMP_UPDATE_STEP_CONFIRM,
        SMP_UPDATE_STEP_VERIFY,
        SMP_UPDATE_STEP_DONE,
        _SMP_UPDATE_STEP_MAX,
};

enum smp_update_outcome {
        SMP_UPDATE_OUTCOME_NONE,      /* failed before an outcome: see error */
        SMP_UPDATE_OUTCOME_UPDATED,
        SMP_UPDATE_OUTCOME_UP_TO_DATE,
        SMP_UPDATE_OUTCOME_TESTING,
        SMP_UPDATE_OUTCOME_UPLOADED,
        SMP_UPDATE_OUTCOME_REVERTED,
        SMP_UPDATE_OUTCOME_STUCK,
        _SMP_UPDATE_OUTCOME_MAX,
};

/* One slot as the device reported it, owned (no borrowed slices). */
struct smp_update_slot {
        bool present;
        uint32_t image;
        uint32_t slot;
        char version[32];
        uint8_t hash[32];
        size_t hash_len;
        bool bootable, pending, confirmed, active, permanent;
};

#define SMP_UPDATE_SLOTS_MAX 4

struct smp_update_snapshot {
        struct smp_update_slot slots[SMP_UPDATE_SLOTS_MAX];
        size_t n_slots;
};

struct smp_update_result {
        int error;                        /* 0, or negative errno */
        enum smp_update_step failed_step; /* where error happened */
        struct smp_status status;         /* the device's error, when -EREMOTEIO */
        enum smp_update_outcome outcome;
        bool rejected;                    /* reverted because MCUboot erased the image */
        bool upload_skipped;              /* the secondary slot had it already */
        struct smp_update_snapshot before, after;
        uint8_t new_hash[32];
        char new_version[32];
        struct smp_upload_result upload;
        uint64_t reboot_usec;             /* reset answer to the device answering with its new state */
        uint64_t elapsed_usec;
};

typedef void (*smp_update_step_fn)(struct smp_update *u, enum smp_update_step step, void *userdata);
typedef void (*smp_update_done_fn)(struct smp_update *u, const struct smp_update_result *result,
                                   void *userdata);

#define SMP_UPDATE_SWAP_TIMEOUT_DEFAULT_USEC (120u * 1000000u)
#define SMP_UPDATE_POLL_INTERVAL_DEFAULT_USEC (200u * 1000u)

struct smp_update_params {
        const uint8_t *data;              /* the MCUboot image file; must outlive the update */
        size_t len;
        enum smp_update_mode mode;
        bool erase_first;                 /* erase the secondary slot before uploading */
        uint64_t swap_timeout_usec;       /* 0: default */
        uint64_t poll_interval_usec;      /* 0: default */
        /* passed to the upload */
        unsigned window;
        size_t chunk;
        size_t path_mtu;                  /* a learned result.upload.path_mtu to start from, or 0 */
        uint64_t chunk_timeout_usec;      /* 0: from the round trip */
        bool has_image;
        uint32_t image;
        smp_upload_progress_fn upload_progress;
        smp_update_step_fn step;
        smp_update_done_fn done;
        void *userdata;
};

/* Starts the procedure.  -EINVAL when the file is not an MCUboot image
 * with a SHA256 TLV (devices name images by it). */
int smp_update_start(struct smp_session *s, const struct smp_update_params *params, struct smp_update **ret);
void smp_update_cancel(struct smp_update *u);

const char *smp_update_mode_to_string(enum smp_update_mode m);
int smp_update_mode_from_string(const char *s);   /* "test-and-confirm", ... or -EINVAL */
const char *smp_update_step_to_string(enum smp_update_step s);
const char *smp_update_outcome_to_string(enum smp_update_outcome o);

/* One entry of a decoded image state answer, copied so it owns its
 * version and hash. */
struct smp_img_slot_state;
void smp_update_slot_from_state(const struct smp_img_slot_state *st, struct smp_update_slot *ret);

/* Fills a snapshot from an image state answer body. */
int smp_update_snapshot_from_body(const uint8_t *body, size_t len, struct smp_update_snapshot *ret,
                                  struct smp_status *ret_status);

#ifdef __cplusplus
}
#endif
