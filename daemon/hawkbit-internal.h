/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by the hawkbit*.c files only (see hawkbit.h for who does what).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "hawkbit-http.h"
#include "hawkbit.h"
#include "model-index.h"

struct manager;
struct device;
struct job;
struct hawkbit_http;
struct hawkbit_request;

/* Limits (doc/smpgwd.conf.md, doc/hawkbit.md). */
#define HAWKBIT_RESPONSE_MAX (1024u * 1024u)     /* a JSON answer of the server */
#define HAWKBIT_URL_MAX 2048u                    /* an href we follow */
#define HAWKBIT_TOKEN_MAX 1024u                  /* the gateway token */
#define HAWKBIT_FEEDBACK_DETAILS_MAX 512u        /* one details[] sentence */
#define HAWKBIT_FEEDBACK_QUEUE_MAX 100000u       /* rows waiting; past it new feedback is dropped (counted) */
#define HAWKBIT_RETRY_MIN_USEC (1 * 1000000ull)  /* feedback and download retries: 1 s doubling ... */
#define HAWKBIT_RETRY_MAX_USEC (60 * 1000000ull) /* ... up to 60 s */

enum hawkbit_type { /* deployment.download / .update */
                    HAWKBIT_SKIP,
                    HAWKBIT_ATTEMPT,
                    HAWKBIT_FORCED,
};

enum hawkbit_action_state {
        HAWKBIT_ACTION_DOWNLOADING, /* the artifact is being fetched (shared per sha256) */
        HAWKBIT_ACTION_WAITING,     /* stored; waiting for the window or update != skip */
        HAWKBIT_ACTION_RUNNING,     /* a job pushes it */
        HAWKBIT_ACTION_FINISHED,    /* closed feedback queued */
        _HAWKBIT_ACTION_STATE_MAX,
};

struct hawkbit_action {
        uint64_t id;
        enum hawkbit_action_state state;
        char sha256[65];
        char *url; /* download-http */
        uint64_t size;
        enum hawkbit_type update;
        bool window_open;
        uint64_t job_id; /* 0: none yet */
        bool scheduled_sent;
        bool upload_reported; /* proceeding 2/3 sent */
        char *filename;       /* the artifact's, the image's name */
        char image_id[65];    /* "" until stored */
};

/* One exposed device. */
struct hawkbit_target {
        struct hawkbit *hb;
        uint64_t device_id;
        char *controller_id;
        uint64_t next_poll_usec;      /* CLOCK_MONOTONIC */
        uint64_t sleep_usec;          /* the server's, clamped; 0: not told yet */
        unsigned errors;              /* polls failed in a row */
        struct hawkbit_request *poll; /* in flight */
        struct hawkbit_request *config_put;
        struct hawkbit_request *cancel_get;
        struct hawkbit_request *base_get;
        bool registered;               /* answered a poll */
        uint64_t attributes_hash;      /* of the configData last sent, 0: none */
        struct hawkbit_action *action; /* the current or last action, NULL: none */
        uint64_t cancel_answered;      /* the last cancelAction id answered */
        char last_feedback[48];
        unsigned feedback_queued;
        UT_hash_handle hh;
};

struct hawkbit_download {
        struct hawkbit *hb_owner; /* the module, for the download's callbacks */
        char sha256[65];
        char *url;
        uint64_t size, done;
        char *path; /* <state>/hawkbit/<sha256>.part */
        int fd;
        struct hawkbit_request *req;
        sd_event_source *retry_timer;
        unsigned failures;
        uint64_t started_bytes; /* done when the current request started */
        char image_id[65];      /* "" while downloading; then the image it became */
        char *filename;
};

struct hawkbit_feedback {
        int64_t id; /* row id */
        uint64_t device_id;
        char *controller_id, *path, *body;
};

struct hawkbit {
        struct manager *manager;
        char *auth_header; /* "Authorization: GatewayToken ..." (secret) */
        char *base_url;    /* <server>/<tenant>/controller/v1/ */
        char *origin;      /* scheme://host[:port] of the server: only it gets the token */
        char *dl_dir;      /* <state>/hawkbit */
        struct hawkbit_http *http;
        struct hawkbit_target *targets; /* uthash by device_id */
        unsigned n_targets;
        sd_event_source *poll_timer;
        uint64_t rng; /* xorshift64 state for jitter */

        struct hawkbit_download **downloads;
        size_t n_downloads;

        struct hawkbit_feedback *feedback; /* queue, oldest first */
        size_t n_feedback, feedback_alloc;
        struct hawkbit_request *feedback_req;
        sd_event_source *feedback_timer;
        unsigned feedback_failures;
        bool feedback_blocked; /* waiting for the retry timer */

        struct hawkbit_stats stats;
};

/* ---- hawkbit.c ---- */
struct hawkbit_target *hawkbit_target_find(struct hawkbit *hb, uint64_t device_id);
uint64_t hawkbit_now(struct hawkbit *hb); /* CLOCK_MONOTONIC of the loop */
uint64_t hawkbit_random(struct hawkbit *hb);
/* Writes the target's action row (or deletes it when NULL). */
void hawkbit_action_save(struct hawkbit_target *t);
void hawkbit_action_free(struct hawkbit_action *a);
const char *hawkbit_action_state_to_string(enum hawkbit_action_state s);
int hawkbit_action_state_from_string(const char *s);
const char *hawkbit_type_to_string(enum hawkbit_type t);
int hawkbit_type_from_string(const char *s);

/* ---- hawkbit-target.c ---- */
bool hawkbit_device_exposed(const struct manager *m, const struct device *d);
/* The controllerId of d: [hawkbit] controller_id_prefix + id or address,
 * with every character a URL path would need escaped as '-'. */
int hawkbit_controller_id(const struct manager *m, const struct device *d, char **ret);
/* Reads [hawkbit] gateway_token_file into "Authorization: GatewayToken ...". */
int hawkbit_read_token(const char *path, char **ret_header);

/* ---- hawkbit-http-module.c: the HTTP module (hawkbit-http.h) ---- */
/* Loads smpgwd-hawkbit-http.so and starts its client; -ENOENT or
 * -EPROTO (logged with the directories searched or dlerror()'s reason)
 * when it is missing or unusable. */
int hawkbit_http_new(sd_event *event, struct hawkbit_http **ret);
struct hawkbit_http *hawkbit_http_free(struct hawkbit_http *h);
int hawkbit_http_start(struct hawkbit_http *h, const struct hawkbit_http_call *call, hawkbit_http_done_fn done,
                       void *userdata, struct hawkbit_request **ret);
/* Drops a request without its callback; NULL is fine. */
void hawkbit_http_cancel(struct hawkbit_http *h, struct hawkbit_request *req);
unsigned hawkbit_http_in_flight(const struct hawkbit_http *h);
/* The Authorization header for url: only the server's own origin gets
 * the gateway token (an artifact on a CDN must not). */
const char *hawkbit_auth_for(const struct hawkbit *hb, const char *url);

/* ---- hawkbit-poll.c ---- */
int hawkbit_poll_start(struct hawkbit *hb);
/* Re-evaluates the timer (a target added, a request slot free). */
void hawkbit_poll_kick(struct hawkbit *hb);
/* A new target: its first poll within [hawkbit] start_spread. */
void hawkbit_poll_schedule_first(struct hawkbit *hb, struct hawkbit_target *t, uint64_t offset_usec);
bool hawkbit_request_slot_free(const struct hawkbit *hb);
/* The id after "<name>/" in an href (deploymentBase/8?c=..), 0: none. */
uint64_t hawkbit_href_id(const char *href, const char *name);

/* ---- hawkbit-deploy.c ---- */
void hawkbit_deployment_seen(struct hawkbit_target *t, const char *href);
void hawkbit_cancel_seen(struct hawkbit_target *t, const char *href);
void hawkbit_deploy_job_event(struct hawkbit *hb, struct job *j);
/* At start: actions loaded, their downloads resumed, finished jobs reported. */
void hawkbit_deploy_resume(struct hawkbit *hb);
void hawkbit_downloads_free(struct hawkbit *hb);

/* ---- hawkbit-feedback.c ---- */
enum hawkbit_execution {
        HAWKBIT_EXEC_PROCEEDING,
        HAWKBIT_EXEC_SCHEDULED,
        HAWKBIT_EXEC_RESUMED,
        HAWKBIT_EXEC_CLOSED,
        HAWKBIT_EXEC_CANCELED,
        HAWKBIT_EXEC_REJECTED,
};
enum hawkbit_finished {
        HAWKBIT_FINISHED_NONE,
        HAWKBIT_FINISHED_SUCCESS,
        HAWKBIT_FINISHED_FAILURE,
};
/* Queues feedback for an action (cancel: for a cancelAction), written to
 * the database before it returns; cnt/of 0: no progress.  details may be
 * NULL-terminated sentences. */
int hawkbit_feedback_queue(struct hawkbit_target *t, bool cancel, uint64_t id, enum hawkbit_execution exec,
                           enum hawkbit_finished finished, unsigned cnt, unsigned of, const char *const *details);
int hawkbit_feedback_load(struct hawkbit *hb);
/* The server answered: send what waits now (the retry timer aside). */
void hawkbit_feedback_kick(struct hawkbit *hb, bool server_reachable);
void hawkbit_feedback_free_all(struct hawkbit *hb);
