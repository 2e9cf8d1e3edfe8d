/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Probing a device: its mcumgr parameters, OS information, bootloader and
 * image state, over a short-lived SMP session.  At most
 * config.max_probes run at once (a fleet found by one discovery round
 * must not open hundreds of BLE links or flood a serial line); the others
 * wait in order.  Only the image state is required: firmware built
 * without the OS group's optional commands answers those with
 * NOT_SUPPORTED, which is not a failure.
 *
 * The first successful probe of a device with no role (in this process)
 * also asks `mesh models dfd capabilities-get` through shell management:
 * a Bluetooth Mesh Distributor answers with its capabilities and gets
 * the role "mesh-distributor" (distribution.h).  Any other answer, or
 * none, leaves the device as it is and the probe a success.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "distribution.h"
#include "log.h"
#include "manager.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-cbor.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-shell.h"
#include "util.h"

enum probe_step {
        PROBE_PARAMS,
        PROBE_INFO,
        PROBE_BOOTLOADER,
        PROBE_STATE,
        PROBE_ROLE,
        _PROBE_STEP_MAX,
};

struct probe {
        struct device *device;
        struct smp_session *session;
        struct smp_request *request;
        struct smp_shell_exec *shell;
        enum probe_step step;
        sd_event_source *finish_defer;
        int error;
        char error_text[200];
};

static unsigned probes_running(struct manager *m) {
        unsigned n = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                n += m->devices[i]->probe != NULL;
        return n;
}

static struct probe *probe_free(struct probe *p) {
        if (!p)
                return NULL;
        if (p->request)
                smp_request_cancel(p->request);
        smp_shell_exec_cancel(p->shell);
        smp_session_free(p->session);
        sd_event_source_disable_unref(p->finish_defer);
        free(p);
        return NULL;
}

void device_probe_cancel(struct device *d) {
        d->probe_queued = false;
        d->probe = probe_free(d->probe);
}

static int probe_send(struct probe *p);

/* The session is torn down from a defer source, not from inside its own
 * callback. */
static int on_probe_finished(sd_event_source *s, void *userdata) {
        struct probe *p = userdata;
        struct device *d = p->device;
        struct manager *m = d->manager;

        d->probe = NULL;
        d->last_probe_usec = now_realtime_usec();
        m->heap_trim_due = true;
        if (p->error < 0) {
                m->stats.probes_failed++;
                bool gone = d->last_probe_usec - d->last_seen_usec > m->config->absent_after_usec;
                log_device(LOG_INFO, d, "Probe failed: %s", p->error_text);
                free(d->last_error);
                d->last_error = strdup(p->error_text);
                device_set_state(d, gone ? DEVICE_ABSENT : DEVICE_UNREACHABLE);
        } else {
                m->stats.probes_ok++;
                free(d->last_error);
                d->last_error = NULL;
                device_mark_seen(d);
                device_set_state(d, DEVICE_ONLINE);
        }
        d->dirty = true;
        probe_free(p);
        manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
        /* A job may have waited for the probe, another probe for its slot. */
        manager_schedule_jobs(m);
        return 0;
}

static void probe_finish(struct probe *p, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void probe_finish(struct probe *p, int error, const char *fmt, ...) {
        p->error = error;
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(p->error_text, sizeof(p->error_text), fmt, ap);
                va_end(ap);
        }
        if (sd_event_add_defer(p->device->manager->event, &p->finish_defer, on_probe_finished, p) < 0) {
                /* Cannot defer (out of memory): finish right here; the
                 * session callback that got us here returns at once. */
                on_probe_finished(NULL, p);
        }
}

static void slots_changed_history(struct device *d, const struct smp_update_snapshot *before) {
        char was[40] = "none", now[40] = "none";
        for (size_t i = 0; i < before->n_slots; i++)
                if (before->slots[i].active)
                        snprintf(was, sizeof(was), "%s", before->slots[i].version);
        for (size_t i = 0; i < d->slots->n_slots; i++)
                if (d->slots->slots[i].active)
                        snprintf(now, sizeof(now), "%s", d->slots->slots[i].version);
        if (strcmp(was, now) != 0)
                manager_history(d->manager, "device-image", d, NULL, NULL, "active image %s → %s", was, now);
}

/* The node name in an OS info answer to format "a": Zephyr's os_mgmt
 * writes the fields in uname order separated by single spaces, kernel
 * name ("Zephyr", one word) first, node name second (its network
 * host name, or "unknown"). */
static void os_info_node_name(const char *os_info, char *buf, size_t size) {
        const char *p = os_info ? strchr(os_info, ' ') : NULL;
        size_t n;

        buf[0] = '\0';
        if (!p)
                return;
        p++;
        n = strcspn(p, " ");
        if (n > 0 && n < size) {
                memcpy(buf, p, n);
                buf[n] = '\0';
        }
}

static bool snapshot_equal(const struct smp_update_snapshot *a, const struct smp_update_snapshot *b) {
        if (a->n_slots != b->n_slots)
                return false;
        for (size_t i = 0; i < a->n_slots; i++) {
                const struct smp_update_slot *x = &a->slots[i], *y = &b->slots[i];
                if (x->image != y->image || x->slot != y->slot || strcmp(x->version, y->version) ||
                    x->hash_len != y->hash_len || memcmp(x->hash, y->hash, x->hash_len) ||
                    x->bootable != y->bootable || x->pending != y->pending || x->confirmed != y->confirmed ||
                    x->active != y->active || x->permanent != y->permanent)
                        return false;
        }
        return true;
}

static void on_role_answer(struct smp_shell_exec *x, const struct smp_shell_result *res, void *userdata) {
        struct probe *p = userdata;
        struct device *d = p->device;
        struct smp_mesh_dfd_capabilities caps;

        (void) x;
        p->shell = NULL;
        if (res->error == 0 && !d->role && smp_mesh_dfd_capabilities_parse(res->output, res->output_len, &caps) >= 0 &&
            caps.targets_max > 0) {
                d->role = strdup(DEVICE_ROLE_MESH_DISTRIBUTOR);
                if (d->role) {
                        int r = db_device_role_save(d->manager->db, d);
                        if (r < 0)
                                log_device(LOG_WARNING, d, "Cannot record its role: %s", strerror(-r));
                        log_device(LOG_INFO, d, "A Bluetooth Mesh Distributor (%" PRIu32 " targets per distribution)",
                                   caps.targets_max);
                }
        }
        probe_finish(p, 0, NULL);
}

static void on_probe_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                            size_t len, void *userdata) {
        struct probe *p = userdata;
        struct device *d = p->device;
        struct smp_status status = {};
        char text[160];
        int r;

        p->request = NULL;
        if (error < 0) {
                probe_finish(p, error, "%s: %s",
                             p->step == PROBE_STATE ? "image state" : p->step == PROBE_PARAMS ? "parameters" : "info",
                             error == -ETIMEDOUT ? "no answer" : strerror(-error));
                return;
        }
        d->smp_version = smp_session_get_version(s) == SMP_VERSION_2 ? 2 : 1;
        r = smp_status_decode(body, len, &status, NULL);
        if (r < 0) {
                probe_finish(p, -EBADMSG, "malformed answer to the %s request",
                             p->step == PROBE_STATE ? "image state" : "OS");
                return;
        }
        if (smp_status_failed(&status)) {
                if (p->step != PROBE_STATE) {
                        /* Optional command: not built into this firmware. */
                        p->step++;
                        r = probe_send(p);
                        if (r < 0)
                                probe_finish(p, r, "cannot send: %s", strerror(-r));
                        return;
                }
                (void) smp_status_format(&status, text, sizeof(text));
                probe_finish(p, -EREMOTEIO, "image state: %s", text);
                return;
        }

        switch (p->step) {
        case PROBE_PARAMS: {
                struct smp_os_params_rsp rsp;
                if (smp_os_params_rsp_decode(body, len, &rsp, NULL) >= 0) {
                        d->has_params = true;
                        d->buf_size = rsp.buf_size;
                        d->buf_count = rsp.buf_count;
                }
                break;
        }
        case PROBE_INFO: {
                struct smp_cbor_slice out;
                if (smp_os_info_rsp_decode(body, len, &out, NULL) >= 0 && out.ptr) {
                        char node[DEVICE_NAME_MAX * 4 + 1];
                        device_set_os_info(d, strndup((const char *) out.ptr, MIN(out.len, (size_t) 512)));
                        /* a device with no name yet is named after its host */
                        os_info_node_name(d->os_info, node, sizeof(node));
                        (void) device_default_name(d, node);
                }
                break;
        }
        case PROBE_BOOTLOADER: {
                struct smp_os_bootloader_info_rsp rsp = {};
                if (smp_os_bootloader_info_rsp_decode(body, len, &rsp, NULL) >= 0 && rsp.bootloader.ptr) {
                        (void) device_set_bootloader(d, (const char *) rsp.bootloader.ptr,
                                                     MIN(rsp.bootloader.len, (size_t) 64));
                }
                break;
        }
        case PROBE_STATE: {
                struct smp_update_snapshot snap = {};
                r = smp_update_snapshot_from_body(body, len, &snap, NULL);
                if (r < 0) {
                        probe_finish(p, r, "malformed image state answer");
                        return;
                }
                if (!snapshot_equal(&snap, d->slots)) {
                        struct smp_update_snapshot before = *d->slots;
                        r = device_set_slots(d, &snap);
                        if (r < 0) {
                                probe_finish(p, r, "out of memory");
                                return;
                        }
                        d->slots_dirty = true;
                        slots_changed_history(d, &before);
                }
                if (d->role || d->role_checked) {
                        probe_finish(p, 0, NULL);
                        return;
                }
                d->role_checked = true;
                p->step = PROBE_ROLE;
                r = smp_shell_exec_line(s, "mesh models dfd capabilities-get",
                                        &(struct smp_shell_exec_params) { .idempotent = true }, on_role_answer, p,
                                        &p->shell);
                if (r < 0)
                        probe_finish(p, 0, NULL);
                return;
        }
        default:
                break;
        }
        p->step++;
        r = probe_send(p);
        if (r < 0)
                probe_finish(p, r, "cannot send: %s", strerror(-r));
}

static int probe_send(struct probe *p) {
        static const uint8_t empty_map[] = { 0xa0 };
        uint8_t body[32];
        struct smp_cbor_writer w;
        struct smp_request_params params = {
                .op = SMP_OP_READ,
                .group = SMP_GROUP_OS,
                .idempotent = true,
                .body = empty_map,
                .body_len = sizeof(empty_map),
        };

        switch (p->step) {
        case PROBE_PARAMS:
                params.id = SMP_OS_CMD_MCUMGR_PARAMS;
                break;
        case PROBE_INFO:
                smp_cbor_writer_init(&w, body, sizeof(body));
                if (smp_os_info_req_encode(&w, smp_cbor_slice_str("a")) < 0)
                        return -ENOBUFS;
                params.id = SMP_OS_CMD_INFO;
                params.body = body;
                params.body_len = w.len;
                break;
        case PROBE_BOOTLOADER:
                params.id = SMP_OS_CMD_BOOTLOADER_INFO;
                break;
        case PROBE_STATE:
                params.group = SMP_GROUP_IMAGE;
                params.id = SMP_IMG_CMD_STATE;
                break;
        default:
                return -EINVAL;
        }
        return smp_session_send(p->session, &params, on_probe_answer, p, &p->request);
}

static int probe_start(struct device *d) {
        struct manager *m = d->manager;
        struct probe *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->device = d;
        r = smp_session_open(m->smp, m->event, d->conn, &p->session);
        if (r < 0) {
                free(p);
                free(d->last_error);
                if (asprintf(&d->last_error, "cannot open %s: %s", d->conn, strerror(-r)) < 0)
                        d->last_error = NULL;
                d->last_probe_usec = now_realtime_usec();
                device_set_state(d, DEVICE_UNREACHABLE);
                manager_emit(m, MANAGER_EVENT_DEVICE_CHANGED, d, NULL, NULL);
                return r;
        }
        smp_session_set_timeout(p->session, m->config->probe_timeout_usec);
        smp_session_set_retries(p->session, 1);
        d->probe = p;
        p->step = PROBE_PARAMS;
        r = probe_send(p);
        if (r < 0)
                probe_finish(p, r, "cannot send: %s", strerror(-r));
        log_device(LOG_DEBUG, d, "Probing");
        return 0;
}

int device_probe(struct device *d) {
        /* A mesh target has no link: only its Distributor speaks of it.
         * A device of the wrong kind, as the engine says it elsewhere. */
        if (d->mesh)
                return -EMEDIUMTYPE;
        if (d->probe || device_busy_with_job(d))
                return -EBUSY;
        if (d->manager->stopping)
                return -ESHUTDOWN;
        d->probe_queued = true;
        manager_schedule_jobs(d->manager);
        return 0;
}

void probes_schedule(struct manager *m) {
        unsigned running = probes_running(m);

        for (size_t i = 0; i < m->n_devices && running < m->config->max_probes; i++) {
                struct device *d = m->devices[i];
                if (!d->probe_queued)
                        continue;
                d->probe_queued = false;
                /* A job started meanwhile talks to it anyway. */
                if (d->probe || device_busy_with_job(d))
                        continue;
                if (probe_start(d) >= 0)
                        running++;
        }
        if (running == 0)
                manager_trim_heap(m);
}
