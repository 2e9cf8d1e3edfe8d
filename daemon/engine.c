/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine: the calls every front end makes (engine.h), with their
 * checks and their sentences written once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "db.h"
#include "distribution.h"
#include "engine.h"
#include "image-boards.h"
#include "log.h"
#include "manager.h"
#include "os-info.h"
#include "rollout-executor.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-parse.h"
#include "util.h"

_printf_(5, 6) static int fail(struct engine_error *e, int error, const char *field, ssize_t index,
                                const char *fmt, ...) {
        va_list ap;

        e->error = error;
        e->field = field;
        e->index = index;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return error;
}

static void error_reset(struct engine_error *e) {
        *e = (struct engine_error) { .index = -1 };
}

/* ---- devices ---- */

struct device *engine_device_lookup(struct manager *m, const char *spec) {
        uint64_t id;

        if (!spec || !*spec)
                return NULL;
        /* No connection string is all digits (every one has a scheme and
         * a colon), so digits are an id. */
        if (smp_parse_uint(spec, 0, UINT64_MAX, &id) >= 0)
                return manager_find_device(m, id);
        return manager_find_device_by_conn(m, spec);
}

int engine_device_find(struct manager *m, const char *spec, struct device **ret, struct engine_error *e) {
        struct device *d = engine_device_lookup(m, spec);

        error_reset(e);
        if (!d)
                return fail(e, -ENOENT, NULL, -1, "No device '%s'.", spec ?: "");
        *ret = d;
        return 0;
}

int engine_device_add(struct manager *m, const char *conn, const char *source, struct device **ret,
                      bool *ret_created, struct engine_error *e) {
        _cleanup_free_ char *why = NULL;
        struct device *d = NULL;
        int r;

        error_reset(e);
        r = manager_add_device(m, conn, source, &d, &why);
        if (why)
                snprintf(e->reason, sizeof(e->reason), "%s", why);
        switch (r) {
        case 0:
        case -EEXIST:
                /* Adding is idempotent: the known device, as it is. */
                *ret = d;
                *ret_created = r == 0;
                return 0;
        case -EINVAL:
                return fail(e, r, "conn", -1, "Bad connection string: %s.", why ?: "not valid");
        case -ENOENT:
                return fail(e, -EPROTONOSUPPORT, "conn", -1, "No transport for its scheme: %s.",
                            why ?: "no plugin handles it");
        case -E2BIG:
                return fail(e, r, NULL, -1, "The inventory is full ([devices] max_count = %u); forget a device first.",
                            m->config->max_devices);
        default:
                return fail(e, r, NULL, -1, "Adding device '%s' failed: %s.", conn, strerror(-r));
        }
}

int engine_device_forget(struct manager *m, struct device *d, struct engine_error *e) {
        const struct job *j = d->unfinished_job;
        uint64_t id = d->id;
        int r;

        error_reset(e);
        if (j)
                return fail(e, -EBUSY, NULL, -1, "Device %" PRIu64 " has an unfinished job (%" PRIu64
                            "); cancel it first.", id, j->id);
        /* Its mesh targets name it in their connection strings. */
        size_t targets = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                targets += m->devices[i]->mesh && m->devices[i]->mesh->distributor_id == id;
        if (targets > 0)
                return fail(e, -EBUSY, NULL, -1,
                            "Device %" PRIu64 " is the Distributor of %zu mesh targets; "
                            "forget them first.",
                            id, targets);
        if (distribution_uses_device(m, d))
                return fail(e, -EBUSY, NULL, -1,
                            "Device %" PRIu64 " is in an unfinished distribution; cancel it "
                            "first.",
                            id);
        r = manager_forget_device(m, d);
        /* A job's end is announced before its session is torn down. */
        if (r == -EBUSY)
                return fail(e, r, NULL, -1, "Device %" PRIu64 " is busy; try again later.", id);
        if (r < 0)
                return fail(e, r, NULL, -1, "Forgetting device %" PRIu64 " failed: %s.", id, strerror(-r));
        /* A mesh target that named it as its direct device has no direct
         * link any more. */
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *t = m->devices[i];
                if (t->mesh && t->mesh->direct_device_id == id)
                        (void) engine_mesh_target_set_direct(m, t, NULL, e);
        }
        error_reset(e);
        return 0;
}

static int name_refused(struct engine_error *e) {
        return fail(e, -EINVAL, "name", -1, "'name' must be at most %d bytes of UTF-8 without control characters.",
                    DEVICE_NAME_MAX);
}

int engine_device_rename(struct manager *m, struct device *d, const char *name, struct engine_error *e) {
        int r;

        error_reset(e);
        r = device_set_name(d, name);
        if (r == -EINVAL)
                return name_refused(e);
        if (r < 0)
                return fail(e, r, NULL, -1, "Renaming device %" PRIu64 " failed: %s.", d->id, strerror(-r));
        return 0;
}

int engine_device_patch(struct manager *m, struct device *d, const struct engine_device_patch *p,
                        struct engine_error *e) {
        int r;

        error_reset(e);
        /* Every check before any change, so that a refused field leaves
         * the others as they were (the setters would save and announce
         * each at once).  No field's check depends on another field of
         * the same request (a role needs a device that is no mesh target,
         * a direct device one that is, whatever either field says), so
         * this refuses exactly what setting them one by one would. */
        if (p->set_name && p->name && *p->name && device_name_check(p->name) < 0)
                return name_refused(e);
        if (p->set_role && (r = engine_device_role_check(m, d, p->role, e)) < 0)
                return r;
        if (p->set_direct && (r = engine_mesh_target_direct_check(m, d, p->direct, e)) < 0)
                return r;

        if (p->set_name && (r = engine_device_rename(m, d, p->name, e)) < 0)
                return r;
        if (p->set_role && (r = engine_device_set_role(m, d, p->role, e)) < 0)
                return r;
        if (p->set_direct && (r = engine_mesh_target_set_direct(m, d, p->direct, e)) < 0)
                return r;
        return 0;
}

int engine_device_set_labels(struct manager *m, struct device *d, const char *const *labels, size_t n,
                             struct engine_error *e) {
        size_t index = 0;
        int r;

        error_reset(e);
        r = device_set_labels(d, labels, n, &index);
        if (r == -EINVAL)
                return fail(e, r, "labels", (ssize_t) index,
                            "'labels' item %zu is not a label: [a-z0-9][a-z0-9._-]{0,31}.", index);
        if (r == -E2BIG)
                return fail(e, -EINVAL, "labels", -1, "'labels' holds more than %u distinct labels.",
                            DEVICE_LABELS_MAX);
        if (r < 0)
                return fail(e, r, NULL, -1, "Labelling device %" PRIu64 " failed: %s.", d->id, strerror(-r));
        return 0;
}

int engine_device_probe(struct manager *m, struct device *d, struct engine_error *e) {
        int r;

        error_reset(e);
        r = device_probe(d);
        if (r == -EMEDIUMTYPE)
                return fail(e, r, NULL, -1,
                            "Device %" PRIu64 " is a mesh target: it has no link to probe; its Distributor "
                            "reports on it.",
                            d->id);
        if (r == -EBUSY)
                return fail(e, r, NULL, -1, "Device %" PRIu64 " is busy: a probe or a job is running on it.", d->id);
        if (r < 0)
                return fail(e, r, NULL, -1, "Probing device %" PRIu64 " failed: %s.", d->id, strerror(-r));
        return 0;
}

int engine_device_history(struct manager *m, struct device *d, unsigned limit,
                          int (*fn)(const struct db_history_row *row, void *userdata), void *userdata,
                          struct engine_error *e) {
        int r;

        error_reset(e);
        r = db_history_list(m->db, d->id, 0, limit, fn, userdata);
        if (r < 0)
                return fail(e, -EIO, NULL, -1, "Reading the history of device %" PRIu64 " failed: %s.", d->id,
                            strerror(-r));
        return 0;
}

int engine_scan(struct manager *m, struct engine_error *e) {
        int r;

        error_reset(e);
        r = manager_scan(m);
        if (r == -ENOTCONN)
                return fail(e, r, NULL, -1, "Discovery is disabled in the configuration ([discovery] enabled=no).");
        /* A round already running is what the caller asked for. */
        if (r < 0 && r != -EALREADY)
                return fail(e, r, NULL, -1, "Cannot start a discovery round: %s.", strerror(-r));
        return 0;
}

/* ---- images ---- */

int engine_image_find(struct manager *m, const char *field, const char *ref, struct image **ret,
                      struct engine_error *e) {
        int r;

        error_reset(e);
        r = manager_lookup_image(m, ref, ret);
        switch (r) {
        case 0:
                return 0;
        case -EINVAL:
                return fail(e, r, field, -1,
                            "'%s' must be an image id (64 hex digits) or a unique prefix of at least %d of them.",
                            field, IMAGE_ID_PREFIX_MIN);
        case -ENOTUNIQ:
                return fail(e, r, field, -1, "Image prefix '%s' fits more than one image; give more of its digits.",
                            ref);
        default:
                return fail(e, -ENOENT, field, -1, "No image '%s'.", ref);
        }
}

static bool image_name_is_valid(const char *name) {
        if (strlen(name) > IMAGE_NAME_MAX)
                return false;
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

int engine_image_name_check(const char *name, struct engine_error *e) {
        error_reset(e);
        if (name && !image_name_is_valid(name))
                return fail(e, -EINVAL, "name", -1, "'name' must be at most %u bytes without control characters.",
                            IMAGE_NAME_MAX);
        return 0;
}

int engine_image_add(struct manager *m, int fd, const char *name, struct image **ret, bool *ret_created,
                     struct engine_error *e) {
        _cleanup_free_ char *why = NULL;
        int r;

        r = engine_image_name_check(name, e);
        if (r < 0)
                return r;
        r = image_store_add_fd(m, fd, name && *name ? name : NULL, ret, ret_created, &why);
        if (why)
                snprintf(e->reason, sizeof(e->reason), "%s", why);
        switch (r) {
        case 0:
                return 0;
        case -EBADMSG:
        case -EKEYREJECTED:
                return fail(e, r, NULL, -1, "The image was refused: %s.",
                            why ?: r == -EBADMSG ? "not a valid MCUboot image" : "no configured key verifies its signature");
        case -EFBIG:
                return fail(e, r, NULL, -1, "The image is larger than the limit of %" PRIu64 " bytes ([images] max_size).",
                            m->config->image_max_size);
        case -E2BIG:
                return fail(e, r, NULL, -1, "The image store is full ([images] max_count = %u); delete an image first.",
                            m->config->max_images);
        default:
                /* The store's own trouble, not the client's. */
                return fail(e, r, NULL, -1, "Storing the image failed: %s.", why ?: strerror(-r));
        }
}

int engine_image_boards_check(const char *const *boards, size_t n, struct engine_error *e) {
        size_t index = 0;
        int r;

        error_reset(e);
        r = image_boards_check(boards, n, &index);
        if (r == -EINVAL)
                return fail(e, r, "boards", (ssize_t) index,
                            "'boards' item %zu is not a board name: 1 to %u characters of [A-Za-z0-9_./-], "
                            "with at most one '@' before a revision.",
                            index, IMAGE_BOARD_NAME_MAX);
        if (r == -E2BIG)
                return fail(e, -EINVAL, "boards", -1, "'boards' holds more than %u distinct boards.", IMAGE_BOARDS_MAX);
        return r;
}

/* The image's boards changed: the jobs of it that have not started are
 * judged again as a push would be now.  One for a device that reports
 * another board ends failed (incompatible-board), unless it was pushed
 * with force; a device that tells no board is not refused, as at the
 * push.  Rollouts judge their own members (and jobs) first. */
static void image_boards_recheck_jobs(struct manager *m, const struct image *img) {
        _cleanup_free_ char *declared = NULL;
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n_ids = 0;

        rollout_executor_image_boards_changed(m->rollouts, img);
        if (img->n_boards == 0)
                return;
        declared = image_boards_join((const char *const *) img->boards, img->n_boards);
        /* By id: a job's end may prune finished jobs from m->jobs. */
        ids = calloc(MAX(m->n_jobs, (size_t) 1), sizeof(*ids));
        if (!ids) {
                log_error("Out of memory judging the jobs of image %s again; they keep their boards' check at push",
                          img->id);
                return;
        }
        for (size_t i = 0; i < m->n_jobs; i++) {
                const struct job *j = m->jobs[i];
                if (streq(j->image_id, img->id) && !j->rollout_id && !j->forced && !job_has_started(j) && j->device)
                        ids[n_ids++] = j->id;
        }
        for (size_t i = 0; i < n_ids; i++) {
                struct job *j = manager_find_job(m, ids[i]);
                struct os_info_fields os;

                if (!j || !j->device || os_info_parse(j->device->os_info, &os) < 0 ||
                    image_boards_accept((const char *const *) img->boards, img->n_boards, os.board))
                        continue;
                (void) job_fail_unstarted(j,
                                          "incompatible-board: device %" PRIu64 " reports board '%s', and image %s "
                                          "is now built for %s",
                                          j->device_id, os.board, img->id, declared ?: "other boards");
        }
}

int engine_image_set_boards(struct manager *m, struct image *img, const char *const *boards, size_t n,
                            struct engine_error *e) {
        int r;

        r = engine_image_boards_check(boards, n, e);
        if (r < 0)
                return r;
        r = image_store_set_boards(m, img, boards, n, NULL);
        if (r < 0)
                return fail(e, r, NULL, -1, "Declaring the boards of image %s failed: %s.", img->id, strerror(-r));
        if (r > 0)
                image_boards_recheck_jobs(m, img);
        return 0;
}

int engine_image_mesh_composition_check(int64_t hash, int64_t elements, struct engine_error *e) {
        error_reset(e);
        if (hash < 0 || hash > UINT32_MAX)
                return fail(e, -EINVAL, "mesh_composition", -1,
                            "'mesh_composition': the hash must be 0 to 4294967295 (a u32, as the shell's "
                            "'Composition data hash: 0x...' prints it).");
        if (elements < 1 || elements > UINT16_MAX)
                return fail(e, -EINVAL, "mesh_composition", -1,
                            "'mesh_composition': the element count must be 1 to 65535.");
        return 0;
}

int engine_image_set_mesh_composition(struct manager *m, struct image *img, const struct smp_mesh_composition *comp,
                                      struct engine_error *e) {
        int r;

        error_reset(e);
        if (comp) {
                r = engine_image_mesh_composition_check(comp->hash, comp->elements, e);
                if (r < 0)
                        return r;
        }
        r = image_store_set_mesh_composition(m, img, comp);
        if (r < 0)
                return fail(e, r, NULL, -1, "Declaring the mesh composition of image %s failed: %s.", img->id,
                            strerror(-r));
        return 0;
}

int engine_image_add_with_boards(struct manager *m, int fd, const char *name, bool set_boards,
                                 const char *const *boards, size_t n_boards, struct image **ret, bool *ret_created,
                                 struct engine_error *e) {
        struct image *img;
        int r;

        if (set_boards) {
                r = engine_image_boards_check(boards, n_boards, e);
                if (r < 0)
                        return r;
        }
        r = engine_image_add(m, fd, name, &img, ret_created, e);
        if (r < 0)
                return r;
        if (set_boards) {
                r = engine_image_set_boards(m, img, boards, n_boards, e);
                if (r < 0)
                        return r;
        }
        if (ret)
                *ret = img;
        return 0;
}

int engine_image_delete(struct manager *m, struct image *img, struct engine_error *e) {
        char id[sizeof(img->id)];
        int r;

        error_reset(e);
        memcpy(id, img->id, sizeof(id));
        r = image_store_remove(m, img);
        if (r == -EBUSY)
                return fail(e, r, NULL, -1, "Image %s is used by an unfinished job; cancel the job first.", id);
        if (r < 0)
                return fail(e, r, NULL, -1, "Deleting image %s failed: %s.", id, strerror(-r));
        return 0;
}

/* ---- push ---- */

/* What a refusal says of the i-th device: which item of the client's list
 * (" (devices[18446744073709551615])" at the longest). */
#define ITEM_MAX 40
static const char *item(const struct engine_push *req, size_t i, char buf[static ITEM_MAX]) {
        if (!req->devices_listed)
                return "";
        snprintf(buf, ITEM_MAX, " (devices[%zu])", i);
        return buf;
}

static int push_options(struct manager *m, const struct engine_push *req, struct job_options *ret,
                        struct engine_error *e) {
        struct job_options opts = { .mode = m->config->job_mode };

        if (req->mode) {
                int mode = smp_update_mode_from_string(req->mode);
                if (mode < 0)
                        return fail(e, -EINVAL, "mode", -1,
                                    "'mode' must be one of test-and-confirm, confirm-only, test-only, upload-only.");
                opts.mode = (enum smp_update_mode) mode;
        }
        if (req->has_attempts) {
                if (req->attempts < JOB_ATTEMPTS_MIN || req->attempts > JOB_ATTEMPTS_MAX)
                        return fail(e, -EINVAL, "attempts", -1, "'attempts' must be an integer from %u to %u.",
                                    JOB_ATTEMPTS_MIN, JOB_ATTEMPTS_MAX);
                opts.max_attempts = (unsigned) req->attempts;
        }
        opts.stage_only = req->stage_only;
        opts.force = req->force;
        opts.rollout_id = req->rollout_id;
        opts.priority = req->priority;
        opts.not_before_usec = req->not_before_usec;
        *ret = opts;
        return 0;
}

int engine_push_check_options(struct manager *m, const struct engine_push *req, struct engine_error *e) {
        struct job_options opts;

        error_reset(e);
        return push_options(m, req, &opts, e);
}

struct target {
        struct device *device;
        size_t index;                  /* in req->devices */
};

static int target_cmp(const void *a, const void *b) {
        const struct target *x = a, *y = b;
        if (x->device != y->device)
                return x->device->id < y->device->id ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorted by device, a device named twice sits next to itself; the
 * first such pair in the client's order is reported. */
static int push_check_repeats(struct target *targets, size_t n, struct engine_error *e) {
        const struct target *repeat = NULL;

        qsort(targets, n, sizeof(*targets), target_cmp);
        for (size_t i = 1; i < n; i++)
                if (targets[i].device == targets[i - 1].device && (!repeat || targets[i].index < repeat->index))
                        repeat = &targets[i];
        if (!repeat)
                return 0;
        return fail(e, -EINVAL, "devices", (ssize_t) repeat->index, "'devices' names device %" PRIu64
                    " twice (devices[%zu] and devices[%zu]).", repeat->device->id, repeat[-1].index, repeat->index);
}

/* Resolves every device of the push into devices[], in the client's
 * order, and checks the list as a whole. */
static int push_targets(struct manager *m, const struct engine_push *req, struct device **devices,
                        struct engine_error *e) {
        _cleanup_free_ struct target *targets = NULL;
        char buf[ITEM_MAX];
        int r;

        if (req->n_devices == 0 || req->n_devices > PUSH_DEVICES_MAX)
                return fail(e, -EINVAL, "devices", -1, "'devices' must name 1 to %u devices (ids or connection strings).",
                            PUSH_DEVICES_MAX);
        targets = calloc(req->n_devices, sizeof(*targets));
        if (!targets)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        for (size_t i = 0; i < req->n_devices; i++) {
                devices[i] = engine_device_lookup(m, req->devices[i]);
                if (!devices[i])
                        return fail(e, -ENOENT, "devices", (ssize_t) i, "No device '%s'%s.", req->devices[i] ?: "",
                                    item(req, i, buf));
                targets[i] = (struct target) { devices[i], i };
        }
        r = push_check_repeats(targets, req->n_devices, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < req->n_devices; i++) {
                const struct job *j = devices[i]->unfinished_job;
                /* No link reaches a mesh target: its Distributor updates it.
                 * A device of the wrong kind (-EMEDIUMTYPE), not a missing
                 * transport: the device exists, and D-Bus must not say
                 * NotFound. */
                if (devices[i]->mesh)
                        return fail(e, -EMEDIUMTYPE, "devices", (ssize_t) i,
                                    "Device %" PRIu64 "%s is a mesh target: update it through a distribution; "
                                    "nothing was created.",
                                    devices[i]->id, item(req, i, buf));
                if (j)
                        return fail(e, -EBUSY, "devices", (ssize_t) i, "Device %" PRIu64 "%s has an unfinished job (%"
                                    PRIu64 ", %s); nothing was created.", devices[i]->id, item(req, i, buf), j->id,
                                    job_state_to_string(j->state));
        }
        return 0;
}

/* An image declaring boards goes only to devices of one of them: a
 * wrong-board image bricks a device (or is reverted at best).  A device
 * that does not tell its board is not refused: nothing is known. */
static int push_check_boards(const struct engine_push *req, const struct image *img, struct device **devices,
                             struct engine_error *e) {
        _cleanup_free_ char *declared = NULL;
        char buf[ITEM_MAX];

        if (req->force || img->n_boards == 0)
                return 0;
        for (size_t i = 0; i < req->n_devices; i++) {
                struct os_info_fields os;
                if (os_info_parse(devices[i]->os_info, &os) < 0 ||
                    image_boards_accept((const char *const *) img->boards, img->n_boards, os.board))
                        continue;
                declared = image_boards_join((const char *const *) img->boards, img->n_boards);
                return fail(e, -ENOEXEC, "devices", (ssize_t) i,
                            "Device %" PRIu64 "%s reports board '%s', and image %s is built for %s; nothing was "
                            "created (force pushes it anyway).",
                            devices[i]->id, item(req, i, buf), os.board, img->id, declared ?: "other boards");
        }
        return 0;
}

/* Everything was checked, so only the database or memory can fail here;
 * the jobs created before that are taken back, so the push leaves
 * nothing. */
static int push_create(struct manager *m, const struct engine_push *req, struct image *img, struct device **devices,
                       const struct job_options *opts, struct job **jobs, struct engine_error *e) {
        for (size_t i = 0; i < req->n_devices; i++) {
                int r = job_create(m, img, devices[i], opts, &jobs[i]);
                if (r >= 0)
                        continue;
                log_error_errno(r, "Creating the job for device %" PRIu64 " failed: %m", devices[i]->id);
                for (size_t k = 0; k < i; k++)
                        if (job_remove(jobs[k]) < 0)
                                (void) job_cancel(jobs[k]);   /* at least it will not run */
                return fail(e, r, NULL, -1, "Creating the job for device %" PRIu64 " failed: %s; nothing was created.",
                            devices[i]->id, strerror(-r));
        }
        return 0;
}

int engine_push(struct manager *m, const struct engine_push *req, struct job ***ret_jobs, struct engine_error *e) {
        _cleanup_free_ struct device **devices = NULL;
        _cleanup_free_ struct job **jobs = NULL;
        struct job_options opts;
        struct image *img;
        int r;

        error_reset(e);
        r = engine_image_find(m, "image", req->image, &img, e);
        if (r < 0)
                return r;
        r = push_options(m, req, &opts, e);
        if (r < 0)
                return r;
        devices = calloc(MAX(req->n_devices, (size_t) 1), sizeof(*devices));
        jobs = calloc(MAX(req->n_devices, (size_t) 1), sizeof(*jobs));
        if (!devices || !jobs)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        r = push_targets(m, req, devices, e);
        if (r < 0)
                return r;
        r = push_check_boards(req, img, devices, e);
        if (r < 0)
                return r;
        r = push_create(m, req, img, devices, &opts, jobs, e);
        if (r < 0)
                return r;
        log_info("Push of image %s to %zu device(s) requested.", img->id, req->n_devices);
        *ret_jobs = TAKE_PTR(jobs);
        return 0;
}

int engine_job_find(struct manager *m, const char *spec, struct job **ret, struct engine_error *e) {
        struct job *j = NULL;
        uint64_t id;

        error_reset(e);
        if (spec && smp_parse_uint(spec, 0, UINT64_MAX, &id) >= 0)
                j = manager_find_job(m, id);
        if (!j)
                return fail(e, -ENOENT, NULL, -1, "No job '%s'.", spec ?: "");
        *ret = j;
        return 0;
}

int engine_job_cancel(struct manager *m, struct job *j, struct engine_error *e) {
        int r;

        error_reset(e);
        r = job_cancel(j);
        if (r == -EALREADY)
                return fail(e, r, NULL, -1, "Job %" PRIu64 " has finished already (%s).", j->id,
                            job_state_to_string(j->state));
        if (r < 0)
                return fail(e, r, NULL, -1, "Cancelling job %" PRIu64 " failed: %s.", j->id, strerror(-r));
        return 0;
}

int engine_job_activate(struct manager *m, struct job *j, struct engine_error *e) {
        error_reset(e);
        if (j->state != JOB_STAGED)
                return fail(e, -EINVAL, NULL, -1,
                            "Job %" PRIu64 " is not staged (%s): only a staged job can be "
                            "activated.",
                            j->id, job_state_to_string(j->state));
        j->stage_only = false;
        /* The scheduler asks the reboot gate before the activate starts;
         * a job it holds goes back to staged. */
        job_set_state(j, JOB_QUEUED);
        j->next_attempt_usec = 0;
        log_job_state(LOG_INFO, j, "Activation requested: queued for test/confirm and reset");
        manager_history(m, "job-activated", NULL, NULL, j, "activation requested");
        job_changed(j);
        (void) manager_flush_now(m);
        manager_schedule_jobs(m);
        return 0;
}

void engine_set_reboot_gate(struct manager *m, engine_reboot_gate_fn fn, void *userdata) {
        m->reboot_gate = fn;
        m->reboot_gate_userdata = userdata;
        engine_reboot_gate_changed(m);
}

void engine_reboot_gate_changed(struct manager *m) {
        /* Staged jobs that want to go on (not stage_only) ask again at
         * the next scheduling pass, which asks the gate just before it
         * starts their activate. */
        for (size_t i = 0; i < m->n_jobs; i++) {
                struct job *j = m->jobs[i];
                if (j->state != JOB_STAGED || j->stage_only)
                        continue;
                job_set_state(j, JOB_QUEUED);
                job_changed(j);
        }
        manager_schedule_jobs(m);
}

/* ---- queries ---- */

/* The image hash an ?image= filter names: a whole hash as it is, a
 * prefix among every hash the gateway knows.  "" when it names none,
 * which no device or job has. */
static int filter_image(struct manager *m, const char *ref, char ret_hash[static IMAGE_ID_LEN + 1],
                        struct engine_error *e) {
        int r = manager_resolve_image_hash(m, ref, ret_hash);

        switch (r) {
        case 0:
                return 0;
        case -ENOENT:
                ret_hash[0] = '\0';
                return 0;
        case -ENOTUNIQ:
                return fail(e, r, "image", -1, "'image': prefix '%s' fits more than one image; give more of its digits.",
                            ref);
        case -EINVAL:
                return fail(e, r, "image", -1,
                            "'image' must be an image hash (64 hex digits) or a prefix of at least %d of them.",
                            IMAGE_ID_PREFIX_MIN);
        default:
                return fail(e, r, NULL, -1, "Resolving image '%s' failed: %s.", ref, strerror(-r));
        }
}

static bool device_has_image(const struct device *d, const char *hash) {
        for (size_t i = 0; i < d->slots->n_slots && i < SMP_UPDATE_SLOTS_MAX; i++) {
                const struct smp_update_slot *s = &d->slots->slots[i];
                char hex[2 * sizeof(s->hash) + 1];

                if (!s->present || s->hash_len == 0)
                        continue;
                hex_encode(s->hash, MIN(s->hash_len, sizeof(s->hash)), hex);
                if (streq(hex, hash))
                        return true;
        }
        return false;
}

/* Collects the items of one page while counting every match. */
struct page {
        void **items;
        size_t n;
        uint64_t offset, total;
        unsigned limit;
};

static int page_init(struct page *p, uint64_t offset, unsigned limit, size_t available) {
        size_t room = limit ? MIN((size_t) limit, available) : available;

        *p = (struct page) { .offset = offset, .limit = limit };
        p->items = calloc(MAX(room, (size_t) 1), sizeof(void *));
        return p->items ? 0 : -ENOMEM;
}

static void page_offer(struct page *p, void *item) {
        p->total++;
        if (p->total <= p->offset || (p->limit && p->n >= p->limit))
                return;
        p->items[p->n++] = item;
}

struct device_filter {
        int state;
        const char *transport, *name, *label;
        bool by_image;
        char image[IMAGE_ID_LEN + 1];
};

static bool device_filter_match(const struct device_filter *f, const struct device *d) {
        return (f->state < 0 || (int) d->state == f->state) && (!f->transport || streq(d->transport, f->transport)) &&
               (!f->name || (d->name && strcasestr(d->name, f->name))) &&
               (!f->by_image || device_has_image(d, f->image)) && (!f->label || device_has_label(d, f->label));
}

int engine_devices_query(struct manager *m, const struct engine_device_query *q, struct device ***ret,
                         size_t *ret_n, uint64_t *ret_total, struct engine_error *e) {
        struct device_filter f = { .state = -1, .transport = q->transport, .name = q->name, .label = q->label };
        struct page p;
        int r;

        error_reset(e);
        if (q->state) {
                f.state = device_state_from_string(q->state);
                if (f.state < 0)
                        return fail(e, -EINVAL, "state", -1,
                                    "'state' must be one of new, online, unreachable, absent.");
        }
        if (q->image) {
                f.by_image = true;
                r = filter_image(m, q->image, f.image, e);
                if (r < 0)
                        return r;
        }
        if (page_init(&p, q->offset, q->limit, m->n_devices) < 0)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        if (f.state < 0 && !f.transport && !f.name && !f.by_image && !f.label) {
                /* No filter: the page is a slice of the list, found
                 * without looking at the devices before it. */
                size_t from = MIN(q->offset, (uint64_t) m->n_devices);
                size_t n = m->n_devices - from;
                if (q->limit)
                        n = MIN(n, (size_t) q->limit);
                if (n > 0) /* no device list at all yet: m->devices is NULL */
                        memcpy(p.items, m->devices + from, n * sizeof(*m->devices));
                p.n = n;
                p.total = m->n_devices;
        } else
                for (size_t i = 0; i < m->n_devices; i++)
                        if (device_filter_match(&f, m->devices[i]))
                                page_offer(&p, m->devices[i]);
        *ret = (struct device **) p.items;
        *ret_n = p.n;
        *ret_total = p.total;
        return 0;
}

struct job_filter {
        int state;
        bool by_device, by_image;
        uint64_t device_id;
        char image[IMAGE_ID_LEN + 1];
};

static bool job_filter_match(const struct job_filter *f, const struct job *j) {
        return (f->state < 0 || (int) j->state == f->state) && (!f->by_device || j->device_id == f->device_id) &&
               (!f->by_image || streq(j->image_id, f->image));
}

/* Whether s is written as a connection string (a scheme libsmpgw knows
 * or not): a device that was forgotten, or whose plugin is gone, is still
 * a fair filter. */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_conn *, smp_conn_unref);

static bool conn_string_well_formed(struct manager *m, const char *s) {
        _cleanup_(smp_conn_unrefp) struct smp_conn *c = NULL;

        if (!m->smp)
                return strchr(s, ':') != NULL;
        return smp_context_parse_conn(m->smp, s, &c, NULL) != -EINVAL;
}

int engine_jobs_query(struct manager *m, const struct engine_job_query *q, struct job ***ret, size_t *ret_n,
                      uint64_t *ret_total, struct engine_error *e) {
        struct job_filter f = { .state = -1 };
        struct page p;
        int r;

        error_reset(e);
        if (q->state) {
                f.state = job_state_from_string(q->state);
                if (f.state < 0)
                        return fail(e, -EINVAL, "state", -1,
                                    "'state' must be a job state (queued, running, "
                                    "retry-wait, succeeded, failed, cancelled, staged, rebooting).");
        }
        if (q->image) {
                f.by_image = true;
                r = filter_image(m, q->image, f.image, e);
                if (r < 0)
                        return r;
        }
        if (q->device) {
                struct device *d;
                f.by_device = true;
                /* By id: the jobs of a forgotten device can still be listed.
                 * A string that names no device matches nothing. */
                if (smp_parse_uint(q->device, 0, UINT64_MAX, &f.device_id) < 0) {
                        d = manager_find_device_by_conn(m, q->device);
                        /* As 'image' is: a value that could name no
                         * device at all is an error, not an empty list. */
                        if (!d && !conn_string_well_formed(m, q->device))
                                return fail(e, -EINVAL, "device", -1,
                                            "'device' must be a device id or a connection string.");
                        f.device_id = d ? d->id : 0;
                }
        }
        if (page_init(&p, q->offset, q->limit, m->n_jobs) < 0)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        for (size_t i = m->n_jobs; i > 0; i--)
                if (job_filter_match(&f, m->jobs[i - 1]))
                        page_offer(&p, m->jobs[i - 1]);
        *ret = (struct job **) p.items;
        *ret_n = p.n;
        *ret_total = p.total;
        return 0;
}
