/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seeds for fuzz-update and fuzz-upload from a real device: runs the
 * update (or the upload) of fuzz_image(SIZE) against smpsim over the udp
 * transport, records every request the session sends and every packet the
 * device answers with, and writes what fuzz-device.h's device would need
 * to replay the same exchange: the configuration (the udp link's MTU, the
 * same timeouts) and, in the order things happened, each answer as an
 * action carrying smpsim's own body for the request it answers, a drop
 * for each request the session had to send again, raw bytes for answers
 * to nothing.  The replay is not exact (fake time moves differently), but
 * it starts the fuzzer deep in a real exchange.
 *
 *   record-device update|upload udp:127.0.0.1:PORT SIZE MODE OUT
 *
 * MODE is an update mode (0..3) or, for an upload, the config's mode byte.
 * Built on demand in a normal build, not run by the tests:
 * record-device-seeds.sh has the smpsim command lines the committed seeds
 * came from. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-device.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-update.h"
#include "util.h"

#define EVENTS_MAX 100000u

struct event {
        bool sent;              /* a request frame, or a packet received */
        uint8_t *data;
        size_t len;
};

static struct event events[EVENTS_MAX];
static size_t n_events;
static struct smp_context *ctx;

static void record(bool sent, const uint8_t *data, size_t len) {
        if (n_events == EVENTS_MAX)
                return;
        struct event *e = &events[n_events++];
        e->sent = sent;
        e->len = len;
        e->data = malloc(len ? len : 1);
        assert(e->data);
        memcpy(e->data, data, len);
}

/* ---- "rec": the udp transport, with every frame written down ---- */

struct smp_link {
        struct smp_conn *udp;
        struct smp_link *inner;
        const struct smp_transport *t;
        struct smp_link_callbacks cb;
        void *userdata;
};

static void rec_receive(const uint8_t *data, size_t len, void *userdata) {
        struct smp_link *l = userdata;
        record(false, data, len);
        l->cb.receive(data, len, l->userdata);
}

static void rec_closed(int err, void *userdata) {
        struct smp_link *l = userdata;
        l->cb.closed(err, l->userdata);
}

static void rec_writable(void *userdata) {
        struct smp_link *l = userdata;
        if (l->cb.writable)
                l->cb.writable(l->userdata);
}

static const struct smp_link_callbacks rec_callbacks = {
        .receive = rec_receive,
        .closed = rec_closed,
        .writable = rec_writable,
};

static int rec_open(struct smp_transport_instance *i, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        char udp[SMP_CONN_MAX + 8];
        struct smp_link *l = calloc(1, sizeof(*l));
        int r;

        assert(l);
        snprintf(udp, sizeof(udp), "udp:%s", smp_conn_get_address(conn));
        r = smp_context_parse_conn(ctx, udp, &l->udp, NULL);
        if (r >= 0)
                r = smp_conn_open_link(l->udp, event, &rec_callbacks, l, &l->inner);
        if (r < 0) {
                smp_conn_unref(l->udp);
                free(l);
                return r;
        }
        l->t = smp_conn_get_transport(l->udp);
        l->cb = *cb;
        l->userdata = userdata;
        *ret = l;
        return 0;
}

static void rec_close(struct smp_link *l) {
        l->t->close(l->inner);
        smp_conn_unref(l->udp);
        free(l);
}

static int rec_send(struct smp_link *l, const uint8_t *packet, size_t len) {
        struct smp_frame f;
        size_t off = 0;
        int r = l->t->send(l->inner, packet, len);
        if (r < 0)
                return r;
        while (smp_packet_next(packet, len, &off, &f) > 0)
                record(true, f.body - SMP_HEADER_SIZE, SMP_HEADER_SIZE + f.body_len);
        return 0;
}

static void rec_get_info(struct smp_link *l, struct smp_link_info *ret) {
        l->t->get_info(l->inner, ret);
}

static void rec_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        l->t->get_stats(l->inner, ret);
}

static int rec_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        *ret = (struct smp_transport_instance *) host;
        return 0;
}

static void rec_instance_free(struct smp_transport_instance *i) {
}

static const struct smp_conn_syntax rec_syntax = { .address = SMP_CONN_ADDRESS_INET };

static const struct smp_transport rec_transport = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "rec",
        .description = "udp, recorded",
        .conn_syntax = &rec_syntax,
        .instance_new = rec_instance_new,
        .instance_free = rec_instance_free,
        .open = rec_open,
        .close = rec_close,
        .send = rec_send,
        .get_info = rec_get_info,
        .get_stats = rec_get_stats,
};

/* ---- running ---- */

static bool done;

static void on_update_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        fprintf(stderr, "update: %s (%d)\n", smp_update_outcome_to_string(r->outcome), r->error);
        done = true;
}

static void on_upload_done(struct smp_upload *u, const struct smp_upload_result *r, void *userdata) {
        fprintf(stderr, "upload: %d, %zu-byte chunks\n", r->error, r->chunk);
        done = true;
}

/* ---- writing the replay ---- */

struct out {
        uint8_t *buf;
        size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n) {
        if (o->len + n > o->cap) {
                o->cap = MAX(o->cap * 2, o->len + n);
                o->buf = realloc(o->buf, o->cap);
                assert(o->buf);
        }
        memcpy(o->buf + o->len, p, n);
        o->len += n;
}

static void put_u8(struct out *o, uint8_t b) {
        put(o, &b, 1);
}

/* What fuzz-device.c's device would have pending, replayed. */
struct pending {
        struct smp_header hdr;
};

static void write_replay(const struct fuzz_device_config *c, const char *path) {
        static struct pending pending[256];
        size_t n_pending = 0;
        struct out o = {};

        put(&o, c, sizeof(*c));
        for (size_t i = 0; i < n_events; i++) {
                struct event *e = &events[i];
                struct smp_frame f;
                size_t off = 0;

                if (e->sent) {
                        struct smp_header h;
                        assert(smp_header_decode(e->data, e->len, &h) == 0);
                        /* Sent again: the one before was lost. */
                        for (size_t k = 0; k < n_pending; k++)
                                if (pending[k].hdr.seq == h.seq && pending[k].hdr.group == h.group &&
                                    pending[k].hdr.id == h.id) {
                                        put_u8(&o, 6);
                                        put_u8(&o, (uint8_t) k);
                                        memmove(&pending[k], &pending[k + 1], (n_pending - k - 1) * sizeof(pending[0]));
                                        n_pending--;
                                        break;
                                }
                        if (n_pending < ELEMENTSOF(pending))
                                pending[n_pending++].hdr = h;
                        continue;
                }
                while (smp_packet_next(e->data, e->len, &off, &f) > 0) {
                        size_t k = 0;
                        while (k < n_pending && !smp_header_matches_request(&pending[k].hdr, &f.hdr))
                                k++;
                        if (k == n_pending) {
                                /* An answer to nothing pending: raw, when it fits. */
                                if (f.body_len + SMP_HEADER_SIZE <= 255) {
                                        put_u8(&o, 8);
                                        put_u8(&o, (uint8_t) (f.body_len + SMP_HEADER_SIZE));
                                        put(&o, f.body - SMP_HEADER_SIZE, f.body_len + SMP_HEADER_SIZE);
                                }
                                continue;
                        }
                        uint8_t version_mode = f.hdr.version == pending[k].hdr.version ? 0 : 1 + f.hdr.version;
                        put_u8(&o, (uint8_t) (4 | version_mode << 4));
                        put_u8(&o, (uint8_t) k);
                        if (f.body_len < 255)
                                put_u8(&o, (uint8_t) f.body_len);
                        else {
                                put_u8(&o, 255);
                                put_u8(&o, (uint8_t) f.body_len);
                                put_u8(&o, (uint8_t) (f.body_len >> 8));
                        }
                        put(&o, f.body, f.body_len);
                        memmove(&pending[k], &pending[k + 1], (n_pending - k - 1) * sizeof(pending[0]));
                        n_pending--;
                }
        }
        FILE *fp = fopen(path, "we");
        if (!fp || fwrite(o.buf, 1, o.len, fp) != o.len || fclose(fp) != 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                exit(1);
        }
        fprintf(stderr, "%zu events, %zu bytes to %s\n", n_events, o.len, path);
        free(o.buf);
}

int main(int argc, char **argv) {
        struct smp_session *s = NULL;
        sd_event *event = NULL;
        char conn[SMP_CONN_MAX + 8];

        if (argc != 6 || strncmp(argv[2], "udp:", 4) != 0) {
                fprintf(stderr, "usage: record-device update|upload udp:HOST:PORT SIZE MODE OUT\n");
                return 2;
        }
        bool update = streq(argv[1], "update");
        unsigned size_index = (unsigned) atoi(argv[3]);
        uint8_t mode = (uint8_t) atoi(argv[4]);
        size_t image_len;
        const uint8_t *hash, *image = fuzz_image(size_index, &image_len, &hash);

        snprintf(conn, sizeof(conn), "rec:%s", argv[2] + 4);
        if (sd_event_default(&event) < 0 || smp_context_new(&ctx) < 0 ||
            smp_context_add_transport(ctx, &rec_transport) < 0 || smp_session_open(ctx, event, conn, &s) < 0) {
                fprintf(stderr, "cannot open %s\n", conn);
                return 1;
        }
        /* What the replay's configuration below says. */
        struct smp_link_info info;
        assert(smp_session_get_link_info(s, &info) == 0);
        struct fuzz_device_config c = {
                .flags = 0,
                .mtu = { (uint8_t) info.mtu, (uint8_t) (info.mtu >> 8) },
                .image_size = (uint8_t) size_index,
                .mode = mode,
                .session = 0x37,  /* 2 s, 3 retries: the session's defaults */
                .timing = 0xf3,   /* polls every 200 ms, swap timeout 32 s */
        };
        smp_session_set_timeout(s, 250000u * (1u + (c.session & 15)));
        smp_session_set_retries(s, (c.session >> 4) % 4);

        int r;
        if (update) {
                const struct smp_update_params p = {
                        .data = image,
                        .len = image_len,
                        .mode = (enum smp_update_mode) (mode % _SMP_UPDATE_MODE_MAX),
                        .swap_timeout_usec = 2000000u * (1u + (c.timing >> 4)),
                        .poll_interval_usec = 50000u * (1u + (c.timing & 15)),
                        .done = on_update_done,
                };
                r = smp_update_start(s, &p, NULL);
        } else {
                const struct smp_upload_params p = {
                        .data = image,
                        .len = image_len,
                        .max_failures = mode % 8,
                        .done = on_upload_done,
                };
                r = smp_upload_start(s, &p, NULL);
        }
        if (r < 0) {
                fprintf(stderr, "cannot start: %s\n", strerror(-r));
                return 1;
        }
        while (!done)
                if (sd_event_run(event, UINT64_MAX) < 0)
                        return 1;
        write_replay(&c, argv[5]);
        smp_session_free(s);
        smp_context_unref(ctx);
        sd_event_unref(event);
        return 0;
}
