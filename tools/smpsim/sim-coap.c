/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP over CoAP ("OMP", newtmgr's OIC transport, Mynewt's oicmgr) for the
 * simulated devices: one libcoap context, one UDP endpoint per device,
 * the resource /omgr answering PUT.
 *
 * A device answers after its emulated link latency and processing time,
 * or never (a fault ate the request), so every request gets a separate
 * response: the handler registers a libcoap async with no delay (libcoap
 * sends the empty ACK), hands the SMP frame to the device with a cookie
 * naming a pending slot, and returns.  When the device's answer comes back
 * through sim_coap_send(), the slot gets the OMP payload and the async is
 * triggered: libcoap calls the handler again with a copy of the request,
 * and that second call fills in the response (Block2 if it is large).
 * Slots whose device never answers are dropped after PENDING_TIMEOUT_US,
 * so a silent device cannot make memory grow.
 *
 * libcoap runs inside the simulator's sd-event loop: its epoll fd (which
 * also holds its internal timerfd for retransmissions and async delays)
 * is one io source calling coap_io_process(COAP_IO_NO_WAIT), as in
 * "Method Two" of man coap_io.  A one-shot "kick" timer runs the same
 * call right after an async is triggered from outside libcoap, so the
 * answer goes out at once whether or not the trigger re-armed libcoap's
 * own timer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <coap3/coap.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"
#include "sim-coap.h"
#include "sim-udp.h"
#include "util.h"

/* How long a request may wait for its device's answer.  Longer than any
 * emulated latency, slow fault or swap; a gateway gave up long before. */
#define PENDING_TIMEOUT_US (60ULL * 1000000ULL)
/* How often expired requests are looked for. */
#define EXPIRE_INTERVAL_US (5ULL * 1000000ULL)
/* Requests one device may have waiting: far above any netbuf count, so
 * only a flood hits it (answered 5.03 like a busy server). */
#define PENDING_PER_DEVICE_MAX 64u
#define SLOT_NONE UINT32_MAX

struct pending {
        bool used;
        bool answered;
        uint32_t gen;              /* bumped on every release: stale cookies miss */
        uint32_t next_free;
        unsigned dev;
        coap_session_t *session;   /* our own reference */
        coap_async_t *async;       /* owned by libcoap, freed by it or by us */
        uint64_t deadline_us;
        coap_pdu_code_t code;
        uint8_t *answer;           /* OMP payload, owned */
        size_t answer_len;
};

struct sim_coap {
        struct sim *sim;
        coap_context_t *ctx;
        sd_event_source *io_source;
        sd_event_source *kick_source;
        sd_event_source *expire_source;
        uint16_t port0;

        struct pending *slots;
        uint32_t n_slots;
        uint32_t free_head;
        uint16_t *dev_pending;     /* per device */

        uint8_t frame[SMP_FRAME_MAX];
};

/* libcoap's log handler has no user pointer; there is one simulator. */
static struct sim *log_sim;

static uint64_t cookie_of(const struct sim_coap *c, const struct pending *p) {
        return ((uint64_t) p->gen << 32) | (uint64_t) (p - c->slots);
}

static struct pending *pending_by_cookie(struct sim_coap *c, uint64_t cookie) {
        uint32_t i = (uint32_t) cookie;
        if (i >= c->n_slots)
                return NULL;
        struct pending *p = &c->slots[i];
        if (!p->used || p->gen != (uint32_t) (cookie >> 32))
                return NULL;
        return p;
}

static struct pending *pending_new(struct sim_coap *c, unsigned dev) {
        if (c->dev_pending[dev] >= PENDING_PER_DEVICE_MAX)
                return NULL;
        if (c->free_head == SLOT_NONE) {
                /* Bounded by the per-device limit, so this cannot run away. */
                uint32_t n = c->n_slots ? c->n_slots * 2 : 64;
                struct pending *s = reallocarray(c->slots, n, sizeof(*s));
                if (!s)
                        return NULL;
                memset(s + c->n_slots, 0, (size_t) (n - c->n_slots) * sizeof(*s));
                for (uint32_t i = n; i-- > c->n_slots;) {
                        s[i].next_free = c->free_head;
                        s[i].gen = 1;
                        c->free_head = i;
                }
                c->slots = s;
                c->n_slots = n;
        }
        struct pending *p = &c->slots[c->free_head];
        c->free_head = p->next_free;
        p->used = true;
        p->answered = false;
        p->dev = dev;
        p->deadline_us = sim_now_us(c->sim) + PENDING_TIMEOUT_US;
        c->dev_pending[dev]++;
        return p;
}

/* Forgets a slot.  The async must already be gone (answered by libcoap,
 * or freed by the caller). */
static void pending_release(struct sim_coap *c, struct pending *p) {
        free(p->answer);
        p->answer = NULL;
        p->answer_len = 0;
        if (p->session)
                coap_session_release(p->session);
        p->session = NULL;
        p->async = NULL;
        p->used = false;
        p->gen++;
        if (p->gen == 0)
                p->gen = 1;
        c->dev_pending[p->dev]--;
        p->next_free = c->free_head;
        c->free_head = (uint32_t) (p - c->slots);
}

static void release_answer(coap_session_t *session, void *app_ptr) {
        free(app_ptr);
}

static void kick(struct sim_coap *c) {
        (void) sd_event_source_set_time(c->kick_source, 0);
        (void) sd_event_source_set_enabled(c->kick_source, SD_EVENT_ONESHOT);
}

/* The second call for a request: its answer is in the slot. */
static void respond_async(struct sim_coap *c, coap_async_t *async, coap_resource_t *resource,
                          coap_session_t *session, const coap_pdu_t *request,
                          const coap_string_t *query, coap_pdu_t *response) {
        uintptr_t i = (uintptr_t) coap_async_get_app_data(async);
        struct pending *p = i > 0 && i <= c->n_slots ? &c->slots[i - 1] : NULL;

        if (!p || !p->used || p->async != async || !p->answered) {
                /* Not ours (cannot happen: only sim_coap_send triggers). */
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
                return;
        }
        uint8_t *answer = TAKE_PTR(p->answer);
        size_t len = p->answer_len;
        coap_pdu_set_code(response, p->code);
        /* libcoap frees the async when this handler returns */
        pending_release(c, p);

        if (answer)
                /* Calls release_answer in every case, also on failure. */
                (void) coap_add_data_large_response(resource, session, request, response, query,
                                                    COAP_MEDIATYPE_APPLICATION_CBOR, -1, 0, len, answer,
                                                    release_answer, answer);
}

static void on_put(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                   const coap_string_t *query, coap_pdu_t *response) {
        struct sim_coap *c = coap_resource_get_userdata(resource);
        struct sim *sim = c->sim;
        coap_async_t *async;
        const uint8_t *data;
        size_t len, offset, total;
        int r;

        async = coap_find_async(session, coap_pdu_get_token(request));
        if (async) {
                respond_async(c, async, resource, session, request, query, response);
                return;
        }

        uint16_t port = coap_address_get_port(coap_session_get_addr_local(session));
        long index = (long) port - (long) c->port0;
        struct sim_device *d = sim_device_by_index(sim, index);
        if (!d) {
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_FOUND);
                return;
        }

        /* With COAP_BLOCK_SINGLE_BODY the handler sees the whole body once. */
        if (!coap_get_data_large(request, &len, &data, &offset, &total) || offset != 0 || len != total) {
                dev_log(d, 2, "coap: PUT /omgr without a (whole) payload");
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_BAD_REQUEST);
                return;
        }
        r = smp_omp_decode(data, len, c->frame, sizeof(c->frame));
        if (r < 0) {
                /* Mynewt's oicmgr: a missing or bad "_h" is 4.00. */
                dev_log(d, 2, "coap: bad OMP payload of %zu bytes: %s", len, strerror(-r));
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_BAD_REQUEST);
                return;
        }
        size_t frame_len = (size_t) r;
        if (!smp_op_is_request(c->frame[0] & 0x07)) {
                /* oicmgr only runs handlers for read and write requests */
                dev_log(d, 2, "coap: OMP header op %u is not a request", c->frame[0] & 0x07);
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_BAD_REQUEST);
                return;
        }

        struct pending *p = pending_new(c, d->index);
        if (!p) {
                dev_log(d, 1, "coap: too many requests waiting for an answer, refused");
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
                return;
        }
        /* Delay 0: the handler is not called again until triggered.  No
         * response code set: libcoap sends the empty ACK. */
        async = coap_register_async(session, request, 0);
        if (!async) {
                pending_release(c, p);
                coap_pdu_set_code(response, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
                return;
        }
        p->async = async;
        p->session = coap_session_reference(session);
        coap_async_set_app_data(async, (void *) (uintptr_t) (p - c->slots + 1));

        struct sim_route route = { .kind = SIM_TRANSPORT_COAP, .cookie = cookie_of(c, p) };
        const coap_address_t *remote = coap_session_get_addr_remote(session);
        if (remote && remote->size <= sizeof(route.addr)) {
                memcpy(&route.addr, &remote->addr, remote->size);
                route.addrlen = remote->size;
        }
        sim_device_receive(d, &route, c->frame, frame_len);
}

void sim_coap_send(struct sim_device *d, const struct sim_route *route, const uint8_t *frame, size_t len) {
        struct sim_coap *c = d->sim->coap;
        if (!c)
                return;

        struct pending *p = pending_by_cookie(c, route->cookie);
        if (!p || p->answered) {
                /* A second answer (dup fault, several frames) or one after
                 * the request expired: CoAP has one response per request. */
                dev_log(d, 2, "coap: answer for a request no longer waiting, dropped");
                return;
        }

        size_t cap = len + SMP_OMP_OVERHEAD;
        p->answer = malloc(cap);
        int r = p->answer ? smp_omp_encode(frame, len, p->answer, cap) : -ENOMEM;
        if (r < 0) {
                /* Mynewt's oicmgr answers 5.00 when it cannot encode. */
                dev_log(d, 1, "coap: answer of %zu bytes cannot be sent as OMP: %s", len, strerror(-r));
                free(p->answer);
                p->answer = NULL;
                p->code = COAP_RESPONSE_CODE_INTERNAL_ERROR;
        } else {
                p->answer_len = (size_t) r;
                /* 2.05 Content: what oicmgr's oc_send_response(OC_STATUS_OK)
                 * maps to; newtmgr accepts 2.01..2.05. */
                p->code = COAP_RESPONSE_CODE_CONTENT;
        }
        p->answered = true;
        /* libcoap calls the handler on its next pass; the new deadline only
         * matters if it never does */
        p->deadline_us = sim_now_us(c->sim) + PENDING_TIMEOUT_US;
        coap_async_trigger(p->async);
        kick(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sim_coap *c = userdata;
        if (coap_io_process(c->ctx, COAP_IO_NO_WAIT) < 0)
                sim_log(c->sim, 0, "coap: I/O processing failed");
        return 0;
}

static int on_kick(sd_event_source *s, uint64_t usec, void *userdata) {
        return on_io(NULL, -1, 0, userdata);
}

static int on_expire(sd_event_source *s, uint64_t usec, void *userdata) {
        struct sim_coap *c = userdata;
        uint64_t now = sim_now_us(c->sim);

        for (uint32_t i = 0; i < c->n_slots; i++) {
                struct pending *p = &c->slots[i];
                if (!p->used || p->deadline_us > now)
                        continue;
                sim_log(c->sim, 2, "dev%u: coap: no answer within %llu s, request forgotten", p->dev,
                        PENDING_TIMEOUT_US / 1000000ULL);
                /* Without a response: the client already has its ACK and
                 * times out as it would with a silent device. */
                coap_free_async(p->session, p->async);
                pending_release(c, p);
        }
        (void) sd_event_source_set_time(s, usec + EXPIRE_INTERVAL_US);
        return 0;
}

static void on_coap_log(coap_log_t level, const char *message) {
        if (!log_sim)
                return;
        size_t n = strlen(message);
        while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
                n--;
        sim_log(log_sim, level <= LOG_ERR ? 0 : level <= LOG_INFO ? 1 : 2, "libcoap: %.*s", (int) n, message);
}

/* -v levels to syslog levels for libcoap: errors only by default, its
 * warnings with -v, everything it says about each packet with -vvv. */
static coap_log_t coap_level_for(int verbosity) {
        switch (verbosity) {
        case 0:
                return LOG_ERR;
        case 1:
                return LOG_WARNING;
        case 2:
                return LOG_NOTICE;
        default:
                return LOG_DEBUG;
        }
}

int sim_coap_open(struct sim *sim, const char *endpoint) {
        struct sockaddr_storage base;
        socklen_t base_len;
        int r;

        if (sim->coap)
                return -EBUSY;
        if (sim_parse_endpoint(endpoint, &base, &base_len) < 0)
                return -EINVAL;
        uint16_t port0 = ntohs(base.ss_family == AF_INET ? ((struct sockaddr_in *) &base)->sin_port
                                                          : ((struct sockaddr_in6 *) &base)->sin6_port);
        if (port0 == 0 || (unsigned) port0 + sim->n_devices - 1 > 65535)
                return -ERANGE;

        struct sim_coap *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->sim = sim;
        c->port0 = port0;
        c->free_head = SLOT_NONE;
        sim->coap = c;  /* from here on sim_coap_close() cleans up */

        coap_startup();
        log_sim = sim;
        coap_set_log_handler(on_coap_log);
        coap_set_log_level(coap_level_for(sim->verbosity));
        coap_dtls_set_log_level(coap_level_for(sim->verbosity));

        c->dev_pending = calloc(sim->n_devices ? sim->n_devices : 1, sizeof(*c->dev_pending));
        if (!c->dev_pending)
                return -ENOMEM;

        c->ctx = coap_new_context(NULL);
        if (!c->ctx)
                return -ENOMEM;
        /* Requests larger than one datagram arrive with Block1 and are
         * handed over whole; large answers leave with Block2. */
        coap_context_set_block_mode(c->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
        coap_set_app_data(c->ctx, c);

        for (unsigned i = 0; i < sim->n_devices; i++) {
                coap_address_t a;
                coap_address_init(&a);
                memcpy(&a.addr, &base, base_len);
                a.size = base_len;
                coap_address_set_port(&a, (uint16_t) (port0 + i));
                if (!coap_new_endpoint(c->ctx, &a, COAP_PROTO_UDP)) {
                        sim_log(sim, 0, "coap: cannot listen on port %u", port0 + i);
                        return -EADDRINUSE;
                }
        }

        coap_resource_t *res = coap_resource_init(coap_make_str_const("omgr"), 0);
        if (!res)
                return -ENOMEM;
        /* Mynewt registers only PUT: libcoap answers 4.05 to the rest. */
        coap_register_handler(res, COAP_REQUEST_PUT, on_put);
        coap_resource_set_userdata(res, c);
        coap_add_attr(res, coap_make_str_const("rt"), coap_make_str_const("\"x.mynewt.nmgr\""), 0);
        coap_add_resource(c->ctx, res);

        int fd = coap_context_get_coap_fd(c->ctx);
        if (fd < 0) {
                sim_log(sim, 0, "coap: this libcoap has no epoll support");
                return -EOPNOTSUPP;
        }
        r = sd_event_add_io(sim->event, &c->io_source, fd, EPOLLIN, on_io, c);
        if (r < 0)
                return r;
        r = sd_event_add_time(sim->event, &c->kick_source, CLOCK_MONOTONIC, 0, 0, on_kick, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->kick_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(sim->event, &c->expire_source, CLOCK_MONOTONIC, EXPIRE_INTERVAL_US,
                                       1000000, on_expire, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->expire_source, SD_EVENT_ON);
        if (r < 0)
                return r;

        fprintf(stderr, "smpsim: %u device(s) on coap %s (ports %u..%u, PUT /omgr)\n", sim->n_devices,
                endpoint, port0, port0 + sim->n_devices - 1);
        return 0;
}

void sim_coap_close(struct sim *sim) {
        struct sim_coap *c = sim->coap;
        if (!c)
                return;

        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->kick_source = sd_event_source_disable_unref(c->kick_source);
        c->expire_source = sd_event_source_disable_unref(c->expire_source);
        /* Our session references first: coap_free_context() frees every
         * async (and calls no handler). */
        for (uint32_t i = 0; i < c->n_slots; i++) {
                struct pending *p = &c->slots[i];
                free(p->answer);
                p->answer = NULL;
                if (p->session)
                        coap_session_release(p->session);
                p->session = NULL;
        }
        if (c->ctx)
                coap_free_context(c->ctx);
        coap_cleanup();
        log_sim = NULL;
        free(c->slots);
        free(c->dev_pending);
        free(c);
        sim->coap = NULL;
}
