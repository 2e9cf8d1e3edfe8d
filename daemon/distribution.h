/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mesh distributions: smpgw as the Bluetooth Mesh DFU Initiator
 * (doc/mesh-dfu.md).  A distribution is one image for a list of mesh
 * targets (devices of transport "mesh") behind one Distributor (a device
 * with the role "mesh-distributor"), driven over one SMP session to the
 * Distributor with shell commands (lib's smp-shell.h and mesh-dfu.h):
 *
 *   upload   the image into the Distributor's slot 1, upload only (never
 *            tested or confirmed there: slot 1 is its own secondary
 *            slot); resumable, skipped when the slot holds it already
 *   slot     `dfu slot del-all`, `dfu slot add <size> <fwid> <metadata>`
 *   round    `dfd receivers-delete-all`, `receivers-add` in lines that fit
 *            the shell buffer, `dfd start` with the apply policy
 *   poll     `dfd get` and `receivers-get` pages, with backoff
 *            (poll_min doubling to poll_max while nothing moves)
 *   apply    verify-only: waits in state "verified" for
 *            engine_distribution_apply(), then `dfd apply`
 *   collect  every receiver's final phase: apply success is "updated",
 *            anything else "failed" with the reason; `dfd cancel` back to
 *            idle; the failed targets with attempts left, and targets not
 *            yet sent (more than targets_max), go in the next round
 *
 * A round is a new distribution on the Distributor; smpgw keeps one
 * distribution object for all rounds, and its success is per target:
 * the distribution "succeeded" only when every target is updated,
 * "failed" when any target ran out of attempts or the deadline passed
 * (each target says why), never "one target succeeded = success" as the
 * Distributor's own phase has it.
 *
 * Losing the Distributor (no answer, link closed, reset) is survived: the
 * session is reopened with backoff and `dfd get` says where it stands; a
 * Distributor that forgot the distribution (a reset keeps the slot but
 * not the receivers) gets the round again, which does not count as an
 * attempt.  Everything is in SQLite, written at every step: after a
 * smpgwd restart (or kill -9) a distribution reconnects and goes on from
 * what the Distributor says.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "smpgw/mesh-dfu.h"
#include "smpgwd-limits.h"

struct manager;
struct device;
struct image;
struct engine_error;
struct smp_session;
struct smp_shell_exec;
struct smp_shell_result;
struct smp_update;

/* Targets one distribution takes (the Distributor takes targets_max per
 * round; more go in later rounds). */
#define DISTRIBUTION_TARGETS_MAX 1024u
/* Attempts per target (rounds it may be sent in and fail). */
#define DISTRIBUTION_ATTEMPTS_MAX 100u
#define DISTRIBUTION_ATTEMPTS_DEFAULT 3u
/* Polling the Distributor: from poll_min, doubled while nothing changes,
 * up to poll_max. */
#define DISTRIBUTION_POLL_MIN_DEFAULT_USEC (2u * 1000u * 1000u)
#define DISTRIBUTION_POLL_MAX_DEFAULT_USEC (30u * 1000u * 1000u)
/* Reconnecting to a Distributor that went away: from 1 s, doubled, up to
 * 30 s, for ever (until cancelled or the deadline). */
#define DISTRIBUTION_RECONNECT_MIN_USEC (1u * 1000u * 1000u)
#define DISTRIBUTION_RECONNECT_MAX_USEC (30u * 1000u * 1000u)
/* A transfer the Distributor suspended on its own (every target of the
 * round stopped answering mid-transfer, blob_cli.c) is resumed after
 * poll_max, doubled at each such resume in the round up to
 * poll_max << DISTRIBUTION_RESUME_DOUBLINGS (30 s, 60 s, then 120 s by
 * default); each resume spends an attempt of the round's targets, and
 * once one of them has none left the round ends instead. */
#define DISTRIBUTION_RESUME_DOUBLINGS 2u
/* After a cancel from an active transfer the Distributor stays in phase
 * "canceling update" until every target answered the Update Cancel or
 * timed out (the BLOB client's timeout, 10 s x (timeout_base + 2) +
 * 100 ms x ttl: 45.5 s with the defaults), and refuses a start meanwhile.
 * smpgwd polls it (poll_min doubling to poll_max) for at most twice that
 * timeout, and at least this long, before it gives up. */
#define DISTRIBUTION_CANCELING_WAIT_MIN_USEC (120u * 1000u * 1000u)
/* A shell command's answer (per transmission). */
#define DISTRIBUTION_COMMAND_TIMEOUT_USEC (5u * 1000u * 1000u)
/* Answers in a row that do not read as the command's output before the
 * distribution fails.  The Distributor's shell output buffer is also one
 * of its log backends (shell_dummy.c): a burst of log lines can fill it
 * and cut the answer off.  Each is asked again after poll_min (a command
 * that changes something is first checked with `dfd get`). */
#define DISTRIBUTION_GARBLED_MAX 5u

enum distribution_state {
        DISTRIBUTION_QUEUED,    /* created, not started on the Distributor yet */
        DISTRIBUTION_RUNNING,   /* uploading, registering, transferring, applying */
        DISTRIBUTION_VERIFIED,  /* verify-only: transferred and verified, waiting for apply */
        DISTRIBUTION_SUSPENDED, /* held by engine_distribution_suspend(); a suspension the
                                 * Distributor chose itself is "running" (it is resumed) */
        DISTRIBUTION_SUCCEEDED, /* every target runs the new firmware */
        DISTRIBUTION_FAILED,    /* some target did not make it (see each) */
        DISTRIBUTION_CANCELLED,
        _DISTRIBUTION_STATE_MAX,
};

/* Where a running distribution is (stored: a restart goes on from it). */
enum distribution_step {
        DISTRIBUTION_STEP_UPLOAD,
        DISTRIBUTION_STEP_SLOT,
        DISTRIBUTION_STEP_ROUND,    /* receivers and start */
        DISTRIBUTION_STEP_TRANSFER, /* polling */
        DISTRIBUTION_STEP_COLLECT,  /* reading every receiver's final phase */
        DISTRIBUTION_STEP_DONE,
        _DISTRIBUTION_STEP_MAX,
};

enum distribution_target_state {
        DISTRIBUTION_TARGET_PENDING, /* waiting for a round */
        DISTRIBUTION_TARGET_ACTIVE,  /* in the current round */
        DISTRIBUTION_TARGET_UPDATED, /* apply success, or unprovisioned by its update (reason says so) */
        DISTRIBUTION_TARGET_FAILED,  /* out of attempts (reason says why) */
        DISTRIBUTION_TARGET_CANCELLED,
        _DISTRIBUTION_TARGET_STATE_MAX,
};

enum distribution_apply {
        DISTRIBUTION_APPLY_NOW,         /* the targets apply as soon as they verified */
        DISTRIBUTION_APPLY_VERIFY_ONLY, /* they wait for engine_distribution_apply() */
        _DISTRIBUTION_APPLY_MAX,
};

struct distribution_policy {
        enum distribution_apply apply;
        unsigned max_attempts;  /* per target; 0: DISTRIBUTION_ATTEMPTS_DEFAULT */
        uint64_t deadline_usec; /* CLOCK_REALTIME µs; 0: none */
        uint16_t app_idx;
        uint16_t group; /* 0: unicast to each target; else 0xc000.. */
        uint8_t ttl;    /* 0: SMP_MESH_TTL_DEFAULT */
        uint16_t timeout_base;
        uint8_t xfer_mode;                     /* 0: push */
        uint64_t poll_min_usec, poll_max_usec; /* 0: the defaults above */
        uint64_t rollout_id;                   /* 0: none */
        /* Send the image even to targets whose board (as the inventory
         * knows it) the image is not built for; only the start checks it,
         * so it is not stored. */
        bool force;
};

/* The reason an updated target carries when its update unprovisioned it
 * (the Distributor's "unprovision" effect): it runs the new firmware but
 * left the network, and must be provisioned again. */
#define DISTRIBUTION_REASON_UNPROVISIONED "unprovisioned: updated, provision it again"

struct distribution_target {
        uint64_t device_id;
        uint16_t addr;
        enum distribution_target_state state;
        unsigned attempts; /* rounds it was sent in and failed, or is in */
        uint8_t phase;     /* enum smp_mesh_dfu_phase, as last read */
        uint8_t status;
        uint8_t progress; /* percent */
        char *reason;     /* why it failed; updated: DISTRIBUTION_REASON_UNPROVISIONED or NULL */
};

struct distribution {
        struct manager *manager;
        uint64_t id;
        uint64_t distributor_id;
        char image_id[IMAGE_ID_LEN + 1];
        enum distribution_state state;
        enum distribution_step step;
        struct distribution_policy policy;
        unsigned rounds; /* rounds started on the Distributor */
        uint16_t slot_idx;
        uint64_t created_usec, updated_usec, finished_usec;
        char *error; /* the last trouble, as a sentence; NULL */
        /* The BLOB multicast rate it measured (bytes/s): the image's
         * bytes over the time its rounds spent transferring, from the
         * `dfd start` to the poll that saw the transfer end; 0: none
         * (not finished, or a round not timed whole).  The planner
         * learns each Distributor's rate from its newest. */
        double mesh_rate;
        struct distribution_target *targets;
        size_t n_targets;

        /* runtime, not stored */
        uint32_t targets_max; /* capabilities-get; 0: not read yet */
        uint32_t shell_buf;   /* the Distributor's command line buffer */
        struct smp_session *session;
        struct smp_shell_exec *exec;
        /* what reads the answer of exec (one command at a time) */
        void (*reply)(struct distribution *d, const struct smp_shell_result *r);
        struct smp_update *upload;
        struct image *image_mapped;
        sd_event_source *timer;
        uint64_t poll_usec;      /* the current poll interval */
        uint64_t reconnect_usec; /* the current reconnect backoff */
        uint16_t page_first;     /* receivers-get paging */
        unsigned page_size;      /* receivers per page: 8, halved while too large for SMP */
        bool changed_since_poll;
        bool want_apply, want_suspend, want_resume, want_cancel;
        /* Suspended by its rollout's pause (or a user) until a resume:
         * no round starts, neither a new one nor a re-drive, while the
         * Distributor has no transfer to suspend (between rounds, or
         * before the first).  Such a distribution is "suspended". */
        bool held;
        bool busy;            /* a step is in flight (a command, the upload) */
        bool lost;            /* the session failed: reconnect from the timer */
        bool synced;          /* capabilities and state read on this session */
        uint8_t dfd_phase;    /* the Distributor's phase as last read, 0xff: not yet */
        unsigned rounds_lost; /* rounds the Distributor forgot (resets) */
        /* The Distributor suspended the round's transfer on its own: the
         * resumes sent for it in this round, and when the next is due
         * (CLOCK_MONOTONIC, 0: none waiting). */
        unsigned resumes;
        uint64_t resume_at_usec;
        /* Waiting for the Distributor to leave "canceling update": since
         * (CLOCK_MONOTONIC, 0: not waiting), and the current interval. */
        uint64_t canceling_since_usec, canceling_poll_usec;
        unsigned garbled; /* answers in a row that did not parse (DISTRIBUTION_GARBLED_MAX) */
        /* The transfer's parameters as the Distributor printed them last
         * (`dfd get` during a round).  A resume is a start with exactly
         * these, and they can differ from the policy's: the BLOB client
         * takes the one transfer mode its targets support (dfu_cli.c
         * blob_caps()).  Cleared at each round's start. */
        bool has_dfd_params;
        struct smp_mesh_dfd_start_params dfd_params;
        bool resume_refused;     /* a resume answered busy was sent again with the printed parameters */
        bool sent_apply;         /* the command in flight is `dfd apply` */
        int slot_del_error;      /* what `dfu slot del-all` printed as its error, 0: none */
        const char *pending_cmd; /* a static command line to send next (apply) */
        char **lines;            /* receivers-add lines of this round */
        size_t n_lines, line;
        uint64_t last_progress_emit_usec;
        /* Timing the multicast (mesh_rate): the current round's transfer
         * started at (CLOCK_BOOTTIME, 0: not timing), and the sums of
         * the rounds timed whole.  untimed: a round that was not (a
         * restart, a suspend, a Distributor that forgot the round). */
        uint64_t transfer_start_usec;
        uint64_t transfer_usec, transfer_bytes;
        bool transfer_untimed;
};

const char *distribution_state_to_string(enum distribution_state s);
int distribution_state_from_string(const char *s);
const char *distribution_step_to_string(enum distribution_step s);
int distribution_step_from_string(const char *s);
const char *distribution_target_state_to_string(enum distribution_target_state s);
int distribution_target_state_from_string(const char *s);
const char *distribution_apply_to_string(enum distribution_apply a);
int distribution_apply_from_string(const char *s);
bool distribution_is_finished(const struct distribution *d);

struct distribution *distribution_free(struct distribution *d);

/* ---- the engine's API (the rollout layer, REST, D-Bus, smpgwctl) ----
 * Refusals as in engine.h: -EINVAL a value (field names it), -ENOENT
 * unknown device or image, -EBUSY a target in an unfinished distribution
 * or the Distributor busy with another, -EMEDIUMTYPE a device that is not
 * a Distributor or not a mesh target behind it, -EALREADY finished,
 * -ENOEXEC (field "targets", unless policy->force) the image declares
 * boards and targets whose board is known report another; the sentence
 * names them.  A target's board is known only through its direct device
 * (engine_mesh_target_set_direct(): the same node over a link of its
 * own, probed); one whose board is unknown is not refused, as a push
 * does not refuse a device that tells none.  The Distributor's own board
 * is not checked: it keeps the image in its slot 1 and relays it, never
 * runs it. */
int engine_distribution_start(struct manager *m, struct device *distributor, struct image *img,
                              struct device *const *targets, size_t n, const struct distribution_policy *policy,
                              struct distribution **ret, struct engine_error *e);
/* By decimal id. */
int engine_distribution_find(struct manager *m, const char *spec, struct distribution **ret, struct engine_error *e);
int engine_distribution_cancel(struct manager *m, struct distribution *d, struct engine_error *e);
int engine_distribution_suspend(struct manager *m, struct distribution *d, struct engine_error *e);
int engine_distribution_resume(struct manager *m, struct distribution *d, struct engine_error *e);
/* A verify-only distribution: the targets apply now.  -EINVAL unless the
 * policy is verify-only; waits for the transfer when it is still on. */
int engine_distribution_apply(struct manager *m, struct distribution *d, struct engine_error *e);

/* ---- mesh targets and Distributors in the inventory ---- */

#define DEVICE_ROLE_MESH_DISTRIBUTOR "mesh-distributor"
/* The role of a device: NULL or "" clears it.  -EINVAL for an unknown role
 * or a mesh target. */
int engine_device_set_role(struct manager *m, struct device *d, const char *role, struct engine_error *e);
/* Its check alone: 0, or the refusal it gives, with nothing changed
 * (engine_device_patch() checks every field before it sets any). */
int engine_device_role_check(struct manager *m, const struct device *d, const char *role, struct engine_error *e);
/* Adds the mesh target at a unicast address behind a Distributor (the
 * gateway is no provisioner: operators name them).  *ret_created false
 * when known already. */
int engine_mesh_target_add(struct manager *m, struct device *distributor, uint16_t addr, const char *source,
                           struct device **ret, bool *ret_created, struct engine_error *e);
/* Names the device that is the same node as the mesh target over a link
 * of its own (a "direct device": GATT, or any SMP transport), or none
 * (NULL).  Then a rollout may update the target by a job to that device
 * instead of through its Distributor (doc/rollouts.md, "Choosing the
 * path").  -EMEDIUMTYPE for a device that is not a mesh target, -EINVAL
 * (field "direct_device") for a direct device that is a mesh target, a
 * Distributor, or already the direct device of another target. */
int engine_mesh_target_set_direct(struct manager *m, struct device *target, struct device *direct,
                                  struct engine_error *e);
/* Its checks alone, as engine_device_role_check(). */
int engine_mesh_target_direct_check(struct manager *m, const struct device *target, const struct device *direct,
                                    struct engine_error *e);
/* The mesh target whose direct device d is, or NULL. */
struct device *mesh_target_of_direct(struct manager *m, const struct device *d);

/* ---- the manager's side ---- */

/* Goes on with the unfinished distributions loaded from the database. */
void distributions_start_all(struct manager *m);
/* Stops talking to Distributors (the state is in the database). */
void distributions_stop_all(struct manager *m);
struct distribution *manager_find_distribution(struct manager *m, uint64_t id);
/* Whether an unfinished distribution uses the device (as its Distributor
 * or a target). */
bool distribution_uses_device(struct manager *m, const struct device *dev);

/* ---- the planner's estimate ---- */

struct distribution_estimate_input {
        uint64_t image_size; /* bytes */
        unsigned n_targets;
        unsigned targets_max; /* per round; 0: 8 */
        double upload_rate;   /* gateway → Distributor, bytes/s (GATT) */
        double mesh_rate;     /* BLOB multicast, bytes/s */
        /* Fixed costs of one round, seconds (the Distributor's steps:
         * start, verify, apply, the targets' reboot, the confirmation);
         * 0 takes DISTRIBUTION_ROUND_OVERHEAD_DEFAULT. */
        double round_overhead;
        double poll_interval; /* the poll's lag at each end, seconds (0: none) */
};
#define DISTRIBUTION_ROUND_OVERHEAD_DEFAULT 10.0 /* 2 + 1 + 1 + 5 + 1 s */
/* The BLOB multicast rate assumed before one was measured (bytes/s);
 * smpgwd.conf [mesh] rate overrides it. */
#define DISTRIBUTION_MESH_RATE_DEFAULT 1000u

/* The multicast rate the newest finished distribution through this
 * Distributor measured (bytes/s), 0 when none did. */
double distribution_measured_rate(struct manager *m, uint64_t distributor_id);

/* Seconds the Distributor path takes: one upload, then
 * ceil(n / targets_max) rounds of (overhead + size / mesh_rate).  Also
 * the gateway's radio time: only the upload (*ret_radio_seconds, may be
 * NULL).  -EINVAL for rates <= 0 or n 0. */
int distribution_estimate(const struct distribution_estimate_input *in, double *ret_seconds);
int distribution_estimate_radio(const struct distribution_estimate_input *in, double *ret_radio_seconds);

/* The direct path for comparison: n GATT pushes over `links` concurrent
 * links at link_rate each (bytes/s), each followed by a swap of
 * swap_seconds.  swap_holds_link: the job keeps its link slot through
 * the swap (today's job layer, which runs the whole update in one
 * attempt); else the swaps overlap the next uploads (staged reboots) and
 * only the last one adds.  Radio time is the sum of the uploads. */
struct distribution_direct_input {
        uint64_t image_size;
        unsigned n_targets;
        unsigned links;
        double link_rate;
        double swap_seconds;
        bool swap_holds_link;
};
int distribution_estimate_direct(const struct distribution_direct_input *in, double *ret_seconds,
                                 double *ret_radio_seconds);
