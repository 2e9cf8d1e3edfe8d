/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-serial.h"
#include "sim-device.h"
#include "sim-smp.h"
#include "util.h"

enum sim_event_type {
        EV_ARRIVE,      /* a request reached the device over the link */
        EV_PROCESSED,   /* the device finished the request at the rx head */
        EV_DEPART,      /* an answer reached the gateway over the link */
        EV_REBOOT,      /* the device resets (after its answer went out) */
        EV_BOOTED,      /* MCUboot is done and the application answers again */
};

struct sim_event {
        struct sim_event *next;
        uint64_t at_us;
        enum sim_event_type type;
        struct sim_route route;
        size_t len;
        uint8_t data[];
};

static struct sim_event *event_new(enum sim_event_type type, const struct sim_route *route,
                                   const uint8_t *data, size_t len) {
        struct sim_event *e = calloc(1, sizeof(*e) + len);
        if (!e)
                return NULL;
        e->type = type;
        if (route)
                e->route = *route;
        e->len = len;
        if (len)
                memcpy(e->data, data, len);
        return e;
}

static void device_arm_timer(struct sim_device *d);

static void timeline_insert(struct sim_device *d, struct sim_event *e, uint64_t at_us) {
        e->at_us = at_us;
        struct sim_event **p = &d->events;
        while (*p && (*p)->at_us <= at_us)
                p = &(*p)->next;
        e->next = *p;
        *p = e;
        device_arm_timer(d);
}

static void schedule(struct sim_device *d, enum sim_event_type type, uint64_t at_us,
                     const struct sim_route *route, const uint8_t *data, size_t len) {
        struct sim_event *e = event_new(type, route, data, len);
        if (!e) {
                dev_log(d, 0, "out of memory, event dropped");
                return;
        }
        timeline_insert(d, e, at_us);
}

/* Drops every pending event of a type (requests in flight die with a
 * reboot; answers already on the wire still arrive). */
static void timeline_drop(struct sim_device *d, enum sim_event_type type) {
        struct sim_event **p = &d->events;
        while (*p) {
                if ((*p)->type == type) {
                        struct sim_event *dead = *p;
                        *p = dead->next;
                        free(dead);
                } else
                        p = &(*p)->next;
        }
}

static void rx_queue_clear(struct sim_device *d) {
        while (d->rx_head) {
                struct sim_event *e = d->rx_head;
                d->rx_head = e->next;
                free(e);
        }
        d->rx_tail = &d->rx_head;
        d->rx_count = 0;
        d->busy = false;
}

/* An answer leaves the device: faults, MTU and loss, then the link. */
static void send_answer(struct sim_device *d, const struct sim_route *route,
                        const uint8_t *frame, size_t len, uint64_t now) {
        if (d->link.mtu && len > d->link.mtu) {
                d->stats.dropped_mtu++;
                dev_log(d, 2, "answer of %zu bytes larger than MTU %u, lost", len, d->link.mtu);
                return;
        }
        int copies = sim_rng_chance(&d->rng, d->faults.dup_p) ? 2 : 1;
        for (int i = 0; i < copies; i++) {
                if (sim_rng_chance(&d->rng, d->link.loss) || now < d->down_until_us) {
                        d->stats.dropped_loss++;
                        continue;
                }
                uint64_t at = sim_link_arrival(&d->link, &d->downlink, &d->rng, now, len);
                at += (uint64_t) d->faults.slow_ms * 1000;
                struct sim_event *e = event_new(EV_DEPART, route, frame, len);
                if (!e)
                        return;
                if (len > 0 && sim_rng_chance(&d->rng, d->faults.corrupt_p)) {
                        size_t pos = (size_t) (sim_rng_next(&d->rng) % len);
                        e->data[pos] ^= (uint8_t) (1u + sim_rng_next(&d->rng) % 255u);
                }
                timeline_insert(d, e, at);
        }
}

static void start_processing(struct sim_device *d, uint64_t now);

static void boot_complete(struct sim_device *d, uint64_t now) {
        bool revert_fault = d->faults.revert;
        enum sim_boot_result r = sim_flash_boot(&d->flash, d->faults.reject);
        /* MCUboot's multi-image boot decides each image in turn; the
         * log and the faults stay image 0's */
        if (d->params.two_images)
                (void) sim_flash_boot(&d->flash_image1, d->faults.reject);

        d->last_boot = r;
        d->boot_count++;
        d->rebooting = false;
        d->booted_at_us = now;
        if (d->state_dir[0])
                (void) sim_flash_save(&d->flash, d->state_dir);
        dev_log(d, 1, "booted (%s), boot #%u", sim_boot_result_to_string(r), d->boot_count);
        sim_transport_device_up(d);

        /* Fault "revert": the new image crashes before it confirms itself,
         * the watchdog resets, and MCUboot swaps back. */
        if (r == SIM_BOOT_SWAPPED_TEST && revert_fault)
                sim_device_reboot(d, "fault: new image crashed before confirming");
}

void sim_device_reboot(struct sim_device *d, const char *why) {
        uint64_t now = sim_now_us(d->sim);
        enum sim_swap_type swap = sim_flash_swap_type(&d->flash);

        dev_log(d, 1, "reset (%s), swap type %s", why, sim_swap_type_to_string(swap));
        /* RAM state is gone: the upload in progress, queued requests,
         * counters; flash (slots and trailers) stays. */
        memset(&d->upload, 0, sizeof(d->upload));
        rx_queue_clear(d);
        timeline_drop(d, EV_ARRIVE);
        timeline_drop(d, EV_PROCESSED);
        timeline_drop(d, EV_REBOOT);
        timeline_drop(d, EV_BOOTED);
        d->silent = false;
        d->rebooting = true;
        d->stats.resets++;

        uint64_t silent_us = (uint64_t) d->params.boot_ms * 1000;
        if (swap != SIM_SWAP_NONE || (d->params.two_images && sim_flash_swap_type(&d->flash_image1) != SIM_SWAP_NONE))
                silent_us += (uint64_t) d->params.swap_ms * 1000;
        schedule(d, EV_BOOTED, now + silent_us, NULL, NULL, 0);
        sim_transport_device_down(d);
}

static void finish_processing(struct sim_device *d, struct sim_event *done, uint64_t now) {
        /* done carries the answers; the request's netbuf is released */
        struct sim_event *req = d->rx_head;
        if (req) {
                d->rx_head = req->next;
                if (!d->rx_head)
                        d->rx_tail = &d->rx_head;
                d->rx_count--;
                free(req);
        }
        d->busy = false;

        /* done->data holds: [u16 n][n × u32 frame end][frames] */
        if (done->len >= 2) {
                uint16_t n = unaligned_read_le16(done->data);
                const uint8_t *frames = done->data + 2 + 4u * n;
                size_t start = 0;
                for (uint16_t i = 0; i < n; i++) {
                        size_t end = unaligned_read_le32(done->data + 2 + 4u * i);
                        send_answer(d, &done->route, frames + start, end - start, now);
                        start = end;
                }
        }
        start_processing(d, now);
}

static void start_processing(struct sim_device *d, uint64_t now) {
        while (!d->busy && d->rx_head && !d->rebooting) {
                struct sim_event *req = d->rx_head;

                /* Zephyr allocates the answer from the same netbuf pool
                 * (smp_alloc_rsp()); with every buffer holding a request
                 * there is none, and smp_on_err() answers ENOMEM in the
                 * request's own buffer, the request not handled (smp.c
                 * smp_process_request_packet()). */
                struct sim_smp_reply reply = { 0 };
                if (d->rx_count >= d->params.buf_count) {
                        d->stats.refused_netbuf++;
                        dev_log(d, 2, "no netbuf for the answer: ENOMEM, request not handled");
                        sim_smp_refuse(d, req->data, req->len, SMP_MGMT_ERR_ENOMEM, &reply);
                } else
                        sim_smp_process(d, req->data, req->len, &reply);

                switch (reply.action) {
                case SIM_SMP_ANSWER:
                        break;
                case SIM_SMP_DROP:
                        d->stats.dropped_fault++;
                        reply.n_frames = 0;
                        break;
                case SIM_SMP_LINK_DOWN:
                        d->stats.dropped_fault++;
                        d->down_until_us = now + (uint64_t) d->faults.drop_ms * 1000;
                        dev_log(d, 1, "fault: link down for %u ms", d->faults.drop_ms);
                        reply.n_frames = 0;
                        break;
                case SIM_SMP_GO_SILENT:
                        d->silent = true;
                        dev_log(d, 1, "fault: device hangs and answers nothing");
                        sim_smp_reply_done(&reply);
                        rx_queue_clear(d);
                        return;
                case SIM_SMP_REBOOT_NOW:
                        sim_smp_reply_done(&reply);
                        sim_device_reboot(d, "fault: reboot during upload");
                        return;
                }

                /* Pack the answers into the PROCESSED event. */
                size_t head = 2 + 4u * reply.n_frames;
                size_t len = head + (reply.n_frames ? reply.len : 0);
                _cleanup_free_ uint8_t *buf = malloc(len);
                if (!buf) {
                        sim_smp_reply_done(&reply);
                        return;
                }
                unaligned_write_le16(buf, (uint16_t) reply.n_frames);
                for (unsigned i = 0; i < reply.n_frames; i++)
                        unaligned_write_le32(buf + 2 + 4u * i, (uint32_t) reply.frame_end[i]);
                if (reply.n_frames)
                        memcpy(buf + head, reply.data, reply.len);

                if (reply.upload_reached)
                        sim_transport_upload_reached(d, &req->route, reply.upload_reached);
                d->busy = true;
                uint64_t done_at = now + reply.work_us;
                schedule(d, EV_PROCESSED, done_at, &req->route, buf, len);
                if (reply.reset_after)
                        schedule(d, EV_REBOOT, done_at + (uint64_t) d->params.reset_delay_ms * 1000,
                                 NULL, NULL, 0);
                sim_smp_reply_done(&reply);
        }
}

static void on_arrive(struct sim_device *d, struct sim_event *e, uint64_t now) {
        if (d->rebooting || d->silent) {
                free(e);
                return;
        }
        /* the transport's receive buffer is one netbuf: larger packets are
         * dropped (Zephyr smp_udp.c: "too large") */
        size_t limit = d->params.buf_size;
        if (e->route.kind == SIM_TRANSPORT_SERIAL)
                limit = smp_serial_frame_max_for_buf(limit); /* length and CRC share the buffer */
        if (e->len > limit) {
                d->stats.dropped_too_big++;
                dev_log(d, 2, "packet of %zu bytes larger than the %zu a netbuf holds, dropped", e->len, limit);
                free(e);
                return;
        }
        if (d->rx_count >= d->params.buf_count) {
                d->stats.dropped_netbuf++;
                dev_log(d, 2, "all %u netbufs busy, packet dropped", d->params.buf_count);
                free(e);
                return;
        }
        e->next = NULL;
        *d->rx_tail = e;
        d->rx_tail = &e->next;
        d->rx_count++;
        /* handled once every packet due now is in (on_timer()) */
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct sim_device *d = userdata;
        uint64_t now = sim_now_us(d->sim);

        while (d->events && d->events->at_us <= now) {
                struct sim_event *e = d->events;
                d->events = e->next;
                e->next = NULL;

                switch (e->type) {
                case EV_ARRIVE:
                        on_arrive(d, e, now); /* takes e */
                        continue;
                case EV_PROCESSED:
                        finish_processing(d, e, now);
                        break;
                case EV_DEPART:
                        d->stats.tx_packets++;
                        d->stats.tx_bytes += e->len;
                        sim_transport_send(d, &e->route, e->data, e->len);
                        break;
                case EV_REBOOT:
                        free(e);
                        sim_device_reboot(d, "OS reset command");
                        continue;
                case EV_BOOTED:
                        free(e);
                        boot_complete(d, now);
                        start_processing(d, now);
                        continue;
                }
                free(e);
        }
        /* Zephyr's UDP receive thread (priority 0) takes every datagram
         * waiting into a netbuf before the SMP work queue (priority 3)
         * handles the first: packets arriving together are all queued
         * before one is handled. */
        start_processing(d, now);
        device_arm_timer(d);
        return 0;
}

static void device_arm_timer(struct sim_device *d) {
        if (!d->timer)
                return;
        if (!d->events) {
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(d->timer, d->events->at_us);
        (void) sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

void sim_device_receive(struct sim_device *d, const struct sim_route *route,
                        const uint8_t *pkt, size_t len) {
        uint64_t now = sim_now_us(d->sim);

        d->stats.rx_packets++;
        d->stats.rx_bytes += len;
        if (d->link.mtu && len > d->link.mtu) {
                d->stats.dropped_mtu++;
                dev_log(d, 2, "request of %zu bytes larger than MTU %u, lost", len, d->link.mtu);
                return;
        }
        if (now < d->down_until_us || sim_rng_chance(&d->rng, d->link.loss)) {
                d->stats.dropped_loss++;
                return;
        }
        uint64_t at = sim_link_arrival(&d->link, &d->uplink, &d->rng, now, len);
        schedule(d, EV_ARRIVE, at, route, pkt, len);
}

static bool same_route(const struct sim_route *a, const struct sim_route *b) {
        return a->kind == b->kind && a->cookie == b->cookie;
}

bool sim_device_holds_request(const struct sim_device *d, const struct sim_route *route) {
        for (const struct sim_event *e = d->rx_head; e; e = e->next)
                if (same_route(&e->route, route))
                        return true;
        for (const struct sim_event *e = d->events; e; e = e->next)
                if ((e->type == EV_ARRIVE || e->type == EV_PROCESSED || e->type == EV_DEPART) &&
                    same_route(&e->route, route))
                        return true;
        return false;
}

void sim_device_receive_at(struct sim_device *d, const struct sim_route *route,
                           const uint8_t *pkt, size_t len, uint64_t at_us) {
        uint64_t now = sim_now_us(d->sim);

        d->stats.rx_packets++;
        d->stats.rx_bytes += len;
        if (now < d->down_until_us || sim_rng_chance(&d->rng, d->link.loss)) {
                d->stats.dropped_loss++;
                return;
        }
        schedule(d, EV_ARRIVE, MAX(at_us, now), route, pkt, len);
}

int sim_device_init(struct sim_device *d, struct sim *sim, unsigned index,
                    struct sim_blob *default_image, const char *state_root) {
        int r;

        d->sim = sim;
        d->index = index;
        d->udp_fd = -1;
        d->rx_tail = &d->rx_head;
        d->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t) index * 0xBF58476D1CE4E5B9ULL) ^ 1;
        sim_faults_init(&d->faults);
        snprintf(d->name, sizeof(d->name), "smpsim-%04u", index);
        sim_flash_init(&d->flash, d->params.slot_size, default_image);
        sim_flash_init(&d->flash_image1, d->params.slot_size, default_image);

        if (state_root) {
                snprintf(d->state_dir, sizeof(d->state_dir), "%s/dev-%04u", state_root, index);
                if (mkdir(d->state_dir, 0755) < 0 && errno != EEXIST)
                        return -errno;
                r = sim_flash_load(&d->flash, d->state_dir);
                if (r < 0)
                        return r;
                if (!d->flash.slot[0].blob) {
                        /* a device always runs an image */
                        d->flash.slot[0].blob = sim_blob_ref(default_image);
                        r = 0;
                }
                if (r == 0) {
                        r = sim_flash_save(&d->flash, d->state_dir);
                        if (r < 0)
                                return r;
                }
        }
        d->boot_count = 1;

        r = sd_event_add_time(sim_event_loop(sim), &d->timer, CLOCK_MONOTONIC, UINT64_MAX,
                              1 /* µs accuracy: link timing is the point */, on_timer, d);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
}

void sim_device_done(struct sim_device *d) {
        while (d->events) {
                struct sim_event *e = d->events;
                d->events = e->next;
                free(e);
        }
        rx_queue_clear(d);
        d->timer = sd_event_source_disable_unref(d->timer);
        sim_flash_done(&d->flash);
        sim_flash_done(&d->flash_image1);
}
