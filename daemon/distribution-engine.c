/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What front ends and the rollout layer may ask of mesh distributions
 * (distribution.h): the checks and sentences, written once, then the
 * distribution object handed to distribution.c to run.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "distribution-internal.h"
#include "distribution.h"
#include "engine.h"
#include "image-boards.h"
#include "image.h"
#include "log.h"
#include "manager.h"
#include "os-info.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "util.h"

/* Bluetooth Mesh: an application key index is 12 bits, and a TTL above
 * 0x7f is prohibited but for 0xff, the default, which a policy says with
 * 0.  Checked here, not in a front end, so that REST and D-Bus refuse
 * with one sentence. */
#define MESH_APP_IDX_MAX 0xfffu
#define MESH_TTL_MAX 0x7fu

_printf_(5, 6) static int fail(struct engine_error *e, int error, const char *field, ssize_t index, const char *fmt,
                               ...) {
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

DEFINE_TRIVIAL_CLEANUP_FUNC(struct distribution *, distribution_free);

static bool target_in_unfinished(struct manager *m, uint64_t device_id) {
        for (size_t i = 0; i < m->n_distributions; i++) {
                const struct distribution *d = m->distributions[i];
                if (distribution_is_finished(d))
                        continue;
                for (size_t k = 0; k < d->n_targets; k++)
                        if (d->targets[k].device_id == device_id)
                                return true;
        }
        return false;
}

/* A mesh target's board as the inventory knows it: what a probe read of
 * it (none: no probe reaches a mesh node), else of its direct device, the
 * same node over a link of its own.  -ENODATA when unknown. */
static int mesh_target_board(struct manager *m, const struct device *t, struct os_info_fields *ret) {
        const struct device *direct;

        if (os_info_parse(t->os_info, ret) >= 0)
                return 0;
        direct = t->mesh && t->mesh->direct_device_id ? manager_find_device(m, t->mesh->direct_device_id) : NULL;
        return direct ? os_info_parse(direct->os_info, ret) : -ENODATA;
}

/* The targets must be of a board the image is built for, as a push's
 * devices must be (a wrong-board image bricks a node, or is reverted at
 * best); the refusal names every one that is not, as far as the
 * sentence holds. */
static int check_target_boards(struct manager *m, const struct image *img, struct device *const *targets, size_t n,
                               struct engine_error *e) {
        _cleanup_free_ char *declared = NULL;
        char list[ENGINE_MESSAGE_MAX / 2] = "", more[32] = "";
        size_t n_bad = 0, listed = 0, first = 0, len = 0;

        if (img->n_boards == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                struct os_info_fields os;
                int k;

                if (mesh_target_board(m, targets[i], &os) < 0 ||
                    image_boards_accept((const char *const *) img->boards, img->n_boards, os.board))
                        continue;
                if (n_bad++ == 0)
                        first = i;
                k = snprintf(list + len, sizeof(list) - len, "%s%" PRIu64 " ('%s')", listed ? ", " : "", targets[i]->id,
                             os.board);
                if (k > 0 && (size_t) k < sizeof(list) - len) {
                        len += (size_t) k;
                        listed++;
                } else
                        list[len] = '\0'; /* cut: the count below says how many more */
        }
        if (n_bad == 0)
                return 0;
        if (n_bad > listed)
                snprintf(more, sizeof(more), " and %zu more", n_bad - listed);
        declared = image_boards_join((const char *const *) img->boards, img->n_boards);
        return fail(e, -ENOEXEC, "targets", n_bad == 1 ? (ssize_t) first : -1,
                    "Field 'targets': mesh target%s %s%s report%s a board image %.12s is not built for (%s); "
                    "nothing was started (force sends it anyway).",
                    n_bad == 1 ? "" : "s", list, more, n_bad == 1 ? "s" : "", img->id, declared ?: "other boards");
}

int engine_distribution_start(struct manager *m, struct device *distributor, struct image *img,
                              struct device *const *targets, size_t n, const struct distribution_policy *policy,
                              struct distribution **ret, struct engine_error *e) {
        struct distribution_policy p = policy ? *policy : (struct distribution_policy) {};
        int r;

        error_reset(e);
        if (!distributor)
                return fail(e, -ENOENT, "distributor", -1, "No such Distributor.");
        if (!img)
                return fail(e, -ENOENT, "image", -1, "No such image.");
        if (distributor->mesh)
                return fail(e, -EMEDIUMTYPE, "distributor", -1,
                            "Field 'distributor': device %" PRIu64 " is a mesh target, not a Distributor.",
                            distributor->id);
        if (!distributor->role || !streq(distributor->role, DEVICE_ROLE_MESH_DISTRIBUTOR))
                return fail(e, -EMEDIUMTYPE, "distributor", -1,
                            "Field 'distributor': device %" PRIu64 " has not the role '" DEVICE_ROLE_MESH_DISTRIBUTOR
                            "'.",
                            distributor->id);
        if (n == 0 || n > DISTRIBUTION_TARGETS_MAX)
                return fail(e, -EINVAL, "targets", -1, "Field 'targets': 1 to %u mesh targets.",
                            DISTRIBUTION_TARGETS_MAX);
        if ((unsigned) p.apply >= _DISTRIBUTION_APPLY_MAX)
                return fail(e, -EINVAL, "apply", -1, "Field 'apply': 'now' or 'verify-only'.");
        if (p.max_attempts > DISTRIBUTION_ATTEMPTS_MAX)
                return fail(e, -EINVAL, "attempts", -1, "Field 'attempts': 1 to %u (0: the default, %u).",
                            DISTRIBUTION_ATTEMPTS_MAX, DISTRIBUTION_ATTEMPTS_DEFAULT);
        if (p.max_attempts == 0)
                p.max_attempts = DISTRIBUTION_ATTEMPTS_DEFAULT;
        if (p.app_idx > MESH_APP_IDX_MAX)
                return fail(e, -EINVAL, "app_idx", -1, "Field 'app_idx': an application key index, 0 to %u.",
                            MESH_APP_IDX_MAX);
        if (p.group != 0 && p.group < 0xc000)
                return fail(e, -EINVAL, "group", -1, "Field 'group': 0 (unicast) or a group address (0xc000..).");
        if (p.xfer_mode == 0)
                p.xfer_mode = SMP_MESH_XFER_MODE_PUSH;
        if (p.xfer_mode != SMP_MESH_XFER_MODE_PUSH && p.xfer_mode != SMP_MESH_XFER_MODE_PULL)
                return fail(e, -EINVAL, "xfer_mode", -1, "Field 'xfer_mode': 1 (push) or 2 (pull).");
        if (p.ttl > MESH_TTL_MAX)
                return fail(e, -EINVAL, "ttl", -1, "Field 'ttl': 1 to %u (0: the Distributor's default).",
                            MESH_TTL_MAX);
        if (p.ttl == 0)
                p.ttl = SMP_MESH_TTL_DEFAULT;
        if (p.poll_max_usec && p.poll_min_usec > p.poll_max_usec)
                return fail(e, -EINVAL, "poll", -1, "The poll interval's minimum is above its maximum.");
        for (size_t i = 0; i < n; i++) {
                const struct device *t = targets[i];
                if (!t->mesh || t->mesh->distributor_id != distributor->id)
                        return fail(e, -EMEDIUMTYPE, "targets", (ssize_t) i,
                                    "Field 'targets[%zu]': device %" PRIu64 " is no mesh target behind "
                                    "Distributor %" PRIu64 ".",
                                    i, t->id, distributor->id);
                for (size_t k = 0; k < i; k++)
                        if (targets[k] == t)
                                return fail(e, -EINVAL, "targets", (ssize_t) i,
                                            "Field 'targets[%zu]': device %" PRIu64 " is named twice.", i, t->id);
                if (target_in_unfinished(m, t->id))
                        return fail(e, -EBUSY, "targets", (ssize_t) i,
                                    "Field 'targets[%zu]': device %" PRIu64 " is in an unfinished distribution.", i,
                                    t->id);
        }
        if (!p.force) {
                r = check_target_boards(m, img, targets, n, e);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_distributions; i++)
                if (!distribution_is_finished(m->distributions[i]) &&
                    m->distributions[i]->distributor_id == distributor->id)
                        return fail(e, -EBUSY, "distributor", -1,
                                    "Field 'distributor': distribution %" PRIu64 " runs on it.",
                                    m->distributions[i]->id);

        _cleanup_(distribution_freep) struct distribution *d = calloc(1, sizeof(*d));
        if (!d)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        d->targets = calloc(n, sizeof(*d->targets));
        if (!d->targets)
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        d->n_targets = n;
        for (size_t i = 0; i < n; i++)
                d->targets[i] = (struct distribution_target) {
                        .device_id = targets[i]->id,
                        .addr = targets[i]->mesh->addr,
                        .phase = SMP_MESH_DFU_PHASE_UNKNOWN,
                };
        d->manager = m;
        d->distributor_id = distributor->id;
        snprintf(d->image_id, sizeof(d->image_id), "%s", img->id);
        d->policy = p;
        d->state = DISTRIBUTION_QUEUED;
        d->step = DISTRIBUTION_STEP_UPLOAD;
        d->created_usec = d->updated_usec = now_realtime_usec();
        if (d->policy.poll_min_usec == 0)
                d->policy.poll_min_usec = DISTRIBUTION_POLL_MIN_DEFAULT_USEC;
        if (d->policy.poll_max_usec == 0)
                d->policy.poll_max_usec = DISTRIBUTION_POLL_MAX_DEFAULT_USEC;
        r = db_distribution_insert(m->db, d);
        if (r < 0)
                return fail(e, r, NULL, -1, "Cannot record the distribution: %s.", strerror(-r));
        r = distribution_attach(m, d);
        if (r < 0)
                return fail(e, r, NULL, -1, "Out of memory.");
        struct distribution *dd = TAKE_PTR(d);
        log_info("Distribution %" PRIu64 ": image %.12s to %zu mesh targets through device %" PRIu64 " (apply %s)",
                 dd->id, dd->image_id, n, distributor->id, distribution_apply_to_string(p.apply));
        manager_emit_distribution(m, MANAGER_EVENT_DISTRIBUTION_STATE, dd);
        distribution_kick(dd);
        if (ret)
                *ret = dd;
        return 0;
}

int engine_distribution_find(struct manager *m, const char *spec, struct distribution **ret, struct engine_error *e) {
        uint64_t id;
        struct distribution *d = NULL;

        error_reset(e);
        if (spec && smp_parse_uint(spec, 1, UINT64_MAX, &id) >= 0)
                d = manager_find_distribution(m, id);
        if (!d)
                return fail(e, -ENOENT, NULL, -1, "No distribution '%s'.", spec ?: "");
        *ret = d;
        return 0;
}

static int request(struct distribution *d, enum distribution_request req, struct engine_error *e) {
        error_reset(e);
        if (distribution_is_finished(d))
                return fail(e, -EALREADY, NULL, -1, "Distribution %" PRIu64 " is %s already.", d->id,
                            distribution_state_to_string(d->state));
        return distribution_request(d, req);
}

int engine_distribution_cancel(struct manager *m, struct distribution *d, struct engine_error *e) {
        (void) m;
        return request(d, DISTRIBUTION_REQUEST_CANCEL, e);
}

int engine_distribution_suspend(struct manager *m, struct distribution *d, struct engine_error *e) {
        (void) m;
        return request(d, DISTRIBUTION_REQUEST_SUSPEND, e);
}

int engine_distribution_resume(struct manager *m, struct distribution *d, struct engine_error *e) {
        (void) m;
        return request(d, DISTRIBUTION_REQUEST_RESUME, e);
}

int engine_distribution_apply(struct manager *m, struct distribution *d, struct engine_error *e) {
        (void) m;
        error_reset(e);
        if (!distribution_is_finished(d) && d->policy.apply != DISTRIBUTION_APPLY_VERIFY_ONLY)
                return fail(e, -EINVAL, "apply", -1, "Distribution %" PRIu64 " applies by itself (apply 'now').",
                            d->id);
        return request(d, DISTRIBUTION_REQUEST_APPLY, e);
}

int engine_device_role_check(struct manager *m, const struct device *d, const char *role, struct engine_error *e) {
        (void) m;
        error_reset(e);
        if (role && *role && !streq(role, DEVICE_ROLE_MESH_DISTRIBUTOR))
                return fail(e, -EINVAL, "role", -1, "Field 'role': '" DEVICE_ROLE_MESH_DISTRIBUTOR "' or none.");
        if (role && *role && d->mesh)
                return fail(e, -EINVAL, "role", -1, "Field 'role': a mesh target cannot be a Distributor.");
        return 0;
}

int engine_device_set_role(struct manager *m, struct device *d, const char *role, struct engine_error *e) {
        char *old = d->role, *fresh = NULL;
        int r;

        r = engine_device_role_check(m, d, role, e);
        if (r < 0)
                return r;
        if (role && *role && !(fresh = strdup(role)))
                return fail(e, -ENOMEM, NULL, -1, "Out of memory.");
        d->role = fresh;
        r = db_device_role_save(m->db, d);
        if (r < 0) {
                d->role = old;
                free(fresh);
                return fail(e, r, NULL, -1, "Cannot record the role: %s.", strerror(-r));
        }
        free(old);
        manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        return 0;
}

int engine_mesh_target_add(struct manager *m, struct device *distributor, uint16_t addr, const char *source,
                           struct device **ret, bool *ret_created, struct engine_error *e) {
        char conn[64];

        error_reset(e);
        if (!smp_mesh_addr_is_unicast(addr))
                return fail(e, -EINVAL, "addr", -1, "Field 'addr': a unicast address (0x0001..0x7fff).");
        if (!distributor->role || !streq(distributor->role, DEVICE_ROLE_MESH_DISTRIBUTOR))
                return fail(e, -EMEDIUMTYPE, "distributor", -1,
                            "Field 'distributor': device %" PRIu64 " has not the role '" DEVICE_ROLE_MESH_DISTRIBUTOR
                            "'.",
                            distributor->id);
        (void) mesh_conn_format(distributor->id, addr, conn, sizeof(conn));
        return engine_device_add(m, conn, source, ret, ret_created, e);
}

struct device *mesh_target_of_direct(struct manager *m, const struct device *d) {
        for (size_t i = 0; d && i < m->n_devices; i++)
                if (m->devices[i]->mesh && m->devices[i]->mesh->direct_device_id == d->id)
                        return m->devices[i];
        return NULL;
}

int engine_mesh_target_direct_check(struct manager *m, const struct device *target, const struct device *direct,
                                    struct engine_error *e) {
        const struct device *other;

        error_reset(e);
        if (!target->mesh)
                return fail(e, -EMEDIUMTYPE, "direct_device", -1,
                            "Field 'direct_device': device %" PRIu64 " is not a mesh target.", target->id);
        if (!direct)
                return 0;
        if (direct->mesh)
                return fail(e, -EINVAL, "direct_device", -1,
                            "Field 'direct_device': device %" PRIu64 " is a mesh target itself; name the "
                            "device that reaches the node over a link of its own (GATT, ...).",
                            direct->id);
        if (direct->id == target->mesh->distributor_id ||
            (direct->role && streq(direct->role, DEVICE_ROLE_MESH_DISTRIBUTOR)))
                return fail(e, -EINVAL, "direct_device", -1,
                            "Field 'direct_device': device %" PRIu64 " is a Distributor, not the target.", direct->id);
        other = mesh_target_of_direct(m, direct);
        if (other && other != target)
                return fail(e, -EINVAL, "direct_device", -1,
                            "Field 'direct_device': device %" PRIu64 " is the direct device of mesh target %" PRIu64
                            " already.",
                            direct->id, other->id);
        return 0;
}

int engine_mesh_target_set_direct(struct manager *m, struct device *target, struct device *direct,
                                  struct engine_error *e) {
        uint64_t old;
        int r;

        r = engine_mesh_target_direct_check(m, target, direct, e);
        if (r < 0)
                return r;
        old = target->mesh->direct_device_id;
        target->mesh->direct_device_id = direct ? direct->id : 0;
        if (old == target->mesh->direct_device_id)
                return 0;
        r = m->db ? db_mesh_target_save(m->db, target) : 0;
        if (r < 0) {
                target->mesh->direct_device_id = old;
                return fail(e, r, NULL, -1, "Cannot record the direct device: %s.", strerror(-r));
        }
        manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, target, NULL, NULL);
        return 0;
}

double distribution_measured_rate(struct manager *m, uint64_t distributor_id) {
        for (size_t i = m->n_distributions; i > 0; i--) {
                const struct distribution *d = m->distributions[i - 1];
                if (d->distributor_id == distributor_id && distribution_is_finished(d) && d->mesh_rate > 0)
                        return d->mesh_rate;
        }
        return 0;
}

/* ---- estimates ---- */

int distribution_estimate(const struct distribution_estimate_input *in, double *ret_seconds) {
        if (!in || !ret_seconds || in->n_targets == 0 || !(in->upload_rate > 0) || !(in->mesh_rate > 0))
                return -EINVAL;
        unsigned per_round = in->targets_max ? in->targets_max : 8;
        unsigned rounds = (in->n_targets + per_round - 1) / per_round;
        double overhead = in->round_overhead > 0 ? in->round_overhead : DISTRIBUTION_ROUND_OVERHEAD_DEFAULT;
        double upload = (double) in->image_size / in->upload_rate;
        double round = overhead + (double) in->image_size / in->mesh_rate + in->poll_interval;
        *ret_seconds = upload + rounds * round;
        return 0;
}

int distribution_estimate_radio(const struct distribution_estimate_input *in, double *ret_radio_seconds) {
        if (!in || !ret_radio_seconds || !(in->upload_rate > 0))
                return -EINVAL;
        /* The gateway's radio carries the upload; the polls are a few
         * hundred bytes each and left out. */
        *ret_radio_seconds = (double) in->image_size / in->upload_rate;
        return 0;
}

int distribution_estimate_direct(const struct distribution_direct_input *in, double *ret_seconds,
                                 double *ret_radio_seconds) {
        if (!in || in->n_targets == 0 || in->links == 0 || !(in->link_rate > 0) || in->swap_seconds < 0)
                return -EINVAL;
        double upload = (double) in->image_size / in->link_rate;
        unsigned waves = (in->n_targets + in->links - 1) / in->links;
        if (ret_seconds)
                *ret_seconds =
                        in->swap_holds_link ? waves * (upload + in->swap_seconds) : waves * upload + in->swap_seconds;
        if (ret_radio_seconds)
                *ret_radio_seconds = in->n_targets * upload;
        return 0;
}
