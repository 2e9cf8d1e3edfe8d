/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GET /metrics: Prometheus text exposition format 0.0.4.  Gauges are
 * counted from the model at scrape time; counters come from the manager's
 * stats (this process's lifetime, as Prometheus expects of counters).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"   /* the build's: PACKAGE_VERSION */
#include "db.h"
#include "engine-rollout.h"
#include "hawkbit.h"
#include "rest-internal.h"
#include "rollout.h"

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t value) {
        header(f, name, "counter", help);
        fprintf(f, "%s %" PRIu64 "\n", name, value);
}

static void gauge(FILE *f, const char *name, const char *help, uint64_t value) {
        header(f, name, "gauge", help);
        fprintf(f, "%s %" PRIu64 "\n", name, value);
}

int rest_metrics(struct rest_request *req) {
        struct rest *r = req->rest;
        struct manager *m = r->manager;
        const struct manager_stats *st = &m->stats;
        uint64_t devices[_DEVICE_STATE_MAX] = {}, jobs[_JOB_STATE_MAX] = {};
        uint64_t phases[_JOB_STATE_MAX][_SMP_UPDATE_PHASE_MAX] = {};
        _cleanup_free_ char *text = NULL;
        struct timespec ts;
        size_t len = 0;
        FILE *f;

        for (size_t i = 0; i < m->n_devices; i++)
                if ((unsigned) m->devices[i]->state < _DEVICE_STATE_MAX)
                        devices[m->devices[i]->state]++;
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *j = m->jobs[i];
                if ((unsigned) j->state >= _JOB_STATE_MAX)
                        continue;
                jobs[j->state]++;
                if ((unsigned) j->phase < SMP_UPDATE_PHASE_DONE)
                        phases[j->state][j->phase]++;
        }

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;

        header(f, "smpgw_build_info", "gauge", "The smpgwd version, as a label.");
        fprintf(f, "smpgw_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

        clock_gettime(CLOCK_MONOTONIC, &ts);
        gauge(f, "smpgw_uptime_seconds", "Seconds since the REST API started with the daemon.",
              ((uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u - r->started_usec) / 1000000u);

        header(f, "smpgw_devices", "gauge", "Devices in the inventory, by state.");
        for (unsigned s = 0; s < _DEVICE_STATE_MAX; s++)
                fprintf(f, "smpgw_devices{state=\"%s\"} %" PRIu64 "\n", device_state_to_string(s), devices[s]);

        header(f, "smpgw_jobs", "gauge", "Jobs kept in the database, by state.");
        for (unsigned s = 0; s < _JOB_STATE_MAX; s++)
                fprintf(f, "smpgw_jobs{state=\"%s\"} %" PRIu64 "\n", job_state_to_string(s), jobs[s]);

        /* "running" alone misses the jobs whose device swaps and reboots
         * (they hold no link slot, yet are at work): each unfinished state
         * by the update phase it runs or runs next. */
        header(f, "smpgw_job_phases", "gauge",
               "Unfinished jobs by state and update phase (stage: upload; activate: test and reset; verify: "
               "after the reboot, then confirm).");
        for (unsigned s = 0; s < _JOB_STATE_MAX; s++) {
                if (s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED)
                        continue;
                for (unsigned p = 0; p < SMP_UPDATE_PHASE_DONE; p++)
                        fprintf(f, "smpgw_job_phases{state=\"%s\",phase=\"%s\"} %" PRIu64 "\n", job_state_to_string(s),
                                smp_update_phase_to_string((enum smp_update_phase) p), phases[s][p]);
        }

        gauge(f, "smpgw_images", "Images in the image store.", m->n_images);
        {
                size_t n;
                struct rollout *const *all = rollout_executor_list(m->rollouts, &n);
                uint64_t by_state[_ROLLOUT_STATE_MAX] = {};

                for (size_t i = 0; i < n; i++)
                        by_state[all[i]->state]++;
                header(f, "smpgw_rollouts", "gauge", "Rollouts kept, by state.");
                for (unsigned s = 0; s < _ROLLOUT_STATE_MAX; s++)
                        fprintf(f, "smpgw_rollouts{state=\"%s\"} %" PRIu64 "\n",
                                rollout_state_to_string((enum rollout_state) s), by_state[s]);
                header(f, "smpgw_rollout_members", "gauge", "Members of unfinished rollouts, by rollout and state.");
                for (size_t i = 0; i < n; i++) {
                        uint32_t counts[_ROLLOUT_MEMBER_STATE_MAX];
                        if (rollout_is_finished(all[i]))
                                continue;
                        rollout_count_states(all[i], counts);
                        for (unsigned s = 0; s < _ROLLOUT_MEMBER_STATE_MAX; s++)
                                fprintf(f, "smpgw_rollout_members{rollout=\"%" PRIu64 "\",state=\"%s\"} %" PRIu32 "\n",
                                        all[i]->id, rollout_member_state_to_string((enum rollout_member_state) s),
                                        counts[s]);
                }
        }
        gauge(f, "smpgw_sse_clients", "Clients connected to /api/v1/events.", r->n_sse_streams);

        header(f, "smpgw_jobs_finished_total", "counter", "Jobs that finished, by result.");
        fprintf(f, "smpgw_jobs_finished_total{result=\"succeeded\"} %" PRIu64 "\n", st->jobs_succeeded);
        fprintf(f, "smpgw_jobs_finished_total{result=\"failed\"} %" PRIu64 "\n", st->jobs_failed);
        fprintf(f, "smpgw_jobs_finished_total{result=\"cancelled\"} %" PRIu64 "\n", st->jobs_cancelled);
        counter(f, "smpgw_job_attempts_failed_total", "Job attempts that failed (retried or final).",
                st->job_attempts_failed);
        counter(f, "smpgw_bytes_uploaded_total", "Image bytes acknowledged by devices.", st->bytes_uploaded);

        header(f, "smpgw_probes_total", "counter", "Device probes, by result.");
        fprintf(f, "smpgw_probes_total{result=\"ok\"} %" PRIu64 "\n", st->probes_ok);
        fprintf(f, "smpgw_probes_total{result=\"failed\"} %" PRIu64 "\n", st->probes_failed);

        counter(f, "smpgw_images_rejected_total", "Uploaded images refused (invalid, unsigned, too large).",
                st->images_rejected);
        counter(f, "smpgw_rest_requests_total", "HTTP requests received by the REST API.", st->rest_requests);
        counter(f, "smpgw_rest_errors_total", "REST replies with a 4xx or 5xx status.", st->rest_errors);
        counter(f, "smpgw_rest_header_timeouts_total",
                "REST clients closed for not sending their request headers in time.", r->header_timeouts);
        counter(f, "smpgw_sse_overflows_total",
                "Event streams dropped for falling behind (an overflow event, then the end).", r->sse_overflows);
        counter(f, "smpgw_rest_body_timeouts_total", "REST requests answered 408 because their body stalled.",
                r->body_timeouts);
        counter(f, "smpgw_rest_refused_early_total",
                "REST requests answered on the socket because they could never complete "
                "(a hang-up, a TLS handshake, too many query parameters, a stall).",
                r->refused_early);
        latency_write_prometheus(f, "smpgw_rest_request_duration_seconds",
                                 "REST requests, from their request line read to their reply handed to the kernel.",
                                 &st->rest_request);
        latency_write_prometheus(f, "smpgw_loop_dispatch_seconds",
                                 "Callbacks of the event loop, each: what a client whose request arrived "
                                 "meanwhile waited for.",
                                 &st->loop_dispatch);
        header(f, "smpgw_db_checkpoints_total", "counter",
               "WAL checkpoints of the periodic check, by result (postponed: REST clients were being served).");
        fprintf(f, "smpgw_db_checkpoints_total{result=\"run\"} %" PRIu64 "\n", st->checkpoints);
        fprintf(f, "smpgw_db_checkpoints_total{result=\"postponed\"} %" PRIu64 "\n", st->checkpoints_postponed);
        counter(f, "smpgw_db_flushes_total", "Database flush transactions.", st->flushes);
        counter(f, "smpgw_db_flush_errors_total", "Database flushes that failed (retried).", st->flush_errors);
        counter(f, "smpgw_db_transactions_total",
                "SQLite write transactions committed: the flushes and the writes done at once.", db_commits(m->db));
        counter(f, "smpgw_history_dropped_total",
                "History rows lost: the queue was full and the database could not be written.",
                db_history_dropped(m->db));

        if (m->hawkbit) {
                const struct hawkbit_stats *hs = hawkbit_stats(m->hawkbit);
                gauge(f, "smpgw_hawkbit_targets", "Devices exposed to the hawkBit server.",
                      hawkbit_targets_count(m->hawkbit));
                gauge(f, "smpgw_hawkbit_feedback_queued", "hawkBit feedback not yet accepted by the server.",
                      hawkbit_feedback_queued(m->hawkbit));
                counter(f, "smpgw_hawkbit_polls_total", "hawkBit polls answered or failed.", hs->polls);
                counter(f, "smpgw_hawkbit_poll_errors_total", "hawkBit polls that failed (network, HTTP, JSON).",
                        hs->poll_errors);
                counter(f, "smpgw_hawkbit_auth_errors_total", "hawkBit requests refused with 401 or 403.",
                        hs->auth_errors);
                header(f, "smpgw_hawkbit_actions_total", "counter", "hawkBit deployment actions, by result.");
                fprintf(f, "smpgw_hawkbit_actions_total{result=\"started\"} %" PRIu64 "\n", hs->actions);
                fprintf(f, "smpgw_hawkbit_actions_total{result=\"succeeded\"} %" PRIu64 "\n", hs->actions_succeeded);
                fprintf(f, "smpgw_hawkbit_actions_total{result=\"failed\"} %" PRIu64 "\n", hs->actions_failed);
                counter(f, "smpgw_hawkbit_cancels_total", "hawkBit cancelAction requests answered.", hs->cancels);
                counter(f, "smpgw_hawkbit_downloads_total", "hawkBit artifacts downloaded and stored.", hs->downloads);
                counter(f, "smpgw_hawkbit_download_errors_total", "hawkBit artifact transfers that failed (retried).",
                        hs->download_errors);
                counter(f, "smpgw_hawkbit_download_bytes_total", "hawkBit artifact bytes received.",
                        hs->download_bytes);
                header(f, "smpgw_hawkbit_feedback_total", "counter", "hawkBit feedback messages, by result.");
                fprintf(f, "smpgw_hawkbit_feedback_total{result=\"sent\"} %" PRIu64 "\n", hs->feedback_sent);
                fprintf(f, "smpgw_hawkbit_feedback_total{result=\"retried\"} %" PRIu64 "\n", hs->feedback_errors);
                fprintf(f, "smpgw_hawkbit_feedback_total{result=\"dropped\"} %" PRIu64 "\n", hs->feedback_dropped);
                counter(f, "smpgw_hawkbit_config_data_total", "hawkBit configData (attributes) sent.",
                        hs->config_data_sent);
        }

        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        return rest_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", TAKE_PTR(text), len);
}
