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
 * A request the device dropped (a fault, loss, no netbuf, a reboot) is
 * forgotten within FORGET_INTERVAL_US, async and all.  It must be: while
 * an async with a token is registered, libcoap 4.3.1 (handle_request(),
 * "Retransmit async response") answers any request carrying that token
 * with an empty ACK and never passes it on, and a client's SMP-level
 * retransmission is a new Confirmable request with the same token (the
 * SMP sequence number: newtmgr, smpgw's coap transport).  Mynewt's
 * oicmgr would run it again; kept registered, it would be swallowed until
 * PENDING_TIMEOUT_US, so one lost request would fail every retry.
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
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
/* How often requests the device dropped, and expired ones, are looked
 * for: well below a client's retransmission timeout (smpgw's is 2 s at
 * the least, newtmgr's 10 s). */
#define FORGET_INTERVAL_US (100ULL * 1000ULL)
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

struct sim_coap_mc;

struct sim_coap {
        struct sim *sim;
        coap_context_t *ctx;
        sd_event_source *io_source;
        sd_event_source *kick_source;
        sd_event_source *expire_source;
        uint16_t port0;
        struct sockaddr_storage base;  /* the devices' address, port 0 */
        struct sim_coap_mc *mc;        /* NULL unless --coap-multicast */

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
                if (!p->used)
                        continue;
                if (p->deadline_us <= now)
                        sim_log(c->sim, 2, "dev%u: coap: no answer within %llu s, request forgotten", p->dev,
                                PENDING_TIMEOUT_US / 1000000ULL);
                else if (p->answered)
                        continue; /* libcoap responds on its next pass */
                else {
                        struct sim_device *d = sim_device_by_index(c->sim, p->dev);
                        const struct sim_route route = { .kind = SIM_TRANSPORT_COAP, .cookie = cookie_of(c, p) };
                        if (d && sim_device_holds_request(d, &route))
                                continue;
                        sim_log(c->sim, 2, "dev%u: coap: request dropped by the device, forgotten", p->dev);
                }
                /* Without a response: the client already has its ACK and
                 * times out as it would with a silent device. */
                coap_free_async(p->session, p->async);
                pending_release(c, p);
        }
        (void) sd_event_source_set_time(s, usec + FORGET_INTERVAL_US);
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
        c->base = base;
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
        r = sd_event_add_time_relative(sim->event, &c->expire_source, CLOCK_MONOTONIC, FORGET_INTERVAL_US, 10 * 1000,
                                       on_expire, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->expire_source, SD_EVENT_ON);
        if (r < 0)
                return r;

        fprintf(stderr, "smpsim: %u device(s) on coap %s (ports %u..%u, PUT /omgr)\n", sim->n_devices,
                endpoint, port0, port0 + sim->n_devices - 1);
        return 0;
}

/* ---- multicast discovery: GET /.well-known/core to a group ---- */

/* What a device lists, as Mynewt's oicmgr describes /omgr. */
#define MC_RT "x.mynewt.nmgr"
#define MC_LINKS "</omgr>;rt=\"" MC_RT "\""
/* Requests waiting for their answers to go out; more are dropped (a
 * client repeats its discovery). */
#define MC_QUEUE_MAX 8u
/* Answers sent per tick, one tick a millisecond: a thousand devices
 * answer within a second without overrunning the client's socket
 * buffer in one burst (RFC 7252 §8.2 wants answers spread, too). */
#define MC_BATCH 16u
#define MC_TICK_US 1000u

struct sim_coap_mc {
        int fd;                    /* ours: bound to the group, joined */
        sd_event_source *io_source, *timer_source;
        struct sockaddr_storage group;
        socklen_t group_len;
        int *dev_fd;               /* libcoap's endpoint sockets: not ours to close */
        uint16_t mid;
        struct mc_request {
                struct sockaddr_storage from;
                socklen_t from_len;
                uint8_t token[8];
                uint8_t token_len;
                unsigned next;     /* next device to answer */
        } queue[MC_QUEUE_MAX];
        unsigned n_queued;
};

static bool sockaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *) a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *) b)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *) a)->sin6_addr, &((const struct sockaddr_in6 *) b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
}

static uint16_t sockaddr_port(const struct sockaddr_storage *a) {
        return ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *) a)->sin_port
                                             : ((const struct sockaddr_in6 *) a)->sin6_port);
}

/* The devices' sockets belong to libcoap, which has no call to hand out
 * an endpoint's fd.  An answer must leave from the device's own address
 * and port (what a client would open afterwards), and a second socket
 * bound there would take the device's unicast traffic; so find libcoap's
 * sockets among our fds by the address they are bound to, and only ever
 * sendto() on them (a datagram send does not disturb libcoap). */
static int find_device_sockets(struct sim_coap *c, struct sim_coap_mc *m) {
        unsigned n = c->sim->n_devices, found = 0;
        DIR *dir = opendir("/proc/self/fd");
        if (!dir)
                return -errno;
        for (struct dirent *de; (de = readdir(dir));) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);
                if (*end || end == de->d_name || fd < 0 || fd == dirfd(dir) || fd > INT_MAX)
                        continue;
                struct sockaddr_storage a;
                socklen_t len = sizeof(a);
                int type;
                socklen_t type_len = sizeof(type);
                if (getsockname((int) fd, (struct sockaddr *) &a, &len) < 0 ||
                    getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0 || type != SOCK_DGRAM ||
                    !sockaddr_same_host(&a, &c->base))
                        continue;
                long i = (long) sockaddr_port(&a) - (long) c->port0;
                if (i < 0 || i >= (long) n || m->dev_fd[i] >= 0)
                        continue;
                m->dev_fd[i] = (int) fd;
                found++;
        }
        closedir(dir);
        return found == n ? 0 : -ENOENT;
}

/* RFC 6690 §4.1: one filter; a multicast request whose filter does not
 * match gets no answer at all. */
static bool mc_query_matches(const coap_string_t *q) {
        if (!q || q->length == 0)
                return true;
        const char *s = (const char *) q->s;
        size_t n = q->length;
        const char *value;
        size_t vlen;
        const char *have;
        if (n >= 3 && memcmp(s, "rt=", 3) == 0)
                have = MC_RT, value = s + 3, vlen = n - 3;
        else if (n >= 5 && memcmp(s, "href=", 5) == 0)
                have = "/omgr", value = s + 5, vlen = n - 5;
        else
                return false;
        if (vlen > 0 && value[vlen - 1] == '*')
                return vlen - 1 <= strlen(have) && memcmp(have, value, vlen - 1) == 0;
        return vlen == strlen(have) && memcmp(have, value, vlen) == 0;
}

static void mc_arm(struct sim_coap_mc *m, uint64_t delay_us) {
        (void) sd_event_source_set_time_relative(m->timer_source, delay_us);
        (void) sd_event_source_set_enabled(m->timer_source, SD_EVENT_ONESHOT);
}

static int on_mc_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sim_coap *c = userdata;
        struct sim_coap_mc *m = c->mc;
        uint8_t buf[1280];

        for (int k = 0; k < 16; k++) {
                struct mc_request rq = { .from_len = sizeof(rq.from) };
                ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC,
                                     (struct sockaddr *) &rq.from, &rq.from_len);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                sim_log(c->sim, 1, "coap multicast: receive failed: %s", strerror(errno));
                        break;
                }
                if ((size_t) n > sizeof(buf) || n < 4)
                        continue;

                coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, 0, 0, sizeof(buf));
                if (!pdu)
                        break;
                bool ok = coap_pdu_parse(COAP_PROTO_UDP, buf, (size_t) n, pdu) &&
                          coap_pdu_get_type(pdu) == COAP_MESSAGE_NON &&
                          coap_pdu_get_code(pdu) == COAP_REQUEST_CODE_GET;
                coap_string_t *path = ok ? coap_get_uri_path(pdu) : NULL;
                coap_string_t *query = ok ? coap_get_query(pdu) : NULL;
                ok = ok && path && path->length == 16 && memcmp(path->s, ".well-known/core", 16) == 0 &&
                     mc_query_matches(query);
                coap_bin_const_t token = coap_pdu_get_token(pdu);
                if (ok && token.length <= sizeof(rq.token)) {
                        rq.token_len = (uint8_t) token.length;
                        memcpy(rq.token, token.s, token.length);
                } else
                        ok = false;
                coap_delete_string(path);
                coap_delete_string(query);
                coap_delete_pdu(pdu);
                if (!ok) {
                        /* CON, other paths, unmatched filters, garbage:
                         * servers stay silent on multicast (RFC 7252 §8.2). */
                        sim_log(c->sim, 2, "coap multicast: %zd-byte datagram not answered", n);
                        continue;
                }

                bool dup = false;
                for (unsigned i = 0; i < m->n_queued; i++)
                        dup |= m->queue[i].from_len == rq.from_len &&
                               memcmp(&m->queue[i].from, &rq.from, rq.from_len) == 0 &&
                               m->queue[i].token_len == rq.token_len &&
                               memcmp(m->queue[i].token, rq.token, rq.token_len) == 0;
                if (dup)
                        continue;
                if (m->n_queued >= MC_QUEUE_MAX) {
                        sim_log(c->sim, 1, "coap multicast: %u discoveries already waiting, one dropped",
                                MC_QUEUE_MAX);
                        continue;
                }
                sim_log(c->sim, 2, "coap multicast: GET /.well-known/core, %u device(s) to answer",
                        c->sim->n_devices);
                m->queue[m->n_queued++] = rq;
                if (m->n_queued == 1)
                        mc_arm(m, 0);
        }
        return 0;
}

/* Devices that would not hear a request do not answer one either. */
static bool device_listening(const struct sim_device *d, uint64_t now) {
        return !d->silent && !d->rebooting && now >= d->down_until_us;
}

static int on_mc_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct sim_coap *c = userdata;
        struct sim_coap_mc *m = c->mc;
        uint64_t now = sim_now_us(c->sim);
        static const char links[] = MC_LINKS;
        uint8_t pkt[4 + 8 + 2 + 1 + sizeof(links) - 1];

        if (m->n_queued == 0)
                return 0;
        struct mc_request *rq = &m->queue[0];
        for (unsigned sent = 0; sent < MC_BATCH && rq->next < c->sim->n_devices; rq->next++) {
                struct sim_device *d = &c->sim->devices[rq->next];
                if (!device_listening(d, now))
                        continue;
                /* NON 2.05, our token, Content-Format 40 (delta 12, one
                 * byte), the links (RFC 7252 §3). */
                size_t len = 0;
                uint16_t mid = m->mid++;
                pkt[len++] = (uint8_t) (0x40 | (COAP_MESSAGE_NON << 4) | rq->token_len);
                pkt[len++] = COAP_RESPONSE_CODE_CONTENT;
                pkt[len++] = (uint8_t) (mid >> 8);
                pkt[len++] = (uint8_t) mid;
                memcpy(pkt + len, rq->token, rq->token_len);
                len += rq->token_len;
                pkt[len++] = 0xc1;
                pkt[len++] = COAP_MEDIATYPE_APPLICATION_LINK_FORMAT;
                pkt[len++] = 0xff;
                memcpy(pkt + len, links, sizeof(links) - 1);
                len += sizeof(links) - 1;
                if (sendto(m->dev_fd[rq->next], pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                           (const struct sockaddr *) &rq->from, rq->from_len) < 0)
                        dev_log(d, 2, "coap multicast: answer not sent: %s", strerror(errno));
                sent++;
        }
        if (rq->next >= c->sim->n_devices) {
                memmove(&m->queue[0], &m->queue[1], (size_t) (m->n_queued - 1) * sizeof(m->queue[0]));
                m->n_queued--;
        }
        if (m->n_queued > 0)
                mc_arm(m, MC_TICK_US);
        return 0;
}

/* ADDR[:PORT]: IPv4, or IPv6 in brackets when a port follows, with an
 * optional %IF scope. */
static int parse_group(const char *s, int family, struct sockaddr_storage *ret, socklen_t *ret_len) {
        char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        const char *port = "5683";

        if (!s || !*s)
                s = family == AF_INET6 ? "ff05::fd" : "224.0.1.187";
        const char *end = s + strlen(s);
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || (close[1] && close[1] != ':'))
                        return -EINVAL;
                if (close[1] == ':')
                        port = close + 2;
                end = close;
                s++;
        } else if (strchr(s, ':') == strrchr(s, ':') && strchr(s, ':')) {
                end = strchr(s, ':');
                port = end + 1;
        }
        if (end == s || (size_t) (end - s) >= sizeof(host) || !*port || strspn(port, "0123456789") != strlen(port))
                return -EINVAL;
        memcpy(host, s, (size_t) (end - s));
        host[end - s] = 0;

        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
                                  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        if (ret->ss_family == AF_INET ? !IN_MULTICAST(ntohl(((struct sockaddr_in *) ret)->sin_addr.s_addr))
                                      : !IN6_IS_ADDR_MULTICAST(&((struct sockaddr_in6 *) ret)->sin6_addr))
                return -EINVAL;
        return sockaddr_port(ret) == 0 ? -EINVAL : 0;
}

static void mc_free(struct sim_coap *c) {
        struct sim_coap_mc *m = c->mc;
        if (!m)
                return;
        m->io_source = sd_event_source_disable_unref(m->io_source);
        m->timer_source = sd_event_source_disable_unref(m->timer_source);
        if (m->fd >= 0)
                close(m->fd);
        free(m->dev_fd);
        free(m);
        c->mc = NULL;
}

int sim_coap_multicast(struct sim *sim, const char *group) {
        struct sim_coap *c = sim->coap;
        int r;

        if (!c)
                return -ENOTCONN;
        if (c->mc)
                return -EBUSY;
        struct sim_coap_mc *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->fd = -1;
        c->mc = m; /* from here on mc_free() cleans up */

        r = parse_group(group, c->base.ss_family, &m->group, &m->group_len);
        if (r < 0) {
                sim_log(sim, 0, "coap multicast: '%s' is not a multicast ADDR[:PORT]", group);
                goto fail;
        }
        if (m->group.ss_family != c->base.ss_family) {
                /* Answers leave from the devices' sockets. */
                sim_log(sim, 0, "coap multicast: the group and --coap must be of one address family");
                r = -EAFNOSUPPORT;
                goto fail;
        }
        m->dev_fd = malloc((sim->n_devices ? sim->n_devices : 1) * sizeof(int));
        if (!m->dev_fd) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned i = 0; i < sim->n_devices; i++)
                m->dev_fd[i] = -1;
        r = find_device_sockets(c, m);
        if (r < 0) {
                sim_log(sim, 0, "coap multicast: cannot find the devices' sockets");
                goto fail;
        }
        (void) coap_prng(&m->mid, sizeof(m->mid));

        m->fd = socket(m->group.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (m->fd < 0) {
                r = -errno;
                goto fail;
        }
        /* Several simulators in one network namespace share the group. */
        int on = 1;
        (void) setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        /* Bound to the group itself: only datagrams sent to it arrive
         * here, never the devices' unicast traffic. */
        if (bind(m->fd, (struct sockaddr *) &m->group, m->group_len) < 0) {
                r = -errno;
                sim_log(sim, 0, "coap multicast: bind: %s%s", strerror(-r),
                        r == -EINVAL && m->group.ss_family == AF_INET6 ? " (a link-local group needs %IF)" : "");
                goto fail;
        }
        if (m->group.ss_family == AF_INET) {
                /* Interface 0: the one the route to the group points at. */
                struct ip_mreqn mreq = { .imr_multiaddr = ((struct sockaddr_in *) &m->group)->sin_addr };
                r = setsockopt(m->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
        } else {
                struct ipv6_mreq mreq = {
                        .ipv6mr_multiaddr = ((struct sockaddr_in6 *) &m->group)->sin6_addr,
                        .ipv6mr_interface = ((struct sockaddr_in6 *) &m->group)->sin6_scope_id,
                };
                r = setsockopt(m->fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
        }
        if (r < 0) {
                r = -errno;
                sim_log(sim, 0, "coap multicast: joining the group: %s%s", strerror(-r),
                        r == -ENODEV ? " (no multicast route?)" : "");
                goto fail;
        }

        r = sd_event_add_io(sim->event, &m->io_source, m->fd, EPOLLIN, on_mc_readable, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(sim->event, &m->timer_source, CLOCK_MONOTONIC, 0, 0, on_mc_tick, c);
        if (r < 0)
                goto fail;
        r = sd_event_source_set_enabled(m->timer_source, SD_EVENT_OFF);
        if (r < 0)
                goto fail;

        char host[INET6_ADDRSTRLEN];
        const void *in = m->group.ss_family == AF_INET ? (const void *) &((struct sockaddr_in *) &m->group)->sin_addr
                                                       : (const void *) &((struct sockaddr_in6 *) &m->group)->sin6_addr;
        fprintf(stderr, "smpsim: coap devices answer GET /.well-known/core on group %s port %u\n",
                inet_ntop(m->group.ss_family, in, host, sizeof(host)) ?: "?", sockaddr_port(&m->group));
        return 0;

fail:
        mc_free(c);
        return r;
}

void sim_coap_close(struct sim *sim) {
        struct sim_coap *c = sim->coap;
        if (!c)
                return;

        mc_free(c);
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
