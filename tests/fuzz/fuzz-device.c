/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A device made of fuzzer bytes and a fake clock; see fuzz-device.h. */
#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "fuzz-device.h"
#include "smpgw/mcuboot-image.h"
#include "smpgw/smp-context.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-img.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-upload.h"
#include "util.h"

#define PENDING_MAX 64u
#define PACKET_MAX (SMP_FRAME_MAX + 16u)
/* Time that passes on its own while the device has nothing to answer:
 * 100 ms, doubled at each step nothing happens, up to 5 s (60 s once the
 * device is silent for good), so that waiting out a 40 s timeout takes a
 * dozen turns of the loop, not four hundred. */
#define IDLE_STEP_USEC (100u * 1000u)
#define IDLE_STEP_MAX_USEC (5u * 1000000u)
#define SILENT_STEP_MAX_USEC (60u * 1000000u)
/* Where the fake clock starts: far beyond any real CLOCK_MONOTONIC, so
 * that the timerfd sd-event arms with fake deadlines never fires. */
#define FAKE_EPOCH_USEC (1000000000ull * 1000000ull)

/* ---- the fake clock ----
 *
 * clock_gettime() is defined here, in the program, so it takes the place
 * of libc's for libsystemd (sd-event's now()) and libsmpgw (the upload's
 * rate clock) too.  The fake time is for them only, and only while a
 * device runs on this thread: libFuzzer reads the clock too, also from
 * its SIGALRM handler on this very thread in the middle of an input
 * (-timeout), and must see real time there, or it takes the fake for a
 * hang.  So the caller decides: its return address must lie in the code
 * of libsystemd or libsmpgw (found once with dl_iterate_phdr()). */

#define FAKE_CALLERS_MAX 8u

struct code_range {
        uintptr_t start, end;
};

static struct code_range fake_callers[FAKE_CALLERS_MAX];
static size_t n_fake_callers;
static _Thread_local bool fake_clock_on;
static _Thread_local uint64_t fake_now_usec;

static int find_fake_callers(struct dl_phdr_info *info, size_t size, void *userdata) {
        if (!info->dlpi_name || (!strstr(info->dlpi_name, "/libsystemd.so") && !strstr(info->dlpi_name, "/libsmpgw.so")))
                return 0;
        for (size_t i = 0; i < info->dlpi_phnum && n_fake_callers < FAKE_CALLERS_MAX; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X))
                        fake_callers[n_fake_callers++] = (struct code_range) {
                                .start = info->dlpi_addr + ph->p_vaddr,
                                .end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz,
                        };
        }
        return 0;
}

static bool fake_caller(uintptr_t address) {
        for (size_t i = 0; i < n_fake_callers; i++)
                if (address >= fake_callers[i].start && address < fake_callers[i].end)
                        return true;
        return false;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
        static int (*real)(clockid_t, struct timespec *);

        if (fake_clock_on && fake_caller((uintptr_t) __builtin_return_address(0))) {
                uint64_t t = fake_now_usec;
                ts->tv_sec = (time_t) (t / 1000000u);
                ts->tv_nsec = (long) (t % 1000000u * 1000u);
                return 0;
        }
        if (!real) {
                real = (int (*)(clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
                if (!real)
                        abort();
        }
        return real(clock, ts);
}

/* ---- the loop's kernel side, while the clock is fake ----
 *
 * With fake time, the timerfds sd-event arms hold fake deadlines that
 * never come in real time, and they are all the loop's fds (asserted in
 * epoll_ctl()): arming one changes nothing, and a wait without a timeout
 * finds nothing ready.  Skipping those system calls (some sixty an input,
 * each costly in a VM) doubles the rate of fuzz-update and fuzz-upload;
 * the loop itself runs as before: which timers are due is the fake
 * clock's, read in sd-event's process_timer(). */

#define FAKE_TIMERFDS_MAX 4u

/* The loop's, kept with it from one input to the next (event_loop()). */
static _Thread_local int fake_timerfds[FAKE_TIMERFDS_MAX];
static _Thread_local size_t n_fake_timerfds;

static bool fake_kernel(uintptr_t caller) {
        return fake_clock_on && fake_caller(caller);
}

int timerfd_create(int clock, int flags) {
        static int (*real)(int, int);
        if (!real && !(real = (int (*)(int, int)) dlsym(RTLD_NEXT, "timerfd_create")))
                abort();
        int fd = real(clock, flags);
        if (fd >= 0 && fake_kernel((uintptr_t) __builtin_return_address(0))) {
                assert(n_fake_timerfds < FAKE_TIMERFDS_MAX);
                fake_timerfds[n_fake_timerfds++] = fd;
        }
        return fd;
}

int timerfd_settime(int fd, int flags, const struct itimerspec *value, struct itimerspec *old) {
        static int (*real)(int, int, const struct itimerspec *, struct itimerspec *);
        if (fake_kernel((uintptr_t) __builtin_return_address(0))) {
                if (old)
                        *old = (struct itimerspec) {};
                return 0;
        }
        if (!real && !(real = (int (*)(int, int, const struct itimerspec *, struct itimerspec *)) dlsym(
                               RTLD_NEXT, "timerfd_settime")))
                abort();
        return real(fd, flags, value, old);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
        static int (*real)(int, int, int, struct epoll_event *);
        if (op == EPOLL_CTL_ADD && fake_kernel((uintptr_t) __builtin_return_address(0))) {
                bool timer = false;
                for (size_t i = 0; i < n_fake_timerfds; i++)
                        timer = timer || fake_timerfds[i] == fd;
                if (!timer) {
                        fprintf(stderr,
                                "fd %d in the fuzz device's loop is not a timerfd: "
                                "epoll_wait() may no longer be skipped\n",
                                fd);
                        abort();
                }
        }
        if (!real && !(real = (int (*)(int, int, int, struct epoll_event *)) dlsym(RTLD_NEXT, "epoll_ctl")))
                abort();
        return real(epfd, op, fd, event);
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
        static int (*real)(int, struct epoll_event *, int, int);
        /* drain() only ever polls (timeout 0). */
        if (timeout == 0 && fake_kernel((uintptr_t) __builtin_return_address(0)))
                return 0;
        if (!real && !(real = (int (*)(int, struct epoll_event *, int, int)) dlsym(RTLD_NEXT, "epoll_wait")))
                abort();
        return real(epfd, events, max, timeout);
}

/* ---- the device ---- */

/* A request the device has yet to answer: its header, and for an image
 * upload what device_body() answers from (decoded once, in t_send()). */
struct pending_request {
        struct smp_header hdr;
        bool upload;
        uint64_t upload_off, upload_len;
        size_t upload_data_len;
        bool upload_has_len;
};

struct smp_link {
        struct fuzz_device *dev;
        struct smp_transport_instance *instance;
        struct smp_link_callbacks cb;
        void *userdata;
};

struct smp_transport_instance {
        unsigned links;
};

struct fuzz_device {
        const uint8_t *data;
        size_t size, pos;
        struct fuzz_device_config config;

        sd_event *event; /* event_loop()'s */
        struct smp_session *session;
        struct smp_link *link;
        struct smp_link_info info;
        uint8_t new_hash[32];

        struct pending_request pending[PENDING_MAX];
        size_t n_pending;

        uint8_t *last;          /* the last packet delivered */
        size_t last_len;

        unsigned eagain;        /* sends left to refuse with -EAGAIN */
        bool writable_owed;
        int send_error;         /* the next send fails so */
        bool close_in_send;
        unsigned open_failures;

        fuzz_request_fn observer;
        void *observer_userdata;
        fuzz_cancel_fn cancel;
        void *cancel_userdata;
};

/* The one device running on this thread: transport callbacks find it so,
 * a transport instance being the context's, not the input's. */
static _Thread_local struct fuzz_device *current;

static uint8_t in_u8(struct fuzz_device *d) {
        return d->pos < d->size ? d->data[d->pos++] : 0;
}

static uint16_t in_u16(struct fuzz_device *d) {
        uint16_t lo = in_u8(d);
        return (uint16_t) (lo | in_u8(d) << 8);
}

/* Up to n bytes of input, in place. */
static const uint8_t *in_bytes(struct fuzz_device *d, size_t n, size_t *ret_n) {
        const uint8_t *p = d->data + d->pos;
        *ret_n = MIN(n, d->size - d->pos);
        d->pos += *ret_n;
        return p;
}

static void pending_remove(struct fuzz_device *d, size_t i) {
        memmove(&d->pending[i], &d->pending[i + 1], (d->n_pending - i - 1) * sizeof(d->pending[0]));
        d->n_pending--;
}

static void pending_clear(struct fuzz_device *d) {
        while (d->n_pending > 0)
                pending_remove(d, d->n_pending - 1);
}

/* ---- the transport ---- */

static int t_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        *ret = calloc(1, sizeof(**ret));
        return *ret ? 0 : -ENOMEM;
}

static void t_instance_free(struct smp_transport_instance *i) {
        assert(i->links == 0);
        free(i);
}

static int t_open(struct smp_transport_instance *i, sd_event *event, const struct smp_conn *conn,
                  const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct fuzz_device *d = current;

        assert(d && event == d->event);
        /* One link at a time: a session closes before it reopens. */
        assert(!d->link);
        if (d->open_failures > 0) {
                d->open_failures--;
                return -ECONNREFUSED;
        }
        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->dev = d;
        l->instance = i;
        l->cb = *cb;
        l->userdata = userdata;
        d->link = l;
        i->links++;
        *ret = l;
        return 0;
}

static void t_close(struct smp_link *l) {
        struct fuzz_device *d = l->dev;

        assert(d->link == l);
        /* Answers in flight go with the link. */
        pending_clear(d);
        d->link = NULL;
        d->writable_owed = false;
        l->instance->links--;
        free(l);
}

static int t_send(struct smp_link *l, const uint8_t *packet, size_t len) {
        struct fuzz_device *d = l->dev;
        struct smp_frame f;
        size_t off = 0;
        int r;

        assert(d->link == l);
        if (d->send_error) {
                int e = d->send_error;
                d->send_error = 0;
                return e;
        }
        if (d->eagain > 0) {
                d->eagain--;
                d->writable_owed = true;
                return -EAGAIN;
        }
        if (!d->info.fragments && len > d->info.mtu)
                return -EMSGSIZE;
        /* What a session sends is well-formed: requests, whole frames. */
        while ((r = smp_packet_next(packet, len, &off, &f)) > 0) {
                assert(smp_op_is_request(f.hdr.op));
                assert(f.body_len == f.hdr.len);
                struct smp_img_upload_req req;
                bool upload = f.hdr.group == SMP_GROUP_IMAGE && f.hdr.id == SMP_IMG_CMD_UPLOAD;
                /* An upload request the session sends decodes. */
                if (upload)
                        assert(smp_img_upload_req_decode(f.body, f.body_len, &req, NULL) == 0);
                if (d->observer)
                        d->observer(&f, upload ? &req : NULL, d->observer_userdata);
                if (d->n_pending == PENDING_MAX)
                        pending_remove(d, 0); /* the device's queue overflows */
                struct pending_request *p = &d->pending[d->n_pending];
                *p = (struct pending_request) { .hdr = f.hdr, .upload = upload };
                if (upload) {
                        p->upload_off = req.off;
                        p->upload_len = req.len;
                        p->upload_data_len = req.data.len;
                        p->upload_has_len = req.has_len;
                }
                d->n_pending++;
        }
        assert(r == 0 && off == len);
        if (d->close_in_send) {
                /* As BLE does when the write fd hangs up under send(). */
                d->close_in_send = false;
                l->cb.closed(-ECONNRESET, l->userdata);
        }
        return 0;
}

static void t_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = l->dev->info;
}

static void t_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = (struct smp_link_stats) {};
}

static const struct smp_conn_syntax fuzz_syntax = {
        .address = SMP_CONN_ADDRESS_DEV_PATH,
};

static const struct smp_transport fuzz_transport = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "fuzz",
        .description = "a device made of fuzzer bytes",
        .conn_syntax = &fuzz_syntax,
        .instance_new = t_instance_new,
        .instance_free = t_instance_free,
        .open = t_open,
        .close = t_close,
        .send = t_send,
        .get_info = t_get_info,
        .get_stats = t_get_stats,
};

/* ---- delivering ---- */

/* Hands a packet to the session: whole, or in pieces on a stream link. */
static void deliver(struct fuzz_device *d, const uint8_t *packet, size_t len) {
        struct smp_link *l = d->link;

        if (!l || len == 0)
                return;
        if (packet != d->last) {
                uint8_t *copy = malloc(len);
                assert(copy);
                memcpy(copy, packet, len);
                free(d->last);
                d->last = copy;
                d->last_len = len;
                packet = copy;
        }
        size_t piece = d->info.stream && d->config.piece ? d->config.piece : len;
        for (size_t off = 0; off < len; off += piece) {
                /* A callback may have closed (and reopened) the link. */
                if (d->link != l)
                        return;
                l->cb.receive(packet + off, MIN(piece, len - off), l->userdata);
        }
}

/* An answer frame to request p with body b, into out; its length. */
static size_t answer_frame(const struct pending_request *p, uint8_t version_mode, int len_delta,
                           const uint8_t *body, size_t n, uint8_t *out) {
        struct smp_header h = {
                .op = (uint8_t) (p->hdr.op + 1),
                .version = version_mode == 0 ? p->hdr.version : (uint8_t) (version_mode - 1),
                .len = (uint16_t) n,
                .group = p->hdr.group,
                .seq = p->hdr.seq,
                .id = p->hdr.id,
        };
        smp_header_encode(&h, out);
        memcpy(out + SMP_HEADER_SIZE, body, n);
        if (len_delta) {
                /* Lie about the length: the frame is cut short or runs on. */
                uint16_t lie = (uint16_t) ((int) n + len_delta);
                out[2] = (uint8_t) (lie >> 8);
                out[3] = (uint8_t) lie;
        }
        return SMP_HEADER_SIZE + n;
}

/* The state list a device would answer, as the input describes it: slot 0
 * and maybe slot 1, each holding the new image (by hash) or an old one. */
static int state_body(struct fuzz_device *d, struct smp_cbor_writer *w) {
        static const uint8_t old_hash[32] = { 0x01, 0xd0 };
        static const uint8_t older_hash[32] = { 0x02, 0xd0 };
        uint8_t a = in_u8(d), b = in_u8(d);
        struct smp_img_state_rsp *rsp = calloc(1, sizeof(*rsp));
        int r;

        assert(rsp);
        rsp->frugal = b & 8;
        rsp->images[0] = (struct smp_img_slot_state) {
                .slot = 0,
                .version = smp_cbor_slice_make((const uint8_t *) "1.0.0", 5),
                .hash = smp_cbor_slice_make(a & 1 ? d->new_hash : old_hash, 32),
                .bootable = true,
                .active = !(a & 2),
                .confirmed = a & 4,
                .pending = a & 8,
                .permanent = a & 16,
        };
        rsp->n_images = 1;
        if (a & 32) {
                rsp->images[1] = (struct smp_img_slot_state) {
                        .has_image = b & 16,
                        .image = b & 16 ? (b >> 5) & 1 : 0,
                        .slot = 1,
                        .version = smp_cbor_slice_make((const uint8_t *) "2.0.0+7", 7),
                        .hash = smp_cbor_slice_make(a & 64 ? d->new_hash : a & 128 ? older_hash : old_hash, 32),
                        .bootable = true,
                        .pending = b & 1,
                        .confirmed = b & 2,
                        .active = b & 4,
                        .permanent = b & 64,
                };
                rsp->n_images = 2;
        }
        r = smp_img_state_rsp_encode(w, rsp);
        free(rsp);
        return r;
}

/* What a device would answer to request p, steered by the input: a
 * plausible body for the command, now and then an error. */
static size_t device_body(struct fuzz_device *d, const struct pending_request *p, uint8_t *body, size_t cap) {
        struct smp_cbor_writer w;
        uint8_t how = in_u8(d);

        smp_cbor_writer_init(&w, body, cap);
        if ((how & 0xf0) == 0xf0) {
                /* An SMP error, the old way or the new. */
                if (how & 1)
                        (void) smp_status_encode_v2(&w, p->hdr.group, in_u8(d) % 16);
                else
                        (void) smp_status_encode_v1(&w, in_u8(d) % 16, how & 2 ? "fuzz" : NULL);
        } else if (p->upload) {
                struct smp_img_upload_rsp rsp = {};
                switch (how % 8) {
                case 4: /* the same offset again: not taken */
                        rsp.off = p->upload_off;
                        break;
                case 5: /* all there, compared with the sha (or not) */
                        rsp.off = p->upload_has_len ? p->upload_len : p->upload_off + p->upload_data_len;
                        rsp.has_match = how & 8;
                        rsp.match = how & 16;
                        break;
                case 6: /* somewhere else: a device that rebooted, a resume */
                        rsp.off = (uint64_t) in_u16(d) * 16u;
                        break;
                default:
                        rsp.off = p->upload_off + p->upload_data_len;
                        break;
                }
                (void) smp_img_upload_rsp_encode(&w, &rsp);
        } else if (p->hdr.group == SMP_GROUP_IMAGE && p->hdr.id == SMP_IMG_CMD_STATE)
                (void) state_body(d, &w);
        else if (p->hdr.group == SMP_GROUP_OS && p->hdr.id == SMP_OS_CMD_MCUMGR_PARAMS) {
                const struct smp_os_params_rsp rsp = {
                        .buf_size = 64u + (uint32_t) in_u8(d) * 16u,
                        .buf_count = 1u + in_u8(d) % 8u,
                };
                (void) smp_os_params_rsp_encode(&w, &rsp);
        } else if (how & 1)
                (void) smp_status_encode_v1(&w, 0, NULL);
        else {
                (void) smp_cbor_put_map(&w, 0);
                (void) smp_cbor_put_end(&w);
        }
        int n = smp_cbor_writer_finish(&w);
        return n > 0 ? (size_t) n : 0;
}

static uint8_t packet[PACKET_MAX], body[SMP_FRAME_MAX];

/* ---- actions ---- */

static void act_device_answer(struct fuzz_device *d) {
        size_t k = in_u8(d) % d->n_pending;
        struct pending_request p = d->pending[k];

        pending_remove(d, k);
        size_t n = device_body(d, &p, body, sizeof(body));
        deliver(d, packet, answer_frame(&p, 0, 0, body, n, packet));
}

static void act_fuzz_answer(struct fuzz_device *d, uint8_t op) {
        size_t k = in_u8(d) % d->n_pending;
        size_t want = in_u8(d), n;
        if (want == 255)
                want = in_u16(d);
        const uint8_t *b = in_bytes(d, want, &n);
        uint8_t version_mode = (op >> 4) & 3; /* echo, v1, v2, 2 (not a version smpgw knows) */
        int delta = op & 0x40 ? (int) (int8_t) in_u8(d) : 0;
        bool keep = op & 0x80;

        size_t len = answer_frame(&d->pending[k], version_mode, delta, b, n, packet);
        if (!keep)
                pending_remove(d, k);
        deliver(d, packet, len);
}

static void act_concat(struct fuzz_device *d, uint8_t op) {
        if (d->n_pending < 2) {
                act_device_answer(d);
                return;
        }
        struct pending_request p[2] = { d->pending[0], d->pending[1] };
        pending_remove(d, 1);
        pending_remove(d, 0);
        size_t len = 0;
        for (int i = 0; i < 2; i++) {
                const struct pending_request *q = &p[op & 0x10 ? 1 - i : i];
                size_t n = device_body(d, q, body, sizeof(body));
                if (len + SMP_HEADER_SIZE + n <= sizeof(packet))
                        len += answer_frame(q, 0, 0, body, n, packet + len);
        }
        deliver(d, packet, len);
}

static void close_link(struct fuzz_device *d) {
        struct smp_link *l = d->link;
        if (l)
                l->cb.closed(-ECONNRESET, l->userdata); /* the session closes it */
}

static void advance(struct fuzz_device *d, uint64_t usec) {
        fake_now_usec += usec;
}

/* Runs what is due now, including what that makes due. */
static void drain(struct fuzz_device *d) {
        for (unsigned i = 0; i < 100000; i++) {
                int r = sd_event_run(d->event, 0);
                assert(r >= 0);
                if (r == 0)
                        return;
        }
        fprintf(stderr, "the event loop never settles\n");
        abort();
}

static void act(struct fuzz_device *d) {
        uint8_t op = in_u8(d);

        switch (op & 0x0f) {
        case 0 ... 3:
                act_device_answer(d);
                break;
        case 4:
        case 5:
                act_fuzz_answer(d, op);
                break;
        case 6:
                pending_remove(d, in_u8(d) % d->n_pending);
                break;
        case 7:
                if (op & 0x80 && d->cancel) {
                        fuzz_cancel_fn fn = d->cancel;
                        d->cancel = NULL;
                        fn(d->cancel_userdata);
                } else if (d->last_len)
                        deliver(d, d->last, d->last_len);
                break;
        case 8: {
                size_t n;
                const uint8_t *b = in_bytes(d, in_u8(d), &n);
                memcpy(packet, b, n);
                deliver(d, packet, n);
                break;
        }
        case 9:
                advance(d, 1ull << (in_u8(d) % 27));
                break;
        case 10:
                close_link(d);
                break;
        case 11:
                d->eagain = 1 + in_u8(d) % 4;
                break;
        case 12: {
                static const int errors[] = { -EIO, -EMSGSIZE, -ENOTCONN, -ENOBUFS };
                d->send_error = errors[in_u8(d) % ELEMENTSOF(errors)];
                break;
        }
        case 13:
                d->close_in_send = true;
                break;
        case 14:
                d->open_failures = 1 + in_u8(d) % 3;
                break;
        case 15:
                act_concat(d, op);
                break;
        }
}

void fuzz_device_run(struct fuzz_device *d, const bool *done) {
        uint64_t idle = 0, step = IDLE_STEP_USEC;

        for (;;) {
                drain(d);
                if (*done)
                        return;
                if (d->writable_owed && d->link) {
                        d->writable_owed = false;
                        if (d->link->cb.writable)
                                d->link->cb.writable(d->link->userdata);
                        continue;
                }
                if (d->n_pending > 0 && d->pos < d->size) {
                        idle = 0;
                        step = IDLE_STEP_USEC;
                        act(d);
                        continue;
                }
                /* Nothing to answer, or nothing more to say: time passes. */
                if (d->pos >= d->size) {
                        pending_clear(d);
                        d->eagain = 0;
                        d->send_error = 0;
                        d->close_in_send = false;
                        d->open_failures = 0;
                }
                advance(d, step);
                idle += step;
                step = MIN(2 * step, d->pos < d->size ? (uint64_t) IDLE_STEP_MAX_USEC : (uint64_t) SILENT_STEP_MAX_USEC);
                if (idle > FUZZ_DEVICE_PATIENCE_USEC) {
                        fprintf(stderr, "still not done after %llu s without an answer\n",
                                (unsigned long long) (idle / 1000000u));
                        abort();
                }
        }
}

/* ---- setup ---- */

/* The event loop, one for all inputs: a new one per input cost an epoll
 * and a timerfd or two to create and close, a tenth of fuzz-upload's
 * time.  An input leaves it as it found it: every source it had was the
 * session's (or the procedure's), and goes with it. */
static sd_event *event_loop(void) {
        static sd_event *event;
        if (!event && sd_event_new(&event) < 0)
                abort();
        return event;
}

static struct smp_context *context(void) {
        static struct smp_context *ctx;
        if (!ctx && (smp_context_new(&ctx) < 0 || smp_context_set_plugin_path(ctx, "/nonexistent/smpgw-fuzz") < 0 ||
                     smp_context_add_transport(ctx, &fuzz_transport) < 0))
                abort();
        return ctx;
}

struct fuzz_device *fuzz_device_new(const uint8_t *data, size_t size) {
        struct fuzz_device *d;
        int r;

        if (size < FUZZ_DEVICE_CONFIG_SIZE)
                return NULL;
        assert(!current);
        d = calloc(1, sizeof(*d));
        assert(d);
        memcpy(&d->config, data, FUZZ_DEVICE_CONFIG_SIZE);
        d->data = data;
        d->size = size;
        d->pos = FUZZ_DEVICE_CONFIG_SIZE;
        const struct fuzz_device_config *c = &d->config;
        d->info = (struct smp_link_info) {
                .mtu = MAX((size_t) fuzz_le16(c->mtu), (size_t) 32),
                .fragments = c->flags & FUZZ_LINK_FRAGMENTS,
                .stream = c->flags & FUZZ_LINK_STREAM,
                .buffer_overhead = c->flags & FUZZ_LINK_BUFFER_OVERHEAD ? 4 : 0,
                .device_line_buffers = c->flags & FUZZ_LINK_BUFFER_OVERHEAD, /* both serial's */
        };

        if (n_fake_callers == 0) {
                dl_iterate_phdr(find_fake_callers, NULL);
                /* libsystemd and libsmpgw at least, or nothing is faked. */
                if (n_fake_callers < 2)
                        abort();
        }
        fake_now_usec = FAKE_EPOCH_USEC;
        fake_clock_on = true;
        current = d;
        d->event = event_loop();
        /* The loop still holds the time the last input ended at: a turn
         * with nothing to run reads the clock again, so that this input's
         * timers start from where a new loop's would. */
        r = sd_event_run(d->event, 0);
        assert(r == 0);
        /* sd-event reads the fake clock, or timers would be the wall's. */
        uint64_t t;
        assert(sd_event_now(d->event, CLOCK_MONOTONIC, &t) >= 0 && t == FAKE_EPOCH_USEC);
        r = smp_session_open(context(), d->event, "fuzz:/dev/fuzz", &d->session);
        assert(r >= 0);
        smp_session_set_timeout(d->session, 250000u * (1u + (c->session & 15)));
        smp_session_set_retries(d->session, (c->session >> 4) % 4);
        if (c->flags & FUZZ_LINK_START_V1)
                smp_session_set_version(d->session, SMP_VERSION_1);
        return d;
}

const struct fuzz_device_config *fuzz_device_get_config(const struct fuzz_device *d) {
        return &d->config;
}

struct smp_session *fuzz_device_get_session(struct fuzz_device *d) {
        return d->session;
}

void fuzz_device_set_observer(struct fuzz_device *d, fuzz_request_fn fn, void *userdata) {
        d->observer = fn;
        d->observer_userdata = userdata;
}

void fuzz_device_set_cancel(struct fuzz_device *d, fuzz_cancel_fn fn, void *userdata) {
        d->cancel = fn;
        d->cancel_userdata = userdata;
}

void fuzz_device_set_new_hash(struct fuzz_device *d, const uint8_t hash[32]) {
        memcpy(d->new_hash, hash, 32);
}

uint64_t fuzz_device_elapsed(const struct fuzz_device *d) {
        return fake_now_usec - FAKE_EPOCH_USEC;
}

void fuzz_device_free(struct fuzz_device *d) {
        if (!d)
                return;
        smp_session_free(d->session);
        assert(!d->link);
        pending_clear(d);
        free(d->last);
        free(d);
        current = NULL;
        fake_clock_on = false;
}

/* The SHA-256 of a file fuzz_image() made: hashed once per image, not at
 * every first chunk (a file is the same bytes for the whole run). */
static const uint8_t *file_sha256(const uint8_t *file, size_t len) {
        static struct {
                const uint8_t *file;
                size_t len;
                uint8_t sha[32];
        } known[FUZZ_IMAGE_SIZES];
        size_t i;

        for (i = 0; i < ELEMENTSOF(known) && known[i].file; i++)
                if (known[i].file == file && known[i].len == len)
                        return known[i].sha;
        if (i == ELEMENTSOF(known))
                i = 0; /* not one of fuzz_image()'s: any slot will do */
        known[i].file = file;
        known[i].len = len;
        smp_upload_file_sha256(file, len, known[i].sha);
        return known[i].sha;
}

void fuzz_check_upload_request(const struct smp_frame *f, const struct smp_img_upload_req *req, const uint8_t *file,
                               size_t len) {
        if (!req)
                return;
        assert(f->hdr.op == SMP_OP_WRITE);
        assert(smp_cbor_slice_present(req->data));
        assert(req->off <= len && req->data.len <= len - req->off);
        assert(req->data.len == 0 || memcmp(req->data.ptr, file + req->off, req->data.len) == 0);
        if (req->off == 0) {
                assert(req->has_len && req->len == len);
                assert(req->sha.len == 32 && memcmp(req->sha.ptr, file_sha256(file, len), 32) == 0);
        } else
                assert(!req->has_len && !smp_cbor_slice_present(req->sha));
}

const uint8_t *fuzz_image(unsigned index, size_t *ret_len, const uint8_t **ret_hash) {
        static const size_t body_sizes[FUZZ_IMAGE_SIZES] = { 100, 300, 700, 1500, 3000, 6000, 12000, 40000 };
        static uint8_t *images[FUZZ_IMAGE_SIZES];
        static size_t lens[FUZZ_IMAGE_SIZES];
        static uint8_t hashes[FUZZ_IMAGE_SIZES][32];

        index %= FUZZ_IMAGE_SIZES;
        if (!images[index]) {
                uint8_t *b = malloc(body_sizes[index]);
                struct mcuboot_image *img = NULL;
                assert(b);
                /* Deterministic bytes: the same image, and hash, every run. */
                for (size_t i = 0; i < body_sizes[index]; i++)
                        b[i] = (uint8_t) (i * 31u + index);
                const struct mcuboot_build_params p = {
                        .version = { .major = 2, .build = 7 },
                        .body = b,
                        .body_size = body_sizes[index],
                };
                if (mcuboot_image_build(&p, &images[index], &lens[index]) < 0 ||
                    mcuboot_image_parse(images[index], lens[index], &img, NULL) < 0 || !img->sha256_tlv)
                        abort();
                memcpy(hashes[index], img->sha256_tlv, 32);
                mcuboot_image_free(img);
                free(b);
        }
        *ret_len = lens[index];
        *ret_hash = hashes[index];
        return images[index];
}
