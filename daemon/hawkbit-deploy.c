/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Deployments and cancels.  A deploymentBase names one artifact (an
 * MCUboot image: smpgw installs one image per action) with its sha256
 * and download-http link.  The artifact is downloaded once per sha256
 * however many devices' actions want it, resumed with a Range request
 * after an interruption, checked against the sha256, and added to the
 * image store through the engine (MCUboot validation and the signature
 * policy, as for any image).  Then the action's job is pushed through
 * the engine -- or, while update is skip or the maintenance window is
 * unavailable, the action waits (feedback scheduled) and its job is
 * created when a later deploymentBase says it may (feedback resumed).
 *
 * Progress: proceeding 1/3 when the image is stored, 2/3 when the device
 * has it and is told to test it, then closed with the job's outcome.
 *
 * A cancel is answered canceled when nothing irreversible happened yet
 * (downloading, waiting, a job not past its upload), rejected when the
 * device was already told to test the image or the action is over.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "db-hawkbit.h"
#include "engine.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "manager.h"
#include "sha-digest.h"
#include "util.h"

#define DOWNLOAD_ATTEMPTS_MAX 10u /* failed transfers of one artifact before its actions fail */
#define PROGRESS_STEPS 3u         /* stored, on the device, installed */

static void download_start(struct hawkbit *hb, struct hawkbit_download *dl);
static void action_artifact_ready(struct hawkbit_target *t);

static void action_close(struct hawkbit_target *t, bool success, const char *const *details) {
        struct hawkbit_action *a = t->action;

        a->state = HAWKBIT_ACTION_FINISHED;
        if (success)
                t->hb->stats.actions_succeeded++;
        else
                t->hb->stats.actions_failed++;
        (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_CLOSED,
                                      success ? HAWKBIT_FINISHED_SUCCESS : HAWKBIT_FINISHED_FAILURE, 0, 0, details);
        hawkbit_action_save(t);
}

static void action_fail(struct hawkbit_target *t, const char *fmt, ...) _printf_(2, 3);
static void action_fail(struct hawkbit_target *t, const char *fmt, ...) {
        char sentence[HAWKBIT_FEEDBACK_DETAILS_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sentence, sizeof(sentence), fmt, ap);
        va_end(ap);
        log_warning("hawkBit: %s: action %" PRIu64 " failed: %s", t->controller_id, t->action->id, sentence);
        const char *details[] = { "outcome: refused", sentence, NULL };
        action_close(t, false, details);
}

/* ---- downloads ---- */

static struct hawkbit_download *download_find(struct hawkbit *hb, const char *sha256) {
        for (size_t i = 0; i < hb->n_downloads; i++)
                if (streq(hb->downloads[i]->sha256, sha256))
                        return hb->downloads[i];
        return NULL;
}

static void download_free(struct hawkbit_download *dl) {
        if (!dl)
                return;
        if (dl->req)
                hawkbit_http_cancel(dl->hb_owner->http, dl->req);
        sd_event_source_disable_unref(dl->retry_timer);
        closep(&dl->fd);
        free(dl->url);
        free(dl->path);
        free(dl->filename);
        free(dl);
}

void hawkbit_downloads_free(struct hawkbit *hb) {
        for (size_t i = 0; i < hb->n_downloads; i++)
                download_free(hb->downloads[i]);
        free(hb->downloads);
        hb->downloads = NULL;
        hb->n_downloads = 0;
}

static struct hawkbit_download *download_new(struct hawkbit *hb, const char *sha256, const char *url, uint64_t size,
                                             const char *filename, const char *image_id) {
        struct hawkbit_download *dl = calloc(1, sizeof(*dl));
        struct hawkbit_download **grown;

        if (!dl)
                return NULL;
        dl->fd = -1;
        dl->hb_owner = hb;
        snprintf(dl->sha256, sizeof(dl->sha256), "%s", sha256);
        snprintf(dl->image_id, sizeof(dl->image_id), "%s", image_id ?: "");
        dl->url = strdup(url);
        dl->filename = filename ? strdup(filename) : NULL;
        dl->size = size;
        if (!dl->url || asprintf(&dl->path, "%s/%s.part", hb->dl_dir, sha256) < 0 ||
            !(grown = realloc(hb->downloads, (hb->n_downloads + 1) * sizeof(*grown)))) {
                download_free(dl);
                return NULL;
        }
        hb->downloads = grown;
        hb->downloads[hb->n_downloads++] = dl;
        return dl;
}

/* Every action waiting for this artifact. */
static void download_finished(struct hawkbit *hb, struct hawkbit_download *dl, const char *error) {
        struct hawkbit_target *t, *tmp;

        HASH_ITER (hh, hb->targets, t, tmp) {
                struct hawkbit_action *a = t->action;
                if (!a || a->state != HAWKBIT_ACTION_DOWNLOADING || !streq(a->sha256, dl->sha256))
                        continue;
                if (error)
                        action_fail(t, "%s", error);
                else {
                        snprintf(a->image_id, sizeof(a->image_id), "%s", dl->image_id);
                        action_artifact_ready(t);
                }
        }
}

/* Read in pieces: an artifact may be as large as image_max_size. */
static int sha256_file(int fd, char hex[static 65]) {
        uint8_t buf[65536], digest[SHA256_DIGEST_SIZE];
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        for (off_t off = 0;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                sha256_update(&ctx, (size_t) n, buf);
                off += n;
        }
        sha256_digest(&ctx, sizeof(digest), digest);
        hex_encode(digest, sizeof(digest), hex);
        return 0;
}

/* The whole file is here: check it, store it, tell the actions. */
static void download_complete(struct hawkbit *hb, struct hawkbit_download *dl) {
        struct manager *m = hb->manager;
        struct engine_error e = {};
        struct image *img = NULL;
        bool created = false;
        char hex[65];
        int r;

        r = sha256_file(dl->fd, hex);
        if (r < 0 || strcasecmp(hex, dl->sha256) != 0) {
                log_warning("hawkBit: artifact %s: %s; downloading it again", dl->sha256,
                            r < 0 ? strerror(-r) : "its sha256 does not match the server's hashes.sha256");
                (void) ftruncate(dl->fd, 0);
                dl->done = 0;
                hb->stats.download_errors++;
                if (++dl->failures >= DOWNLOAD_ATTEMPTS_MAX) {
                        download_finished(hb, dl, "The artifact's sha256 does not match hashes.sha256.");
                        return;
                }
                download_start(hb, dl);
                return;
        }
        r = engine_image_add(m, dl->fd, dl->filename, &img, &created, &e);
        (void) unlink(dl->path);
        closep(&dl->fd);
        if (r < 0) {
                (void) db_hawkbit_download_delete(m->db, dl->sha256);
                download_finished(hb, dl, e.message);
                /* Nothing kept: a later action downloads and judges it anew. */
                for (size_t i = 0; i < hb->n_downloads; i++)
                        if (hb->downloads[i] == dl) {
                                hb->downloads[i] = hb->downloads[--hb->n_downloads];
                                break;
                        }
                download_free(dl);
                return;
        }
        hb->stats.downloads++;
        snprintf(dl->image_id, sizeof(dl->image_id), "%s", img->id);
        (void) db_hawkbit_download_save(m->db, dl->sha256, dl->url, dl->size, dl->image_id);
        log_info("hawkBit: artifact %s stored as image %s%s", dl->sha256, img->id, created ? "" : " (known already)");
        download_finished(hb, dl, NULL);
}

static int on_download_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hawkbit_download *dl = userdata;

        dl->retry_timer = sd_event_source_disable_unref(dl->retry_timer);
        download_start(dl->hb_owner, dl);
        return 0;
}

static void on_download_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                             void *userdata);

static void download_retry_later(struct hawkbit *hb, struct hawkbit_download *dl) {
        uint64_t delay = HAWKBIT_RETRY_MIN_USEC;

        for (unsigned i = 1; i < dl->failures && delay < HAWKBIT_RETRY_MAX_USEC; i++)
                delay *= 2;
        delay = MIN(delay, HAWKBIT_RETRY_MAX_USEC);
        dl->retry_timer = sd_event_source_disable_unref(dl->retry_timer);
        if (sd_event_add_time(hb->manager->event, &dl->retry_timer, CLOCK_MONOTONIC, hawkbit_now(hb) + delay, 0,
                              on_download_retry, dl) < 0)
                download_finished(hb, dl, "Cannot schedule the download's retry.");
}

static void download_start(struct hawkbit *hb, struct hawkbit_download *dl) {
        struct stat st;
        int r;

        /* Stored already, or under way (an action and a retry timer can
         * both ask). */
        if (dl->req || dl->image_id[0])
                return;
        dl->retry_timer = sd_event_source_disable_unref(dl->retry_timer);
        if (dl->fd < 0) {
                dl->fd = open(dl->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (dl->fd < 0) {
                        r = -errno;
                        log_error_errno(r, "hawkBit: cannot open %s: %m", dl->path);
                        download_finished(hb, dl, "The gateway cannot write the artifact.");
                        return;
                }
        }
        if (fstat(dl->fd, &st) < 0 || (uint64_t) st.st_size > dl->size) {
                (void) ftruncate(dl->fd, 0);
                st.st_size = 0;
        }
        dl->done = (uint64_t) st.st_size;
        if (dl->done == dl->size && dl->size > 0) {
                download_complete(hb, dl);
                return;
        }
        dl->started_bytes = dl->done;
        struct hawkbit_http_call call = {
                .method = "GET",
                .url = dl->url,
                .auth_header = hawkbit_auth_for(hb, dl->url),
                .sink_fd = dl->fd,
                .range_from = dl->done,
                .sink_max = dl->size,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        if (dl->done > 0)
                log_info("hawkBit: artifact %s: resuming at byte %" PRIu64 " of %" PRIu64, dl->sha256, dl->done,
                         dl->size);
        r = hawkbit_http_start(hb->http, &call, on_download_done, dl, &dl->req);
        if (r < 0) {
                dl->failures++;
                download_retry_later(hb, dl);
        }
}

static void on_download_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                             void *userdata) {
        struct hawkbit_download *dl = userdata;
        struct hawkbit *hb = dl->hb_owner;
        struct stat st;

        dl->req = NULL;
        if (fstat(dl->fd, &st) == 0)
                dl->done = (uint64_t) st.st_size;
        if (dl->done > dl->started_bytes)
                hb->stats.download_bytes += dl->done - dl->started_bytes;
        if (error == 0 && status == 200 && dl->started_bytes > 0) {
                /* The server ignored the Range: what came is the whole
                 * file after the part we had.  Start over from 0. */
                (void) ftruncate(dl->fd, 0);
                dl->done = 0;
                error = -EIO;
        } else if (error == -EFBIG && dl->started_bytes > 0) {
                (void) ftruncate(dl->fd, 0);
                dl->done = 0;
        }
        if (error == 0 && (status == 200 || status == 206) && dl->done == dl->size) {
                download_complete(hb, dl);
                hawkbit_poll_kick(hb);
                return;
        }
        hb->stats.download_errors++;
        dl->failures++;
        log_info("hawkBit: artifact %s: download stopped at %" PRIu64 " of %" PRIu64 " bytes (%s, HTTP %ld), "
                 "attempt %u of %u",
                 dl->sha256, dl->done, dl->size, error < 0 ? strerror(-error) : "ok", status, dl->failures,
                 DOWNLOAD_ATTEMPTS_MAX);
        if (dl->failures >= DOWNLOAD_ATTEMPTS_MAX ||
            (status >= 400 && status < 500 && status != 408 && status != 429)) {
                char why[160];
                snprintf(why, sizeof(why), "The artifact could not be downloaded (%s, HTTP %ld).",
                         error < 0 ? strerror(-error) : "refused", status);
                dl->failures = 0;
                download_finished(hb, dl, why);
        } else
                download_retry_later(hb, dl);
        hawkbit_poll_kick(hb);
}

/* The action's artifact: stored already, downloading for another
 * action, or to be fetched now. */
static void action_fetch(struct hawkbit_target *t) {
        struct hawkbit *hb = t->hb;
        struct hawkbit_action *a = t->action;
        struct hawkbit_download *dl = download_find(hb, a->sha256);

        a->state = HAWKBIT_ACTION_DOWNLOADING;
        hawkbit_action_save(t);
        if (dl && dl->image_id[0]) {
                struct image *img = NULL;
                struct engine_error e = {};
                if (engine_image_find(hb->manager, "image", dl->image_id, &img, &e) == 0) {
                        snprintf(a->image_id, sizeof(a->image_id), "%s", dl->image_id);
                        action_artifact_ready(t);
                        return;
                }
                /* Deleted from the store since: download it again. */
                dl->image_id[0] = 0;
        }
        if (!dl) {
                dl = download_new(hb, a->sha256, a->url, a->size, a->filename, NULL);
                if (!dl) {
                        action_fail(t, "The gateway is out of memory.");
                        return;
                }
        }
        (void) db_hawkbit_download_save(hb->manager->db, dl->sha256, dl->url, dl->size, "");
        download_start(hb, dl);
}

/* ---- jobs ---- */

static bool action_may_run(const struct hawkbit_action *a) {
        return a->update != HAWKBIT_SKIP && a->window_open;
}

/* The action's job: stage_only while the window is closed (the image
 * goes to the device's secondary slot now; engine_job_activate() when
 * the window opens), else the whole update. */
static void action_run(struct hawkbit_target *t, bool stage_only) {
        struct hawkbit *hb = t->hb;
        struct hawkbit_action *a = t->action;
        struct engine_error e = {};
        _cleanup_free_ struct job **jobs = NULL;
        char device[24];

        snprintf(device, sizeof(device), "%" PRIu64, t->device_id);
        const char *devices[] = { device };
        struct engine_push push = {
                .image = a->image_id,
                .devices = devices,
                .n_devices = 1,
                /* attempt: one try, the device's state decides; forced:
                 * every attempt [jobs] allows. */
                .has_attempts = a->update == HAWKBIT_ATTEMPT,
                .attempts = 1,
                .stage_only = stage_only,
        };
        int r = engine_push(hb->manager, &push, &jobs, &e);
        if (r < 0) {
                action_fail(t, "%s", e.message);
                return;
        }
        a->job_id = jobs[0]->id;
        a->state = stage_only ? HAWKBIT_ACTION_WAITING : HAWKBIT_ACTION_RUNNING;
        hawkbit_action_save(t);
        log_info("hawkBit: %s: action %" PRIu64 " %s job %" PRIu64, t->controller_id, a->id,
                 stage_only ? "stages its image on the device as" : "runs as", a->job_id);
}

/* The window opened: a staged job is activated, one still staging is
 * activated when it is staged (hawkbit_deploy_job_event()), and without
 * a usable job the whole update starts. */
static void action_go(struct hawkbit_target *t) {
        struct hawkbit *hb = t->hb;
        struct hawkbit_action *a = t->action;
        struct job *j = a->job_id ? manager_find_job(hb->manager, a->job_id) : NULL;
        struct engine_error e = {};

        if (!j || (job_is_finished(j) && j->state != JOB_SUCCEEDED)) {
                action_run(t, false);
                return;
        }
        a->state = HAWKBIT_ACTION_RUNNING;
        hawkbit_action_save(t);
        if (j->state == JOB_STAGED) {
                if (engine_job_activate(hb->manager, j, &e) < 0)
                        action_fail(t, "%s", e.message);
                else
                        log_info("hawkBit: %s: action %" PRIu64 ": job %" PRIu64 " activated", t->controller_id, a->id,
                                 j->id);
        } else if (job_is_finished(j))
                hawkbit_deploy_job_event(hb, j);
}

static void action_artifact_ready(struct hawkbit_target *t) {
        struct hawkbit_action *a = t->action;
        char line[128];

        snprintf(line, sizeof(line), "The artifact is stored as image %s.", a->image_id);
        const char *details[] = { line, NULL };
        (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_PROCEEDING, HAWKBIT_FINISHED_NONE, 1,
                                      PROGRESS_STEPS, details);
        if (action_may_run(a)) {
                action_run(t, false);
                return;
        }
        a->state = HAWKBIT_ACTION_WAITING;
        /* Window closed: staged on the device now, activated when it
         * opens.  update: skip with the window open is a wish not to
         * install at all yet: nothing goes to the device. */
        if (!a->window_open && !a->job_id)
                action_run(t, true);
        if (!t->action || t->action->state == HAWKBIT_ACTION_FINISHED)
                return; /* the push was refused: closed already */
        if (!a->scheduled_sent) {
                const char *why[] = { a->window_open ? "Downloaded; the server asks not to install yet (update: skip)."
                                                     : "Downloaded; waiting for the maintenance window.",
                                      NULL };
                (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_SCHEDULED, HAWKBIT_FINISHED_NONE, 0, 0,
                                              why);
                a->scheduled_sent = true;
        }
        hawkbit_action_save(t);
}

void hawkbit_deploy_job_event(struct hawkbit *hb, struct job *j) {
        struct hawkbit_target *t = hawkbit_target_find(hb, j->device_id);
        struct hawkbit_action *a = t ? t->action : NULL;
        char line[HAWKBIT_FEEDBACK_DETAILS_MAX], outcome[64];

        if (!a || a->job_id != j->id || (a->state != HAWKBIT_ACTION_RUNNING && a->state != HAWKBIT_ACTION_WAITING))
                return;
        if (a->state == HAWKBIT_ACTION_RUNNING && j->state == JOB_STAGED) {
                /* The window opened while it was still uploading. */
                struct engine_error e = {};
                if (engine_job_activate(hb->manager, j, &e) < 0)
                        action_fail(t, "%s", e.message);
                return;
        }
        if (a->state == HAWKBIT_ACTION_WAITING && !job_is_finished(j))
                return; /* staging; the window decides */
        if (!job_is_finished(j)) {
                if (!a->upload_reported && j->has_step && j->step >= SMP_UPDATE_STEP_MARK) {
                        a->upload_reported = true;
                        const char *details[] = { "The device has the image; it is told to test it.", NULL };
                        (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_PROCEEDING, HAWKBIT_FINISHED_NONE,
                                                      2, PROGRESS_STEPS, details);
                }
                return;
        }
        bool success = j->state == JOB_SUCCEEDED && j->has_outcome &&
                       (j->outcome == SMP_UPDATE_OUTCOME_UPDATED || j->outcome == SMP_UPDATE_OUTCOME_UP_TO_DATE);
        const char *name = j->has_outcome && j->outcome != SMP_UPDATE_OUTCOME_NONE
                                   ? smp_update_outcome_to_string(j->outcome)
                           : j->state == JOB_CANCELLED ? "cancelled"
                                                       : "refused";
        snprintf(outcome, sizeof(outcome), "outcome: %s", name);
        snprintf(line, sizeof(line), "Job %" PRIu64 " %s: %s", j->id, job_state_to_string(j->state),
                 j->error  ? j->error
                 : success ? "the device runs the image."
                           : "no error reported.");
        const char *details[] = { outcome, line, NULL };
        log_info("hawkBit: %s: action %" PRIu64 " closed, %s", t->controller_id, a->id, outcome);
        action_close(t, success, details);
}

/* ---- deploymentBase ---- */

static int parse_type(json_t *v, enum hawkbit_type *ret) {
        int r = hawkbit_type_from_string(json_string_value(v) ?: "");
        if (r < 0)
                return r;
        *ret = (enum hawkbit_type) r;
        return 0;
}

static uint64_t json_id(json_t *v) {
        if (json_is_integer(v) && json_integer_value(v) > 0)
                return (uint64_t) json_integer_value(v);
        const char *s = json_string_value(v);
        uint64_t n = 0;
        if (!s || !*s)
                return 0;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
                        return 0;
                n = n * 10 + (uint64_t) (*s - '0');
        }
        return n;
}

static bool sha256_hex(const char *s) {
        if (!s || strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!strchr("0123456789abcdefABCDEF", *s))
                        return false;
        return true;
}

static void on_base_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                         void *userdata) {
        struct hawkbit_target *t = userdata;
        struct hawkbit *hb = t->hb;
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *root = NULL;
        enum hawkbit_type download = HAWKBIT_FORCED, update = HAWKBIT_FORCED;
        const char *problem = NULL, *url = NULL, *sha = NULL, *filename = NULL;
        uint64_t size = 0;

        t->base_get = NULL;
        hawkbit_poll_kick(hb);
        /* json_is_object() is a macro that evaluates its argument twice:
         * parse first. */
        if (error == 0 && status == 200)
                root = json_loadb(body, len, 0, &jerr);
        if (!json_is_object(root)) {
                /* The next poll asks again. */
                log_info("hawkBit: %s: deploymentBase not read (%s, HTTP %ld)", t->controller_id,
                         error < 0 ? strerror(-error) : "bad answer", status);
                return;
        }
        uint64_t id = json_id(json_object_get(root, "id"));
        json_t *dep = json_object_get(root, "deployment");
        if (id == 0) {
                log_info("hawkBit: %s: deploymentBase without an id", t->controller_id);
                return;
        }
        if (parse_type(json_object_get(dep, "download"), &download) < 0 ||
            parse_type(json_object_get(dep, "update"), &update) < 0)
                problem = "deployment.download and deployment.update must be skip, attempt or forced.";
        const char *window = json_string_value(json_object_get(dep, "maintenanceWindow"));
        bool window_open = !window || !streq(window, "unavailable");

        json_t *chunks = json_object_get(dep, "chunks"), *chunk, *artifact, *found = NULL;
        size_t i, k, n_artifacts = 0;
        json_array_foreach(chunks, i, chunk) {
                json_array_foreach(json_object_get(chunk, "artifacts"), k, artifact) {
                        n_artifacts++;
                        found = artifact;
                }
        }
        if (!problem && n_artifacts != 1)
                problem = n_artifacts == 0 ? "The distribution set has no artifact."
                                           : "The distribution set has more than one artifact; smpgw installs one "
                                             "MCUboot image per action.";
        if (!problem) {
                json_t *links = json_object_get(found, "_links");
                url = json_string_value(json_object_get(json_object_get(links, "download-http"), "href"));
                if (!url)
                        url = json_string_value(json_object_get(json_object_get(links, "download"), "href"));
                sha = json_string_value(json_object_get(json_object_get(found, "hashes"), "sha256"));
                filename = json_string_value(json_object_get(found, "filename"));
                json_t *sz = json_object_get(found, "size");
                size = json_is_integer(sz) && json_integer_value(sz) > 0 ? (uint64_t) json_integer_value(sz) : 0;
                if (!url || strlen(url) >= HAWKBIT_URL_MAX ||
                    (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
                        problem = "The artifact has no usable _links.download-http.";
                else if (!sha256_hex(sha))
                        problem = "The artifact has no hashes.sha256.";
                else if (size == 0 || size > hb->manager->config->image_max_size)
                        problem = "The artifact's size is missing or larger than [images] max_size.";
                if (filename && engine_image_name_check(filename, &(struct engine_error) {}) < 0)
                        filename = NULL;
        }

        struct hawkbit_action *a = t->action;
        if (a && a->id == id && a->state == HAWKBIT_ACTION_WAITING) {
                /* Asked again while waiting: the window or the type may have changed. */
                a->window_open = window_open;
                a->update = update;
                if (!a->image_id[0] && download != HAWKBIT_SKIP && !problem)
                        action_fetch(t);
                else if (a->image_id[0] && action_may_run(a)) {
                        const char *details[] = { "The maintenance window is open: installing.", NULL };
                        (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_RESUMED, HAWKBIT_FINISHED_NONE, 0,
                                                      0, details);
                        action_go(t);
                } else
                        hawkbit_action_save(t);
                return;
        }
        if (a && a->id == id)
                return; /* downloading, running or finished: nothing new */
        if (a && a->state == HAWKBIT_ACTION_RUNNING)
                return; /* the job of the previous action finishes first */
        if (a)
                hawkbit_action_free(a);
        a = t->action = calloc(1, sizeof(*a));
        if (!a)
                return;
        hb->stats.actions++;
        a->id = id;
        a->update = update;
        a->window_open = window_open;
        a->size = size;
        snprintf(a->sha256, sizeof(a->sha256), "%s", sha ?: "");
        for (char *p = a->sha256; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                        *p = (char) (*p - 'A' + 'a');
        a->url = strdup(url ?: "");
        a->filename = filename ? strdup(filename) : NULL;
        log_info("hawkBit: %s: action %" PRIu64 " (download %s, update %s, window %s)", t->controller_id, id,
                 hawkbit_type_to_string(download), hawkbit_type_to_string(update),
                 window_open ? "available" : "unavailable");
        if (problem || !a->url)
                action_fail(t, "%s", problem ?: "The gateway is out of memory.");
        else if (download == HAWKBIT_SKIP) {
                a->state = HAWKBIT_ACTION_WAITING;
                const char *details[] = { "The server asks not to download yet (download: skip).", NULL };
                (void) hawkbit_feedback_queue(t, false, a->id, HAWKBIT_EXEC_SCHEDULED, HAWKBIT_FINISHED_NONE, 0, 0,
                                              details);
                a->scheduled_sent = true;
                hawkbit_action_save(t);
        } else
                action_fetch(t);
}

void hawkbit_deployment_seen(struct hawkbit_target *t, const char *href) {
        struct hawkbit *hb = t->hb;
        struct hawkbit_action *a = t->action;
        uint64_t id = hawkbit_href_id(href, "deploymentBase");

        if (t->base_get)
                return;
        /* Known and under way: nothing to read.  A waiting action is read
         * at every poll, for its maintenance window. */
        if (a && a->id == id && a->state != HAWKBIT_ACTION_WAITING)
                return;
        if (a && a->id != id && a->state == HAWKBIT_ACTION_RUNNING)
                return;
        struct hawkbit_http_call call = {
                .method = "GET",
                .url = href,
                .auth_header = hawkbit_auth_for(hb, href),
                .sink_fd = -1,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        (void) hawkbit_http_start(hb->http, &call, on_base_done, t, &t->base_get);
}

/* ---- cancelAction ---- */

static void on_cancel_done(struct hawkbit_request *req, int error, long status, const char *body, size_t len,
                           void *userdata) {
        struct hawkbit_target *t = userdata;
        struct hawkbit *hb = t->hb;
        json_error_t jerr;
        json_t *root = NULL;

        t->cancel_get = NULL;
        hawkbit_poll_kick(hb);
        /* json_is_object() is a macro that evaluates its argument twice:
         * parse first. */
        if (error == 0 && status == 200)
                root = json_loadb(body, len, 0, &jerr);
        if (!json_is_object(root)) {
                json_decref(root);
                return;
        }
        uint64_t id = json_id(json_object_get(root, "id"));
        uint64_t stop = json_id(json_object_get(json_object_get(root, "cancelAction"), "stopId")) ?: id;
        json_decref(root);
        if (id == 0 || id == t->cancel_answered)
                return;

        struct hawkbit_action *a = t->action;
        const char *why;
        bool cancelled = true;
        hb->stats.cancels++;
        if (!a || a->id != stop)
                why = "Nothing runs for this action on the gateway.";
        else if (a->state == HAWKBIT_ACTION_DOWNLOADING || (a->state == HAWKBIT_ACTION_WAITING && !a->job_id))
                why = "Cancelled before the device was touched.";
        else if (a->state == HAWKBIT_ACTION_FINISHED) {
                cancelled = false;
                why = "The action has finished already.";
        } else {
                struct job *j = manager_find_job(hb->manager, a->job_id);
                struct engine_error e = {};
                if (!j || job_is_finished(j)) {
                        cancelled = false;
                        why = "The action's job has finished already.";
                } else if (a->state == HAWKBIT_ACTION_WAITING && j->state != JOB_STAGED && j->state != JOB_QUEUED &&
                           j->state != JOB_RUNNING && j->state != JOB_RETRY_WAIT) {
                        cancelled = false;
                        why = "The action's job is past staging.";
                } else if (j->state == JOB_REBOOTING || (j->has_step && j->step >= SMP_UPDATE_STEP_MARK)) {
                        /* Past the upload: the device was told to test the
                         * image (or is rebooting into it, holding no slot). */
                        cancelled = false;
                        why = "The device was told to test the new image; it cannot be cancelled halfway.";
                } else if (engine_job_cancel(hb->manager, j, &e) < 0) {
                        cancelled = false;
                        why = e.message;
                } else
                        why = "The job was cancelled before the device was told to test the image.";
        }
        if (cancelled && a && a->id == stop) {
                /* No closing deploymentBase feedback: the cancel's answers for it. */
                a->state = HAWKBIT_ACTION_FINISHED;
                hawkbit_action_save(t);
        }
        log_info("hawkBit: %s: cancel %" PRIu64 " of action %" PRIu64 ": %s: %s", t->controller_id, id, stop,
                 cancelled ? "canceled" : "rejected", why);
        t->cancel_answered = id;
        const char *details[] = { why, NULL };
        (void) hawkbit_feedback_queue(t, true, id, cancelled ? HAWKBIT_EXEC_CANCELED : HAWKBIT_EXEC_REJECTED,
                                      cancelled ? HAWKBIT_FINISHED_SUCCESS : HAWKBIT_FINISHED_NONE, 0, 0, details);
}

void hawkbit_cancel_seen(struct hawkbit_target *t, const char *href) {
        struct hawkbit *hb = t->hb;
        uint64_t id = hawkbit_href_id(href, "cancelAction");

        if (t->cancel_get || (id != 0 && id == t->cancel_answered))
                return;
        struct hawkbit_http_call call = {
                .method = "GET",
                .url = href,
                .auth_header = hawkbit_auth_for(hb, href),
                .sink_fd = -1,
                .timeout_usec = hb->manager->config->hawkbit_timeout_usec,
        };
        (void) hawkbit_http_start(hb->http, &call, on_cancel_done, t, &t->cancel_get);
}

/* ---- restart ---- */

static int load_download(const char *sha256, const char *url, uint64_t size, const char *image_id, void *userdata) {
        struct hawkbit *hb = userdata;
        struct hawkbit_download *dl = download_find(hb, sha256);
        if (dl)
                return 0;
        dl = download_new(hb, sha256, url, size, NULL, image_id);
        return dl ? 0 : -ENOMEM;
}

void hawkbit_deploy_resume(struct hawkbit *hb) {
        struct hawkbit_target *t, *tmp;
        int r;

        r = db_hawkbit_downloads_load(hb->manager->db, load_download, hb);
        if (r < 0)
                log_warning_errno(r, "hawkBit: cannot load the downloads: %m");
        HASH_ITER (hh, hb->targets, t, tmp) {
                struct hawkbit_action *a = t->action;
                if (!a)
                        continue;
                if (a->state == HAWKBIT_ACTION_DOWNLOADING)
                        action_fetch(t);
                else if (a->state == HAWKBIT_ACTION_RUNNING) {
                        struct job *j = manager_find_job(hb->manager, a->job_id);
                        if (!j)
                                action_fail(t, "The action's job %" PRIu64 " is gone.", a->job_id);
                        else if (job_is_finished(j) || j->state == JOB_STAGED)
                                hawkbit_deploy_job_event(hb, j);
                }
        }
}
