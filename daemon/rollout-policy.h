/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A rollout's policy, as pure functions on plain data: which devices are
 * members and which are skipped (and why), their order, their waves,
 * whether a wave's failures pause or abort the rollout, whether a member
 * may reboot now, may be activated now, which job phase goes first, and
 * the retry backoff.  The executor (driving jobs) and the planner
 * (rollout-plan.h, simulating the executor) both decide with these, so a
 * plan follows what a run does.  Nothing here knows the daemon's objects:
 * the caller copies the facts it needs into the structs below.
 *
 * The rules, in full, for operators: doc/rollouts.md.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "smpgw/mcuboot-image.h"
#include "smpgwd-limits.h"

/* ---- limits ---- */

#define ROLLOUT_COUNT_MAX 100000u           /* a count: "5" */
#define ROLLOUT_FILTER_TRANSPORTS_MAX 8u    /* transports in a filter */
#define ROLLOUT_TRANSPORT_SIZE 32u          /* a transport (scheme) name with its NUL */
#define ROLLOUT_LABELS_MAX 16u              /* labels in a filter, and on a device */
#define ROLLOUT_LABEL_SIZE 33u              /* [a-z0-9][a-z0-9._-]{0,31} and its NUL */
#define ROLLOUT_NAME_GLOB_SIZE 129u         /* a name glob of 128 bytes */
#define ROLLOUT_FILTER_TEXT_SIZE 65u        /* board, app: 64 bytes */
#define ROLLOUT_SOAK_MAX_S 604800u          /* 7 days */
#define ROLLOUT_REBOOTING_MAX 1024u         /* max_rebooting, max_rebooting_relay */
#define ROLLOUT_ATTEMPTS_MAX JOB_ATTEMPTS_MAX   /* a job's: one limit for every door */
#define ROLLOUT_RETRY_DELAY_MAX_S 86400u
#define ROLLOUT_RETRY_DELAY_CAP_MAX_S 604800u

/* ---- names shared with the model ---- */

enum rollout_member_state {
        ROLLOUT_MEMBER_PENDING,       /* waiting for its wave or a slot */
        ROLLOUT_MEMBER_SKIPPED,       /* see enum rollout_skip_reason */
        ROLLOUT_MEMBER_STAGING,
        ROLLOUT_MEMBER_STAGED,
        ROLLOUT_MEMBER_ACTIVATING,
        ROLLOUT_MEMBER_REBOOTING,
        ROLLOUT_MEMBER_VERIFYING,
        ROLLOUT_MEMBER_SOAKING,
        ROLLOUT_MEMBER_SUCCEEDED,
        ROLLOUT_MEMBER_FAILED,        /* see enum rollout_failure_reason */
        ROLLOUT_MEMBER_CANCELLED,
        _ROLLOUT_MEMBER_STATE_MAX,
        _ROLLOUT_MEMBER_STATE_INVALID = -EINVAL,
};

enum rollout_skip_reason {
        ROLLOUT_SKIP_NONE,                     /* a member to update */
        ROLLOUT_SKIP_ALREADY_RUNNING,          /* "already-running" */
        ROLLOUT_SKIP_ABSENT,                   /* "absent" */
        ROLLOUT_SKIP_INCOMPATIBLE_BOARD,       /* "incompatible-board" */
        ROLLOUT_SKIP_IMAGE_TOO_LARGE,          /* "image-too-large" */
        ROLLOUT_SKIP_FILTER_NO_LONGER_MATCHES, /* "filter-no-longer-matches": set by the executor */
        ROLLOUT_SKIP_UNKNOWN_BOARD,            /* "unknown-board": a board term, the device's board unknown */
        ROLLOUT_SKIP_UNKNOWN_APP,              /* "unknown-app": an app term, the device's app unknown */
        _ROLLOUT_SKIP_MAX,
        _ROLLOUT_SKIP_INVALID = -EINVAL,
};

enum rollout_failure_reason {
        ROLLOUT_FAILED_REVERTED,      /* "reverted" */
        ROLLOUT_FAILED_STUCK,         /* "stuck" */
        ROLLOUT_FAILED_REFUSED,       /* "refused" */
        ROLLOUT_FAILED_UNREACHABLE,   /* "unreachable" */
        ROLLOUT_FAILED_DEADLINE,      /* "deadline" */
        ROLLOUT_FAILED_CANCELLED,     /* "cancelled" */
        ROLLOUT_FAILED_SOAK_CHECK,    /* "soak-check" */
        _ROLLOUT_FAILED_MAX,
        _ROLLOUT_FAILED_INVALID = -EINVAL,
};

enum rollout_action {
        ROLLOUT_ACTION_PAUSE,         /* "pause" */
        ROLLOUT_ACTION_ABORT,         /* "abort" */
        _ROLLOUT_ACTION_MAX,
        _ROLLOUT_ACTION_INVALID = -EINVAL,
};

/* Why a rollout stopped by itself (paused_reason / error). */
enum rollout_halt_reason {
        ROLLOUT_HALT_NONE,
        ROLLOUT_HALT_FAILURE_THRESHOLD, /* "failure-threshold" */
        ROLLOUT_HALT_REVERTED,          /* "reverted" */
        _ROLLOUT_HALT_MAX,
        _ROLLOUT_HALT_INVALID = -EINVAL,
};

/* The string of each value ("already-running"), NULL out of range; and
 * back (-EINVAL for an unknown string). */
const char *rollout_member_state_to_string(enum rollout_member_state s);
enum rollout_member_state rollout_member_state_from_string(const char *s);
const char *rollout_skip_reason_to_string(enum rollout_skip_reason r);
enum rollout_skip_reason rollout_skip_reason_from_string(const char *s);
const char *rollout_failure_reason_to_string(enum rollout_failure_reason r);
enum rollout_failure_reason rollout_failure_reason_from_string(const char *s);
const char *rollout_action_to_string(enum rollout_action a);
enum rollout_action rollout_action_from_string(const char *s);

/* How a rollout reaches its mesh targets (doc/rollouts.md, "Mesh
 * targets").  A mesh target has no direct link in smpgw: only its
 * Distributor reaches it, so "auto" always takes the Distributor and
 * "direct" is refused for a rollout with mesh targets. */
enum rollout_mesh_path {
        ROLLOUT_MESH_PATH_AUTO,        /* "auto" (default): the faster path the device has */
        ROLLOUT_MESH_PATH_DISTRIBUTOR, /* "distributor" */
        ROLLOUT_MESH_PATH_DIRECT,      /* "direct": a job over the target's own link */
        _ROLLOUT_MESH_PATH_MAX,
        _ROLLOUT_MESH_PATH_INVALID = -EINVAL,
};
const char *rollout_mesh_path_to_string(enum rollout_mesh_path p);
enum rollout_mesh_path rollout_mesh_path_from_string(const char *s);
const char *rollout_halt_reason_to_string(enum rollout_halt_reason r);

/* ---- the policy ---- */

/* "5" (a count, 1..ROLLOUT_COUNT_MAX) or "10%" (of a total, 1..100). */
struct rollout_count {
        uint32_t value;
        bool percent;
};

/* All given terms must match (rollout_filter_matches()). */
struct rollout_filter {
        size_t n_transports;          /* 0: any transport; else one of these */
        char transports[ROLLOUT_FILTER_TRANSPORTS_MAX][ROLLOUT_TRANSPORT_SIZE];
        char name[ROLLOUT_NAME_GLOB_SIZE];  /* "": any; else an fnmatch() glob, case-insensitive */
        size_t n_labels;              /* the device carries every one of these */
        char labels[ROLLOUT_LABELS_MAX][ROLLOUT_LABEL_SIZE];
        char board[ROLLOUT_FILTER_TEXT_SIZE]; /* "": any; else equal, case-insensitive */
        char app[ROLLOUT_FILTER_TEXT_SIZE];   /* "": any; else equal, case-insensitive */
        bool has_version_below;       /* the running version is strictly below (MCUboot order) */
        struct mcuboot_version version_below;
};

struct rollout_policy {
        struct rollout_count canary;            /* first wave; at least 1 member (default 1) */
        struct rollout_count wave_size;         /* each later wave, of all members (default 25%) */
        uint32_t soak_s;                        /* after each wave's last member finished (default 0) */
        struct rollout_count failure_threshold; /* failures in one wave that stop it (default 1) */
        enum rollout_action failure_action;     /* (default pause) */
        uint32_t revert_halt;                   /* reverts in the rollout that pause it; 0 never (default 1) */
        uint32_t max_rebooting;                 /* members rebooting at once (default 4) */
        uint32_t max_rebooting_relay;           /* of which labelled relay or proxy (default 1) */
        uint32_t attempts;                      /* per member's job (default 3) */
        uint32_t retry_delay_s;                 /* backoff base (default 10) */
        uint32_t retry_delay_max_s;             /* backoff cap (default 600) */
        enum rollout_mesh_path mesh_path;       /* (default auto) */
        bool staging;                           /* stage everyone from the start (default false) */
        bool has_filter;                        /* false: explicit device targets */
        struct rollout_filter filter;
};

/* The defaults above. */
void rollout_policy_init(struct rollout_policy *ret);

/* "5" or "10%", no spaces.  -EINVAL with a sentence naming `what`
 * ("canary '0%' is not a count 1..100000 or a percentage 1%..100%"). */
int rollout_count_parse(const char *text, const char *what, struct rollout_count *ret, char **ret_reason);
/* "5" or "10%" into buf (at least 12 bytes).  Returns buf. */
const char *rollout_count_format(const struct rollout_count *c, char *buf, size_t size);
/* The count for a total: a count as it is, a percentage rounded up. */
uint32_t rollout_count_resolve(const struct rollout_count *c, size_t total);

/* The policy object of a rollout (JSON, all keys optional, unknown keys
 * refused): canary, wave_size, failure_threshold (a count string or a
 * number), soak, revert_halt, max_rebooting, max_rebooting_relay,
 * attempts, retry_delay, retry_delay_max (numbers; seconds), and
 * failure_action ("pause" or "abort").  Keys override what *p holds
 * (rollout_policy_init() first for the defaults); the filter and
 * staging are not part of it.  -EINVAL with a sentence naming the key. */
int rollout_policy_from_json(const json_t *obj, struct rollout_policy *p, char **ret_reason);
/* Every key of the above, written out.  NULL: no memory. */
json_t *rollout_policy_to_json(const struct rollout_policy *p);

/* A target filter (JSON): transport (a name or a list), name (a glob),
 * labels (a list), board, app, version_below (a version).  At least one
 * term; unknown keys refused.  -EINVAL with a sentence. */
int rollout_filter_from_json(const json_t *obj, struct rollout_filter *ret, char **ret_reason);
json_t *rollout_filter_to_json(const struct rollout_filter *f);

/* ---- candidates and membership ---- */

/* The image a rollout pushes. */
struct rollout_image_facts {
        const char *hash;             /* hex image id; borrowed */
        uint64_t size;                /* bytes the device's slot must hold */
        /* The boards it is built for (image-boards.h); none: any board. */
        const char *const *boards;
        size_t n_boards;
};

/* What the policy needs to know of one device.  Strings are borrowed. */
struct rollout_candidate {
        uint64_t id;
        const char *name;             /* NULL: none */
        const char *transport;        /* "ble", "udp", ... */
        const char *adapter;          /* the BLE adapter ("hci0"); NULL otherwise */
        const char *const *labels;
        size_t n_labels;
        const char *board;            /* OS info hardware/board; NULL: unknown */
        const char *app;              /* OS info application name; NULL: unknown */
        bool has_version;             /* the running (active) image's version is known */
        struct mcuboot_version version;
        const char *active_hash;      /* hex hash of the active image; NULL: unknown */
        bool active_confirmed;
        uint64_t slot_size;           /* largest image its secondary slot takes; 0: unknown */
        double rate;                  /* bytes/s of its last job's upload; 0: unknown */
        uint64_t last_seen_usec;      /* CLOCK_REALTIME */
        bool absent;                  /* the inventory says absent */
};

/* Whether a device matches every term (a device without a name is
 * matched as ""; an unknown board, app or version matches no term on
 * it). */
bool rollout_filter_matches(const struct rollout_filter *f, const struct rollout_candidate *c);
/* A device the filter leaves out only because it does not know its board
 * or application (firmware without the OS info command: Mynewt, Zephyr
 * without CONFIG_MCUMGR_GRP_OS_INFO, or not probed yet):
 * ROLLOUT_SKIP_UNKNOWN_BOARD when the board term is one it fails,
 * else ROLLOUT_SKIP_UNKNOWN_APP.  ROLLOUT_SKIP_NONE when it matches, or
 * when a term on something it knows fails.  Such a device is a skipped
 * member, so a plan says why it is not updated, and it joins when a probe
 * tells its board and that matches. */
enum rollout_skip_reason rollout_filter_unknown(const struct rollout_filter *f, const struct rollout_candidate *c);
/* Why a member would not be updated, in this order: already-running (its
 * active image is this one and confirmed), incompatible-board (the image
 * declares boards and the device's board is none of them,
 * image_boards_accept()), unknown-board (the image declares boards and
 * the device does not tell its board: it joins once a probe tells a
 * matching one), image-too-large (slot size known and smaller), absent
 * (the inventory says so); else ROLLOUT_SKIP_NONE. */
enum rollout_skip_reason rollout_candidate_skip(const struct rollout_candidate *c,
                                                const struct rollout_image_facts *image);
/* Whether a device counts against max_rebooting_relay: labelled "relay"
 * or "proxy". */
bool rollout_labels_relay(const char *const *labels, size_t n_labels);

/* A rollout's member order: devices seen within absent_after with a
 * known rate, best rate first; then those with an unknown rate; then
 * those not seen within absent_after (again known rates first, best
 * first); ties by device id.  A comparison for two candidates: < 0 when
 * a goes first. */
int rollout_candidate_order(const struct rollout_candidate *a, const struct rollout_candidate *b, uint64_t now_usec,
                            uint64_t absent_after_usec);

/* Waves for n members: the canary (wave 0, at least 1), then waves of
 * wave_size (at least 1), the last one the rest. */
struct rollout_waves {
        uint32_t canary;              /* members in wave 0 */
        uint32_t wave_size;           /* members in each later wave */
        uint32_t n_waves;             /* 0 when there are no members */
};
void rollout_waves_compute(const struct rollout_policy *p, size_t n_members, struct rollout_waves *ret);
/* The wave of the member at position (0 first) in the order. */
uint32_t rollout_wave_of(const struct rollout_waves *w, size_t position);
/* A device that joins a running rollout: the first wave that has not
 * started, or a new last wave (== n_waves) when all have. */
uint32_t rollout_wave_for_joiner(uint32_t n_waves, uint32_t waves_started);

struct rollout_assignment {
        size_t candidate;             /* index into the candidates given */
        uint64_t device_id;
        enum rollout_skip_reason skip;  /* ROLLOUT_SKIP_NONE: to be updated */
        uint32_t order_key;           /* updated: position in the order, 0 first; skipped: UINT32_MAX */
        uint32_t wave;                /* updated: 0 the canary; skipped: UINT32_MAX */
};

struct rollout_layout {
        struct rollout_assignment *members;  /* owned: n_updated in order, then n_skipped by id */
        size_t n_updated, n_skipped;
        struct rollout_waves waves;
};

/* Membership (the filter when p->has_filter; candidates that do not
 * match are left out), skip reasons, order and waves.  Candidate ids
 * must be distinct (-EINVAL otherwise).  -ENOMEM. */
int rollout_layout_build(const struct rollout_policy *p, const struct rollout_image_facts *image,
                         const struct rollout_candidate *candidates, size_t n_candidates, uint64_t now_usec,
                         uint64_t absent_after_usec, struct rollout_layout *ret);
/* Frees what it owns; NULL-safe, leaves it empty. */
void rollout_layout_done(struct rollout_layout *l);

/* ---- during the run ---- */

/* One wave's members by outcome so far (skipped members not counted). */
struct rollout_wave_tally {
        uint32_t members;             /* members to update in the wave */
        uint32_t finished;            /* succeeded, failed or cancelled */
        uint32_t failed;              /* failed, for any reason (reverts too) */
};

enum rollout_verdict_kind {
        ROLLOUT_VERDICT_RUNNING,      /* members still at work, under the threshold */
        ROLLOUT_VERDICT_WAVE_DONE,    /* every member finished, under the threshold: soak, then the next wave */
        ROLLOUT_VERDICT_PAUSE,
        ROLLOUT_VERDICT_ABORT,
};

struct rollout_verdict {
        enum rollout_verdict_kind kind;
        enum rollout_halt_reason reason;   /* PAUSE, ABORT: why */
        char sentence[160];                /* PAUSE, ABORT: for people ("wave 2: 3 of 10 members failed ...") */
};

/* The failures that stop a wave of `members`: failure_threshold
 * resolved for it, at least 1 and at most members (so a wave whose every
 * member failed always stops). */
uint32_t rollout_failure_threshold_of(const struct rollout_policy *p, uint32_t members);
/* Judges wave (0 the canary) as its members finish.  Reverts halt first
 * (reverted_total, over the whole rollout, reaching revert_halt: pause,
 * "reverted"), unless the wave's failures also reach the threshold with
 * failure_action abort, which wins.  A threshold reached stops the wave
 * at once, without waiting for its other members. */
void rollout_wave_evaluate(const struct rollout_policy *p, uint32_t wave, const struct rollout_wave_tally *t,
                           uint32_t reverted_total, struct rollout_verdict *ret);

/* Members of the rollout holding a reboot token: from the start of
 * activate until their verify succeeded or failed. */
struct rollout_reboots {
        uint32_t rebooting;           /* all of them */
        uint32_t rebooting_relay;     /* of which relays (rollout_labels_relay()) */
};
/* Whether one more member (a relay or not) may start to activate. */
bool rollout_may_reboot(const struct rollout_policy *p, const struct rollout_reboots *now, bool relay);

/* What activating a member waits for. */
struct rollout_activation_gate {
        bool staged;                  /* its upload is done (stage phase succeeded) */
        bool wave_open;               /* its wave started: every earlier wave finished its soak */
        bool window_open;             /* a maintenance window is open (or none is set) */
        bool forced;                  /* the rollout's `activate` control: windows are not waited for */
        bool reboot_allowed;          /* rollout_may_reboot() */
};
bool rollout_may_activate(const struct rollout_activation_gate *g);

/* The job phases that need a radio slot, and the order the scheduler
 * grants slots in: verifies first (they free reboot tokens and finish
 * waves), then activations, then uploads; within a phase by wave, then
 * by order key.  The soak check's probes count as verifies. */
enum rollout_phase {
        ROLLOUT_PHASE_VERIFY,
        ROLLOUT_PHASE_ACTIVATE,
        ROLLOUT_PHASE_STAGE,
        _ROLLOUT_PHASE_MAX,
};
/* A job priority for that order: lower goes first. */
uint64_t rollout_job_priority(enum rollout_phase phase, uint32_t wave, uint32_t order_key);

/* The wait before a member's next attempt after failed_attempts (>= 1)
 * failures: retry_delay × 2^(failed_attempts - 1), capped at
 * retry_delay_max, times a jitter of ±20 % (unit_random in [0, 1):
 * 0 gives -20 %, 0.5 none). */
uint64_t rollout_retry_delay_usec(const struct rollout_policy *p, uint32_t failed_attempts, double unit_random);
