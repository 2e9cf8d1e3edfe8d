/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpsim's device model behind an in-process libsmpgw transport: the
 * model's host (struct sim and the sim_* functions sim-device.h asks its
 * host for) and a transport of plugin ABI version 2 whose links carry
 * frames to and from the devices on the fleet's event loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim-smp.h"
#include "sim-transport.h"
#include "sim-mesh.h"
#include "util.h"

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

#define NO_DEVICE UINT32_MAX

/* The model's host.  The model never looks inside; the fleet embeds it
 * so the host functions find the fleet. */
struct sim {
        sd_event *event;
        int verbosity;
};

struct fleet_device {
        struct sim_device model;
        char conn[64];
        struct sim_fleet_link_faults faults;
        unsigned links_opened;
};

struct rx_packet {
        struct rx_packet *next;
        size_t len;
        uint8_t data[];
};

struct smp_link {
        struct sim_fleet *fleet;
        struct smp_link *next, **prevp;   /* in fleet->links; prevp NULL once unlinked */
        uint64_t id;                      /* the route cookie answers come back with */
        uint32_t index;                   /* the device, or NO_DEVICE */
        const struct smp_link_callbacks *cb;
        void *userdata;
        struct smp_link_info info;
        struct smp_link_stats stats;
        sd_event_source *dispatch;        /* delivers queued answers, then closed() */
        struct rx_packet *rx_head, **rx_tail;
        unsigned rx_count;
        int broken;                       /* the error closed() reports, or 0 */
        bool broken_reported;
        unsigned in_callback;
        bool close_requested;             /* close() from inside a callback */
};

struct sim_fleet {
        struct smp_transport transport;
        char scheme[SMP_CONN_SCHEME_MAX + 1];
        struct sim host;
        struct sim_fleet_params params;   /* image and scheme point nowhere */
        struct sim_blob *image;
        struct fleet_device *devices;
        unsigned count;
        struct smp_link *links;
        uint64_t last_link_id;
};

static struct sim_fleet *fleet_of_sim(struct sim *sim) {
        return container_of(sim, struct sim_fleet, host);
}

/* ---- the model's host ---- */

void sim_log(struct sim *sim, int level, const char *fmt, ...) {
        va_list ap;
        if (level > sim->verbosity)
                return;
        fprintf(stderr, "sim-transport: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

uint64_t sim_now_us(struct sim *sim) {
        uint64_t now;
        if (sd_event_now(sim->event, CLOCK_MONOTONIC, &now) < 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        }
        return now;
}

sd_event *sim_event_loop(struct sim *sim) {
        return sim->event;
}

static void link_arm(struct smp_link *l) {
        bool work = l->rx_head || (l->broken && !l->broken_reported);
        if (l->dispatch)
                (void) sd_event_source_set_enabled(l->dispatch, work ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

static void link_break(struct smp_link *l, int error) {
        if (l->broken)
                return;
        l->broken = error;
        link_arm(l);
}

static void device_break_links(struct sim_fleet *f, unsigned index, int error) {
        for (struct smp_link *l = f->links; l; l = l->next)
                if (l->index == index)
                        link_break(l, error);
}

/* An answer leaves the device: it waits on its link for the loop. */
void sim_transport_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len) {
        struct sim_fleet *f = fleet_of_sim(d->sim);
        struct smp_link *l = f->links;

        while (l && l->id != route->cookie)
                l = l->next;
        if (!l || l->broken)
                return; /* closed meanwhile: like a datagram to a closed socket */
        if (l->rx_count >= SIM_FLEET_LINK_QUEUE_MAX) {
                l->stats.lost++;
                return;
        }
        struct rx_packet *p = malloc(sizeof(*p) + len);
        if (!p) {
                l->stats.lost++;
                return;
        }
        p->next = NULL;
        p->len = len;
        memcpy(p->data, pkt, len);
        *l->rx_tail = p;
        l->rx_tail = &p->next;
        l->rx_count++;
        link_arm(l);
}

/* Link faults tied to the upload's progress are the fleet's own
 * (drop_after_bytes, counted as the gateway sends). */
void sim_transport_upload_reached(struct sim_device *d, const struct sim_route *route, uint64_t off) {
}

void sim_transport_device_down(struct sim_device *d) {
        struct sim_fleet *f = fleet_of_sim(d->sim);
        /* not the link, but the same moment: a Distributor's RAM is gone
         * (as smpsim.c's host does) */
        sim_mesh_device_down(d->mesh);
        if (f->devices[d->index].faults.connected)
                device_break_links(f, d->index, -ECONNRESET);
}

void sim_transport_device_up(struct sim_device *d) {
}

/* ---- the transport ---- */

static void link_free(struct smp_link *l) {
        l->dispatch = sd_event_source_disable_unref(l->dispatch);
        while (l->rx_head) {
                struct rx_packet *p = l->rx_head;
                l->rx_head = p->next;
                free(p);
        }
        free(l);
}

static void link_unlink(struct smp_link *l) {
        if (!l->prevp)
                return;
        *l->prevp = l->next;
        if (l->next)
                l->next->prevp = l->prevp;
        l->next = NULL;
        l->prevp = NULL;
}

/* One queued answer, or closed(), per dispatch: the loop runs other
 * sources in between, as with a socket. */
static int on_dispatch(sd_event_source *s, void *userdata) {
        struct smp_link *l = userdata;

        l->in_callback++;
        if (l->rx_head) {
                struct rx_packet *p = l->rx_head;
                l->rx_head = p->next;
                if (!l->rx_head)
                        l->rx_tail = &l->rx_head;
                l->rx_count--;
                l->stats.rx_packets++;
                l->stats.rx_bytes += p->len;
                l->cb->receive(p->data, p->len, l->userdata);
                free(p);
        } else if (l->broken && !l->broken_reported) {
                l->broken_reported = true;
                if (l->cb->closed)
                        l->cb->closed(l->broken, l->userdata);
        }
        l->in_callback--;
        if (l->close_requested) {
                link_free(l);
                return 0;
        }
        link_arm(l);
        return 0;
}

/* "C0:DE:00:00:HH:LL": device HHLL of the fleet, or NO_DEVICE. */
static uint32_t device_index(const struct sim_fleet *f, const char *bdaddr) {
        unsigned hi, lo;
        char tail;
        if (!bdaddr || sscanf(bdaddr, "C0:DE:00:00:%2X:%2X%c", &hi, &lo, &tail) != 2)
                return NO_DEVICE;
        uint32_t index = hi << 8 | lo;
        return index < f->count ? index : NO_DEVICE;
}

static int sim_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        /* The fleet is the state; an instance only has to be non-NULL. */
        *ret = (struct smp_transport_instance *) host;
        return 0;
}

static void sim_instance_free(struct smp_transport_instance *instance) {
}

static int sim_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct sim_fleet *f = container_of(smp_conn_get_transport(conn), struct sim_fleet, transport);
        int broken = 0;

        if (event != f->host.event || !cb || !cb->receive)
                return -EINVAL;
        uint32_t index = device_index(f, smp_conn_get_bdaddr(conn));
        if (index != NO_DEVICE) {
                struct fleet_device *d = &f->devices[index];
                d->links_opened++;
                if (d->faults.refuse > 0) {
                        d->faults.refuse--;
                        broken = d->faults.refuse_error < 0 ? d->faults.refuse_error : -ECONNREFUSED;
                        if (d->faults.refuse_at_open)
                                return broken;
                } else if (d->faults.connected && d->model.rebooting)
                        broken = -EHOSTDOWN;
        } else if (f->params.link_faults.connected)
                broken = -EHOSTUNREACH;

        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->fleet = f;
        l->id = ++f->last_link_id;
        l->index = index;
        l->cb = cb;
        l->userdata = userdata;
        l->info = f->params.info;
        l->rx_tail = &l->rx_head;
        int r = sd_event_add_defer(event, &l->dispatch, on_dispatch, l);
        if (r < 0) {
                free(l);
                return r;
        }
        l->next = f->links;
        l->prevp = &f->links;
        if (f->links)
                f->links->prevp = &l->next;
        f->links = l;
        link_arm(l);
        if (broken)
                link_break(l, broken);
        *ret = l;
        return 0;
}

static void sim_close(struct smp_link *l) {
        link_unlink(l);
        if (l->in_callback > 0) {
                /* The dispatcher frees it once the callback returned. */
                l->close_requested = true;
                (void) sd_event_source_set_enabled(l->dispatch, SD_EVENT_OFF);
                return;
        }
        link_free(l);
}

static int sim_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        struct sim_fleet *f = l->fleet;

        if (l->broken_reported || l->close_requested)
                return -ENOTCONN;
        if (len == 0)
                return -EINVAL;
        bool split = len > l->info.mtu && l->info.fragments && l->info.fragments_need_device;
        if (len > l->info.mtu && !split)
                return -EMSGSIZE;
        l->stats.tx_packets++;
        l->stats.tx_bytes += len;
        if (l->broken) {
                /* Broken, but closed() has not told yet: lost on the way,
                 * as on a real link before its owner hears of it. */
                l->stats.lost++;
                return 0;
        }
        if (l->index == NO_DEVICE)
                return 0; /* nobody there: like udp, silence */

        struct fleet_device *d = &f->devices[l->index];
        if (d->faults.drop_after_bytes >= 0) {
                if ((uint64_t) len > (uint64_t) d->faults.drop_after_bytes) {
                        d->faults.drop_after_bytes = -1;
                        l->stats.lost++;
                        device_break_links(f, l->index, -ECONNRESET);
                        return 0;
                }
                d->faults.drop_after_bytes -= (int64_t) len;
        }
        /* A udp route: the device's receive buffer is one netbuf. */
        const struct sim_route route = { .kind = SIM_TRANSPORT_UDP, .cookie = l->id };
        if (split && d->model.params.no_reassembly) {
                /* BLE's pieces of mtu bytes, each a packet of its own to a
                 * device without reassembly (tools/smpsim/sim-ble.c) */
                for (size_t off = 0; off < len; off += l->info.mtu)
                        sim_device_receive(&d->model, &route, frame + off, MIN(l->info.mtu, len - off));
                return 0;
        }
        sim_device_receive(&d->model, &route, frame, len);
        return 0;
}

static void sim_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = l->info;
}

static void sim_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}

static const struct smp_conn_syntax sim_syntax = {
        .address = SMP_CONN_ADDRESS_BDADDR,
};

/* ---- the fleet ---- */

void sim_fleet_params_default(struct sim_fleet_params *ret) {
        /* smpsim's defaults (tools/smpsim/smpsim.c, doc/smpsim.md) */
        *ret = (struct sim_fleet_params) {
                .count = 1,
                .device = {
                        .smp_version = 2,
                        .buf_size = 2048,
                        .buf_count = 4,
                        .swap_ms = 500,
                        .boot_ms = 100,
                        .reset_delay_ms = 250,
                        .slot_size = 512 * 1024,
                        .image_check = true,
                },
                .link_faults = { .drop_after_bytes = -1 },
                .info = { .mtu = 1472, .overhead = 28 },
                .seed = 1,
        };
}

static bool scheme_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > SMP_CONN_SCHEME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int sim_fleet_new(sd_event *event, const struct sim_fleet_params *params, struct sim_fleet **ret) {
        const char *scheme = params->scheme ? params->scheme : "sim";
        int r;

        if (!event || params->count == 0 || params->count > SIM_FLEET_DEVICES_MAX || !scheme_valid(scheme) ||
            params->info.stream || params->info.mtu == 0 || params->device.buf_count == 0)
                return -EINVAL;

        struct sim_fleet *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        snprintf(f->scheme, sizeof(f->scheme), "%s", scheme);
        f->params = *params;
        f->params.scheme = NULL;
        f->params.image = NULL;
        f->host.event = sd_event_ref(event);
        f->host.verbosity = params->verbosity;
        f->transport = (struct smp_transport) {
                .abi_version = SMP_TRANSPORT_ABI_VERSION,
                .struct_size = sizeof(struct smp_transport),
                .name = f->scheme,
                .description = "simulated devices in this process (tests/lib/sim-transport.c)",
                .conn_syntax = &sim_syntax,
                .instance_new = sim_instance_new,
                .instance_free = sim_instance_free,
                .open = sim_open,
                .close = sim_close,
                .send = sim_send,
                .get_info = sim_get_info,
                .get_stats = sim_get_stats,
        };

        if (params->image) {
                r = -EINVAL;
                if (params->image_len > params->device.slot_size ||
                    !sim_image_valid(params->image, params->image_len))
                        goto fail;
                r = -ENOMEM;
                f->image = sim_blob_new(params->image_len);
                if (!f->image)
                        goto fail;
                memcpy(f->image->data, params->image, params->image_len);
        } else {
                r = sim_image_build_default(&f->image);
                if (r < 0)
                        goto fail;
        }

        r = -ENOMEM;
        f->devices = calloc(params->count, sizeof(*f->devices));
        if (!f->devices)
                goto fail;
        for (unsigned i = 0; i < params->count; i++) {
                struct fleet_device *d = &f->devices[i];
                d->model.params = params->device;
                d->model.link = params->link;
                r = sim_device_init(&d->model, &f->host, i, f->image, NULL);
                f->count = i + 1;
                if (r < 0)
                        goto fail;
                d->model.rng ^= params->seed * 0x9E3779B97F4A7C15ULL;
                d->faults = params->link_faults;
                snprintf(d->conn, sizeof(d->conn), "%s:C0:DE:00:00:%02X:%02X", f->scheme, i >> 8, i & 0xff);
        }
        *ret = f;
        return 0;
fail:
        sim_fleet_free(f);
        return r;
}

struct sim_fleet *sim_fleet_free(struct sim_fleet *f) {
        if (!f)
                return NULL;
        /* A link is closed through the descriptor, which lives here: one
         * still open could never be closed. */
        if (f->links) {
                fprintf(stderr, "sim_fleet_free(): links are still open; free the sessions and contexts "
                                "using the fleet first\n");
                abort();
        }
        for (unsigned i = 0; i < f->count; i++)
                sim_device_done(&f->devices[i].model);
        free(f->devices);
        sim_blob_unref(f->image);
        sd_event_unref(f->host.event);
        free(f);
        return NULL;
}

int sim_fleet_add_to_context(struct sim_fleet *f, struct smp_context *ctx) {
        return smp_context_add_transport(ctx, &f->transport);
}

const struct smp_transport *sim_fleet_get_transport(struct sim_fleet *f) {
        return &f->transport;
}

unsigned sim_fleet_count(const struct sim_fleet *f) {
        return f->count;
}

const char *sim_fleet_conn(const struct sim_fleet *f, unsigned index) {
        return index < f->count ? f->devices[index].conn : NULL;
}

struct sim_device *sim_fleet_device(struct sim_fleet *f, unsigned index) {
        return index < f->count ? &f->devices[index].model : NULL;
}

int sim_fleet_fault(struct sim_fleet *f, unsigned index, const char *spec, const char **ret_error) {
        const char *error = "no such device";
        int r = -EINVAL;
        if (index < f->count)
                r = sim_fault_apply(spec, &f->devices[index].model.faults, &error);
        if (r < 0 && ret_error)
                *ret_error = error;
        return r;
}

void sim_fleet_clear_faults(struct sim_fleet *f, unsigned index) {
        if (index < f->count)
                sim_faults_init(&f->devices[index].model.faults);
}

void sim_fleet_hang(struct sim_fleet *f, unsigned index) {
        if (index < f->count)
                f->devices[index].model.silent = true;
}

void sim_fleet_reboot(struct sim_fleet *f, unsigned index, uint64_t away_usec) {
        if (index >= f->count)
                return;
        struct sim_device *d = &f->devices[index].model;
        /* The model takes the time a reboot takes from its params when it
         * resets, and only then. */
        uint32_t boot_ms = d->params.boot_ms;
        d->params.boot_ms = (uint32_t) MIN(away_usec / 1000u, (uint64_t) UINT32_MAX);
        sim_device_reboot(d, "test");
        d->params.boot_ms = boot_ms;
}

struct sim_fleet_link_faults *sim_fleet_link_faults(struct sim_fleet *f, unsigned index) {
        return index < f->count ? &f->devices[index].faults : NULL;
}

unsigned sim_fleet_links(const struct sim_fleet *f, unsigned index) {
        unsigned n = 0;
        for (const struct smp_link *l = f->links; l; l = l->next)
                n += l->index == index && !l->broken;
        return n;
}

unsigned sim_fleet_links_opened(const struct sim_fleet *f, unsigned index) {
        return index < f->count ? f->devices[index].links_opened : 0;
}

int sim_fleet_slot(struct sim_fleet *f, unsigned index, int slot, struct sim_fleet_slot *ret) {
        struct sim_image_info info;
        if (index >= f->count || slot < 0 || slot > 1)
                return -EINVAL;
        const struct sim_flash *flash = &f->devices[index].model.flash;
        int r = sim_flash_read_info(flash, slot, &info);
        if (r < 0)
                return -ENOENT;
        sim_image_version_string(&info, ret->version, sizeof(ret->version));
        memcpy(ret->hash, info.hash, sizeof(ret->hash));
        ret->flags = sim_flash_slot_flags(flash, slot);
        return 0;
}
