/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-process transport and its devices (core-sim.h).  Answers are
 * never given from inside send(): they are queued and delivered by a
 * timer of the link, as a socket's would arrive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core-sim.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-cbor.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "util.h"

#define SIM_MTU 512u
#define SIM_BUF_SIZE 1024u
#define SIM_BUF_COUNT 4u
#define SIM_BODY_MAX 2048u

/* The test's fleet: tests are one thread and one loop, and the devices
 * must outlive the managers (and their transport instances) that talk
 * to them. */
static struct core_sim_device *devices[CORE_SIM_DEVICES_MAX];
static bool in_callback;

bool core_sim_in_callback(void) {
        return in_callback;
}

struct core_sim_device *core_sim_device(unsigned n) {
        if (n == 0 || n >= CORE_SIM_DEVICES_MAX)
                abort();
        if (!devices[n]) {
                devices[n] = calloc(1, sizeof(*devices[n]));
                if (!devices[n])
                        abort();
                devices[n]->index = n;
                /* Its running image: some hash no test image has. */
                memset(devices[n]->active_hash, 0xa0 + (int) n, sizeof(devices[n]->active_hash));
        }
        return devices[n];
}

void core_sim_reset(void) {
        for (size_t i = 0; i < CORE_SIM_DEVICES_MAX; i++) {
                if (devices[i])
                        free(devices[i]->upload);
                free(devices[i]);
                devices[i] = NULL;
        }
}

/* ---- one device's mcumgr ---- */

static void put_error(struct smp_cbor_writer *w, uint16_t group, uint16_t rc) {
        (void) smp_status_encode_v2(w, group, rc);
}

static void img_state(struct core_sim_device *d, struct smp_cbor_writer *w) {
        struct smp_img_state_rsp rsp = {
                .images[0] = {
                        .slot = 0,
                        .version = SMP_CBOR_SLICE_LIT("1.0.0"),
                        .hash = smp_cbor_slice_make(d->active_hash, 32),
                        .bootable = true,
                        .confirmed = true,
                        .active = true,
                },
                .n_images = 1,
        };
        if (d->slot1_full)
                rsp.images[rsp.n_images++] = (struct smp_img_slot_state) {
                        .slot = 1,
                        .version = smp_cbor_slice_str(d->slot1_version),
                        .hash = smp_cbor_slice_make(d->slot1_hash, 32),
                        .bootable = true,
                };
        (void) smp_img_state_rsp_encode(w, &rsp);
}

static void upload_ok(struct core_sim_device *d, struct smp_cbor_writer *w) {
        const struct smp_img_upload_rsp rsp = { .off = d->upload_off };
        (void) smp_img_upload_rsp_encode(w, &rsp);
}

/* A whole upload: the secondary slot now holds the image (its hash TLV,
 * as MCUboot reports it). */
static void upload_complete(struct core_sim_device *d) {
        struct mcuboot_image *img = NULL;

        if (mcuboot_image_parse(d->upload, d->upload_size, &img, NULL) >= 0 && img->sha256_tlv) {
                memcpy(d->slot1_hash, img->sha256_tlv, 32);
                (void) mcuboot_version_format(&img->version, d->slot1_version, sizeof(d->slot1_version));
                d->slot1_full = true;
        }
        mcuboot_image_free(img);
        free(d->upload);
        d->upload = NULL;
        d->upload_size = d->upload_off = 0;
}

/* The first chunk: a new upload, or the one in progress again (Zephyr
 * resumes by the file's SHA-256 and answers with its offset). */
static int upload_begin(struct core_sim_device *d, const struct smp_img_upload_req *req) {
        if (d->upload && req->sha.ptr && req->sha.len == d->upload_sha_len &&
            memcmp(req->sha.ptr, d->upload_sha, req->sha.len) == 0)
                return 1;
        if (!req->has_len || req->len == 0 || req->len > 16u << 20 || req->sha.len > sizeof(d->upload_sha))
                return -EINVAL;
        free(d->upload);
        d->upload = calloc(1, (size_t) req->len);
        if (!d->upload)
                return -ENOMEM;
        d->upload_size = (size_t) req->len;
        d->upload_off = 0;
        d->upload_sha_len = req->sha.len;
        memcpy(d->upload_sha, req->sha.ptr, req->sha.len);
        d->slot1_full = false;
        return 0;
}

static void img_upload(struct core_sim_device *d, const uint8_t *body, size_t len, struct smp_cbor_writer *w) {
        struct smp_img_upload_req req;
        size_t n;
        int r;

        if (d->refuse_upload || smp_img_upload_req_decode(body, len, &req, NULL) < 0)
                return put_error(w, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_HEADER);
        if (req.off == 0) {
                r = upload_begin(d, &req);
                if (r < 0)
                        return put_error(w, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_LENGTH);
                if (r > 0)
                        return upload_ok(d, w);   /* resumed: here is where it was */
        }
        if (!d->upload || req.off != d->upload_off)
                return upload_ok(d, w);           /* a wrong offset: ours */
        n = req.data.ptr ? req.data.len : 0;
        if (n > d->upload_size - d->upload_off)
                return put_error(w, SMP_GROUP_IMAGE, SMP_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN);
        if (n > 0)
                memcpy(d->upload + d->upload_off, req.data.ptr, n);
        d->upload_off += n;
        d->upload_bytes += n;
        upload_ok(d, w);
        if (d->upload_off == d->upload_size)
                upload_complete(d);
}

static void answer(struct core_sim_device *d, const struct smp_frame *f, struct smp_cbor_writer *w) {
        const struct smp_os_params_rsp params = { .buf_size = SIM_BUF_SIZE, .buf_count = SIM_BUF_COUNT };

        if (f->hdr.group == SMP_GROUP_OS && f->hdr.id == SMP_OS_CMD_MCUMGR_PARAMS)
                (void) smp_os_params_rsp_encode(w, &params);
        else if (f->hdr.group == SMP_GROUP_IMAGE && f->hdr.id == SMP_IMG_CMD_STATE && f->hdr.op == SMP_OP_READ)
                img_state(d, w);
        else if (f->hdr.group == SMP_GROUP_IMAGE && f->hdr.id == SMP_IMG_CMD_UPLOAD && f->hdr.op == SMP_OP_WRITE)
                img_upload(d, f->body, f->body_len, w);
        else
                /* OS info, bootloader info, marking, reset: not built in */
                put_error(w, f->hdr.group, SMP_MGMT_ERR_ENOTSUP);
}

/* ---- links ---- */

struct answer {
        struct answer *next;
        uint64_t due_usec;             /* CLOCK_MONOTONIC */
        bool close;                    /* the link goes down instead */
        size_t len;
        uint8_t data[];
};

struct smp_link {
        struct core_sim_device *device;
        sd_event *event;
        struct smp_link_callbacks cb;
        void *userdata;
        struct answer *head, *tail;
        sd_event_source *timer;
        unsigned requests;
        bool delivering;
        bool dead;                     /* closed on the session: answers no more */
        bool owner_closed;             /* close() came during a delivery */
};

struct smp_transport_instance {
        const struct smp_host *host;
};

static void link_free(struct smp_link *l) {
        while (l->head) {
                struct answer *a = l->head;
                l->head = a->next;
                free(a);
        }
        sd_event_source_disable_unref(l->timer);
        l->device->links_open--;
        sd_event_unref(l->event);
        free(l);
}

static void link_arm(struct smp_link *l) {
        if (!l->head || l->dead)
                return;
        (void) sd_event_source_set_time(l->timer, l->head->due_usec);
        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static void deliver(struct smp_link *l, struct answer *a) {
        in_callback = true;
        if (a->close)
                l->cb.closed(-ECONNRESET, l->userdata);
        else
                l->cb.receive(a->data, a->len, l->userdata);
        in_callback = false;
}

/* Delivers what is due; the session may close the link from inside. */
static int on_link_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct smp_link *l = userdata;

        l->delivering = true;
        while (l->head && !l->dead && !l->owner_closed && l->head->due_usec <= usec) {
                struct answer *a = l->head;
                l->head = a->next;
                if (!l->head)
                        l->tail = NULL;
                if (a->close)
                        l->dead = true;   /* nothing after the close */
                deliver(l, a);
                free(a);
        }
        l->delivering = false;
        if (l->owner_closed)
                link_free(l);
        else
                link_arm(l);
        return 0;
}

static int queue_answer(struct smp_link *l, const uint8_t *data, size_t len, bool close) {
        struct answer *a = calloc(1, sizeof(*a) + len);
        uint64_t now;

        if (!a)
                return -ENOMEM;
        (void) sd_event_now(l->event, CLOCK_MONOTONIC, &now);
        a->due_usec = now + l->device->answer_delay_usec;
        a->close = close;
        a->len = len;
        if (len > 0)
                memcpy(a->data, data, len);
        if (l->tail)
                l->tail->next = a;
        else
                l->head = a;
        l->tail = a;
        link_arm(l);
        return 0;
}

static int handle_frame(struct smp_link *l, const struct smp_frame *f) {
        uint8_t body[SIM_BODY_MAX], frame[SMP_HEADER_SIZE + SIM_BODY_MAX];
        struct smp_cbor_writer w;
        struct smp_header rsp = f->hdr;
        int n;

        l->requests++;
        l->device->requests++;
        if (l->device->drop_link_at && l->requests == l->device->drop_link_at)
                return queue_answer(l, NULL, 0, true);
        smp_cbor_writer_init(&w, body, sizeof(body));
        answer(l->device, f, &w);
        if (smp_cbor_writer_finish(&w) < 0)
                return -ENOBUFS;
        rsp.op = (uint8_t) smp_op_response_for(f->hdr.op);
        n = smp_frame_build(&rsp, body, w.len, frame, sizeof(frame));
        if (n < 0)
                return n;
        return queue_answer(l, frame, (size_t) n, false);
}

static int sim_send(struct smp_link *l, const uint8_t *data, size_t len) {
        struct smp_frame f;
        size_t offset = 0;
        int r;

        if (l->dead)
                return -ENOTCONN;
        if (len > SIM_MTU)
                return -EMSGSIZE;
        while ((r = smp_packet_next(data, len, &offset, &f)) > 0) {
                r = handle_frame(l, &f);
                if (r < 0)
                        return r;
        }
        return r;
}

static int sim_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct core_sim_device *d = core_sim_device(smp_conn_get_port(conn));
        struct smp_link *l;
        int r;

        if (d->refuse_open)
                return -ECONNREFUSED;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        r = sd_event_add_time(event, &l->timer, CLOCK_MONOTONIC, 0, 0, on_link_timer, l);
        if (r < 0) {
                free(l);
                return r;
        }
        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
        l->device = d;
        l->event = sd_event_ref(event);
        l->cb = *cb;
        l->userdata = userdata;
        d->links_opened++;
        d->links_open++;
        *ret = l;
        return 0;
}

static void sim_close(struct smp_link *l) {
        if (l->delivering) {
                /* inside our own delivery: the timer callback frees it */
                l->owner_closed = true;
                return;
        }
        link_free(l);
}

static void sim_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) { .mtu = SIM_MTU };
}

static void sim_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = (struct smp_link_stats) {};
}

static int sim_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        struct smp_transport_instance *i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->host = host;
        *ret = i;
        return 0;
}

static void sim_instance_free(struct smp_transport_instance *instance) {
        free(instance);
}

static const struct smp_conn_syntax sim_syntax = {
        .address = SMP_CONN_ADDRESS_INET,
};

#define SIM_TRANSPORT(scheme)                                                   \
        {                                                                       \
                .abi_version = SMP_TRANSPORT_ABI_VERSION,                       \
                .struct_size = sizeof(struct smp_transport),                    \
                .name = scheme,                                                 \
                .description = "daemon-core test devices, in process",          \
                .conn_syntax = &sim_syntax,                                     \
                .instance_new = sim_instance_new,                               \
                .instance_free = sim_instance_free,                             \
                .open = sim_open,                                               \
                .close = sim_close,                                             \
                .send = sim_send,                                               \
                .get_info = sim_get_info,                                       \
                .get_stats = sim_get_stats,                                     \
        }

const struct smp_transport core_sim_udp = SIM_TRANSPORT("udp");
const struct smp_transport core_sim_serial = SIM_TRANSPORT("serial");
