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
 *
 * The same procedure in three phases, for a caller that holds a link
 * only while it talks to the device (a gateway radio with a few links
 * for many devices), and that may stage images long before it activates
 * them.  Each phase runs on a session the caller opens, and the caller
 * may close that session as soon as the phase's done callback returns:
 *
 *   stage     read state (the "before" snapshot, unless the checkpoint
 *             has one) → [up-to-date: done] → [erase] → upload
 *             (resumable; skipped when the secondary slot holds the
 *             image) → check the new hash is in the secondary slot
 *             ⇒ uploaded, next: activate (upload-only: done)
 *   activate  read state → mark (test, or confirm by mode; skipped when
 *             the slot is pending already) → reset
 *             ⇒ ends when the reset is answered, or its answer is lost
 *               as the device goes down; the checkpoint carries the
 *               time.  The device now erases, swaps and boots with no
 *               link held.  Next: verify.
 *   verify    on a new session, after the reboot: read state
 *             ⇒ -EAGAIN (not back yet: no answer, no link, or a slot
 *               still pending) — the caller waits and runs verify again;
 *               it owns the waiting and the overall swap timeout.  A
 *               slot still pending RESET_RETRY_AFTER (5 s) after the
 *               reset means the reset was lost: verify sends it again
 *               (3 resets in all, then -ETIMEDOUT, stuck).
 *             ⇒ else the outcome against the "before" snapshot, with
 *               the swap time (reset → first decided answer);
 *               test-and-confirm confirms and checks it took.
 *
 *     stage ──uploaded──> activate ──reset──> (no link) ──> verify ──-EAGAIN──┐
 *       │                    │                                ^   <──────────┘
 *       │                    └──the new image runs already────┘
 *       ├──the new image runs under test already──────────────┘
 *       └──up-to-date, upload-only──> done          verify ──> updated, testing,
 *                                                              reverted, stuck
 *
 * Between phases the caller keeps a struct smp_update_checkpoint: plain
 * data (the mode, the new hash and version, the "before" snapshot, the
 * reset's time and count), so a process may stop between phases, even
 * be killed, and a new one goes on with the checkpoint and the image
 * file.  smp_update_checkpoint_format() and _parse() turn it into one
 * line of text and back, for a database column or a file.
 *
 * smp_update_start() runs the three phases on one session, polling with
 * verify after the reset: the one-shot procedure above.
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
/* An explicit slot erase (image erase, erase_first): a whole slot may
 * take long on real flash.  A fixed chunk timeout waits longer if it is;
 * erase_timeout_usec replaces both. */
#define SMP_UPDATE_ERASE_TIMEOUT_DEFAULT_USEC (60u * 1000000u)
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
        uint64_t erase_timeout_usec;      /* slot erase: the first chunk's and erase_first's; 0: defaults */
        bool has_image;
        uint32_t image;
        smp_upload_progress_fn upload_progress;
        smp_update_step_fn step;
        smp_update_done_fn done;
        void *userdata;
};

/* Starts the procedure.  -EINVAL when the file is not an MCUboot image
 * with a SHA256 TLV (devices name images by it), or for test-and-confirm
 * of an image other than 0: Zephyr refuses to confirm the running slot
 * of another image than the application's, so such an image updates in
 * confirm-only (or test-only) mode. */
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

/* Why a device refused an update, when the reason is that it runs an
 * image under test: Zephyr keeps the slot a running image that is not
 * confirmed would revert to (img_mgmt_slot_in_use(), the REVERT type of
 * img_mgmt_get_next_boot_slot()), so an upload finds IMG_NO_FREE_SLOT and
 * a test IMG_IMAGE_ALREADY_PENDING until the device confirms it or resets
 * back to the other.  Returns that running slot when status is one of
 * those refusals and snap (the state read before) shows image running
 * unconfirmed with its other slot holding an image; else NULL. */
const struct smp_update_slot *smp_update_refused_under_test(const struct smp_update_snapshot *snap, uint32_t image,
                                                            const struct smp_status *status);

/* ---- the procedure in phases ---- */

struct smp_update_phase_run;

enum smp_update_phase {
        SMP_UPDATE_PHASE_STAGE,
        SMP_UPDATE_PHASE_ACTIVATE,
        SMP_UPDATE_PHASE_VERIFY,
        SMP_UPDATE_PHASE_DONE,        /* as a result's `next`: nothing left to run */
        _SMP_UPDATE_PHASE_MAX,
};

/* After a reset, a device that still answers with a slot pending this
 * long was not reset (the request was lost): verify resets it again, up
 * to SMP_UPDATE_RESET_MAX_TRIES resets in all. */
#define SMP_UPDATE_RESET_RETRY_AFTER_USEC (5u * 1000000u)
#define SMP_UPDATE_RESET_MAX_TRIES 3u
/* Verify's state read of a device that may still be rebooting: short,
 * sent again as often as the session retries (smp_session_set_retries()). */
#define SMP_UPDATE_VERIFY_TIMEOUT_USEC (500u * 1000u)

/* What a caller keeps between phases: plain data, no pointers, no
 * process-local clock.  Times are CLOCK_REALTIME in µs, so they keep
 * their meaning across a restart of the process or of the gateway. */
struct smp_update_checkpoint {
        enum smp_update_mode mode;    /* set by stage; activate marks by it, verify
                                       * judges by it (a caller may change it before
                                       * activate: stage uploads alike in every mode) */
        uint8_t new_hash[32];         /* the image's SHA256 TLV */
        char new_version[32];         /* "1.2.3+4" */
        bool has_before;
        struct smp_update_snapshot before;  /* the device before this update */
        uint64_t reset_usec;          /* the first reset of this activation answered
                                       * (or lost with the link); 0: not reset */
        uint64_t reset_sent_usec;     /* the last reset request went out */
        unsigned reset_tries;         /* reset requests of this activation */
        bool reset_answered;          /* the device acknowledged the first one */
};

struct smp_update_phase_result {
        enum smp_update_phase phase;  /* the phase that ran */
        /* 0; -EAGAIN (verify): the device is not back yet, run verify
         * again later; else negative errno, the phase failed at
         * failed_step (run `next` again when the error may pass). */
        int error;
        enum smp_update_step failed_step;
        struct smp_status status;     /* the device's error when -EREMOTEIO; its
                                       * rsn is valid during the callback only */
        /* Final when next is SMP_UPDATE_PHASE_DONE.  Otherwise what the
         * device shows so far: uploaded (stage), testing (the new image
         * runs under test: verify confirms it), or none. */
        enum smp_update_outcome outcome;
        enum smp_update_phase next;   /* the phase to run next */
        bool rejected;                /* reverted: MCUboot erased the new image */
        bool upload_skipped;          /* stage: the secondary slot had it already */
        struct smp_upload_result upload;    /* stage: the upload, when one ran */
        struct smp_update_snapshot after;   /* the state last read (n_slots 0: none) */
        struct smp_update_checkpoint checkpoint;  /* keep it for the next phase */
        /* verify: reset (checkpoint.reset_usec) to the first answer with
         * no slot pending, as the caller's polling saw it; 0 when unknown
         * (no reset was recorded, or the clock went back). */
        uint64_t swap_usec;
        uint64_t elapsed_usec;        /* the phase's run: the time it needed the session */
};

typedef void (*smp_update_phase_step_fn)(struct smp_update_phase_run *run, enum smp_update_step step,
                                         void *userdata);
typedef void (*smp_update_phase_done_fn)(struct smp_update_phase_run *run,
                                         const struct smp_update_phase_result *result, void *userdata);

struct smp_update_phase_params {
        enum smp_update_phase phase;
        /* The MCUboot image file; must outlive the phase.  Stage needs
         * it.  Activate and verify need only the checkpoint; when given,
         * the file's hash must be the checkpoint's (-EINVAL). */
        const uint8_t *data;
        size_t len;
        /* Borrowed, copied at start.  Activate and verify need the one the
         * previous phase returned; stage takes NULL (a new update) or a
         * previous checkpoint (its "before" snapshot is kept, so the
         * outcome is judged against the device as the update found it). */
        const struct smp_update_checkpoint *checkpoint;
        enum smp_update_mode mode;    /* stage: written into the checkpoint */
        bool erase_first;             /* stage: erase the secondary slot before uploading */
        /* stage: passed to the upload */
        unsigned window;
        size_t chunk;
        uint64_t chunk_timeout_usec;  /* 0: from the round trip */
        uint64_t erase_timeout_usec;  /* slot erase: the first chunk's and erase_first's; 0: defaults */
        size_t path_mtu;              /* a learned result.upload.path_mtu to start from, or 0 */
        bool has_image;
        uint32_t image;
        smp_upload_progress_fn upload_progress;   /* called with userdata */
        smp_update_phase_step_fn step;
        smp_update_phase_done_fn done;
        void *userdata;
        /* Activate, verify: the image state the previous phase read last
         * on this session (its result's `after`), when this phase follows
         * it at once: not read again.  NULL: read it. */
        const struct smp_update_snapshot *state;
        /* Verify: the state read's timeout per transmission; 0:
         * SMP_UPDATE_VERIFY_TIMEOUT_USEC.  A caller that knows the link's
         * round trip makes a poll of a device not back yet cost less. */
        uint64_t verify_timeout_usec;
};

/* Starts a phase on s (borrowed: it must outlive the phase, and may be
 * freed from inside done).  done is called exactly once unless the phase
 * is cancelled, never from inside this call.  Verify reopens a closed
 * link first (BLE and serial links die with the device).  -EINVAL: bad
 * parameters, an image without a SHA256 TLV, an image that is not the
 * checkpoint's, activate in upload-only mode, verify without a "before"
 * snapshot; -EAGAIN (verify): the link cannot be opened, the device is
 * not back yet; else the session's errors.  *ret (may be NULL) is valid
 * until done runs. */
int smp_update_phase_start(struct smp_session *s, const struct smp_update_phase_params *params,
                           struct smp_update_phase_run **ret);
/* (Stage of test-and-confirm with an image other than 0: -EINVAL, as
 * smp_update_start().) */
/* Stops a phase (done is not called).  A request already sent may still
 * take effect on the device. */
void smp_update_phase_cancel(struct smp_update_phase_run *run);

const char *smp_update_phase_to_string(enum smp_update_phase p);  /* "stage", ... "done" */
int smp_update_phase_from_string(const char *s);                  /* or -EINVAL */

/* The checkpoint as one line of printable ASCII (no newline), at most
 * SMP_UPDATE_CHECKPOINT_STRING_MAX bytes with its NUL:
 *   smpgw-update/1 mode=test-and-confirm hash=<64 hex> version=<v>
 *   reset=<µs> reset-sent=<µs> reset-tries=<n> reset-answered=<0|1>
 *   before=<n> slot=<image>,<slot>,<flags>,<version>,<hash hex> ...
 * (before=- without a snapshot; flags: b bootable, p pending, c confirmed, a active, P permanent, or -;
 * versions percent-encoded).  Written into buf; -ENOBUFS if size is too
 * small, -EINVAL for a checkpoint out of range. */
#define SMP_UPDATE_CHECKPOINT_STRING_MAX 1536u
int smp_update_checkpoint_format(const struct smp_update_checkpoint *cp, char *buf, size_t size);
/* The reverse; -EINVAL for anything else (an unknown format version, a
 * missing or unknown key, a value out of range), and *ret is untouched. */
int smp_update_checkpoint_parse(const char *s, struct smp_update_checkpoint *ret);

#ifdef __cplusplus
}
#endif
