/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Raw SMP over UDP, the transport of Zephyr's smp_udp.c: one datagram is
 * one SMP packet (which may hold several frames), the device answers to the
 * sender's address and port, default device port 1337.
 *
 *   udp:HOST:PORT[,mtu=N]
 *
 * HOST is an IPv4 address, an IPv6 address in brackets or "localhost";
 * host names are refused (libsmpgw parses the string: smp-conn.h).  mtu
 * is the largest datagram we send, SMP_HEADER_SIZE..65507 (IPv4) or
 * ..65527 (IPv6); the default is what an Ethernet path carries without IP
 * fragmentation (1500 - 20 - 8 for IPv4, 1500 - 40 - 8 for IPv6).
 *
 * Discovery probes a bounded range of addresses and ports with an OS
 * "mcumgr parameters" read (group 0, id 6, body {}), which every Zephyr
 * mcumgr answers, if only with "not supported"; any well-formed answer
 * to our probe is a device.  Arguments:
 *
 *   HOST:PORT        HOST:PORT-PORT        A.B.C.D-A.B.C.E:PORT[-PORT]
 *
 * at most DISCOVERY_TARGETS_MAX (4096) targets.  Each target that has not
 * answered is probed up to DISCOVERY_ROUNDS times; then the discovery
 * reports found(NULL) and is over.
 *
 * A range of thousands of devices answers faster than one socket can
 * hold the answers, and whoever reports them (found(): the daemon adds a
 * device to its database) may take a while for each.  So the probes go
 * out in batches no larger than half of what the receive buffer holds
 * (its size asked for from the range, capped by the kernel's rmem_max,
 * and read back).  The next batch goes once the socket was found empty
 * (at most two batches' answers are ever queued) and either every probe
 * of the last one was answered or no answer came for
 * DISCOVERY_BATCH_QUIET_USEC: devices that answer slowly (a simulator
 * serving thousands, a busy network) set the pace, absent ones cost a
 * short wait per batch.  After the last probe of a round we listen until
 * no answer came for DISCOVERY_QUIET_USEC (at most
 * DISCOVERY_LISTEN_MAX_USEC): answers are taken for as long as they come.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <smpgw/smp-cbor.h>
#include <smpgw/smp-frame.h>
#include <smpgw/smp-os.h>
#include <smpgw/smp-transport.h>

#include "plugin-util.h"

#define UDP_MTU_DEFAULT_IPV4 1472u
#define UDP_MTU_DEFAULT_IPV6 1452u
/* The largest UDP payload without jumbograms. */
#define UDP_MTU_MAX_IPV4 65507u
#define UDP_MTU_MAX_IPV6 65527u
#define UDP_OVERHEAD_IPV4 (20u + 8u)
#define UDP_OVERHEAD_IPV6 (40u + 8u)
/* Receive buffer: larger than any datagram, so nothing is ever cut. */
#define UDP_RX_MAX 65536u
/* Datagrams handled per wake-up, so one busy peer cannot starve the loop. */
#define UDP_RX_BATCH 64

#define DISCOVERY_TARGETS_MAX 4096u
#define DISCOVERY_ROUNDS 3u
/* A round is over once no answer came for this long after its last probe... */
#define DISCOVERY_QUIET_USEC (1000u * 1000u)
/* ... or this long after its last probe, whatever keeps coming. */
#define DISCOVERY_LISTEN_MAX_USEC (10u * 1000u * 1000u)
/* Batches of probes at most this often... */
#define DISCOVERY_PACE_USEC (5u * 1000u)
/* ... and, while probes of the last one are unanswered, once no answer
 * came for this long. */
#define DISCOVERY_BATCH_QUIET_USEC (200u * 1000u)
/* What one queued answer costs the receive buffer: the kernel charges the
 * datagram's whole buffer (its "truesize", about 1 KiB on loopback and
 * Ethernet for a small datagram), not its payload. */
#define DISCOVERY_ANSWER_COST 1280u
/* The receive buffer asked for: every answer of a range could wait. */
#define DISCOVERY_RCVBUF_MAX (DISCOVERY_TARGETS_MAX * DISCOVERY_ANSWER_COST)
#define DISCOVERY_BATCH_MIN 16u

struct udp_addr {
        int family;
        union {
                struct sockaddr sa;
                struct sockaddr_in in4;
                struct sockaddr_in6 in6;
        };
        socklen_t len;
};

struct smp_transport_instance {
        const struct smp_host *host;
        /* Every link's receive buffer (UDP_RX_MAX), allocated with the
         * first link: a datagram is handed to the session before the
         * next recv(), on one thread, so one buffer serves them all.  A
         * buffer per link was 64 KiB of heap each, 4 MiB for 64 uploads
         * at once (issue 14). */
        uint8_t *rx;
};

/* ------------------------------------------------------------------ */
/* Discovery arguments (connection strings are libsmpgw's)             */

/* A numeric host, bracketed if IPv6, or "localhost": the hosts of
 * connection strings, in a range. */
static int parse_host(const char *s, size_t len, struct udp_addr *ret) {
        char host[INET6_ADDRSTRLEN + 2];

        memset(ret, 0, sizeof(*ret));
        if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
                if (len - 2 >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, len - 2);
                host[len - 2] = 0;
                if (inet_pton(AF_INET6, host, &ret->in6.sin6_addr) != 1)
                        return -EINVAL;
                ret->family = ret->in6.sin6_family = AF_INET6;
                ret->len = sizeof(ret->in6);
                return 0;
        }
        if (len >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, len);
        host[len] = 0;
        if (strcmp(host, "localhost") == 0)
                snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host, &ret->in4.sin_addr) != 1)
                return -EINVAL;
        ret->family = ret->in4.sin_family = AF_INET;
        ret->len = sizeof(ret->in4);
        return 0;
}

static void addr_set_port(struct udp_addr *a, uint16_t port) {
        if (a->family == AF_INET)
                a->in4.sin_port = htons(port);
        else
                a->in6.sin6_port = htons(port);
}

/* Splits "HOST:PORT" at the colon that ends the host: after the closing
 * bracket for IPv6, the only one otherwise. */
static int split_host_port(const char *s, size_t len, size_t *ret_host_len) {
        const char *colon;

        if (len > 0 && s[0] == '[') {
                const char *close = memchr(s, ']', len);
                if (!close || (size_t) (close - s) + 1 >= len || close[1] != ':')
                        return -EINVAL;
                colon = close + 1;
        } else {
                colon = memchr(s, ':', len);
                if (!colon || memchr(colon + 1, ':', len - (size_t) (colon + 1 - s)))
                        return -EINVAL;
        }
        *ret_host_len = (size_t) (colon - s);
        return 0;
}

static int udp_conn_check(const struct smp_conn *conn, char **ret_reason) {
        uint64_t mtu;
        if (smp_conn_get_family(conn) == AF_INET && smp_conn_get_option_uint(conn, "mtu", &mtu) &&
            mtu > UDP_MTU_MAX_IPV4)
                return asprintf(ret_reason, "mtu=%" PRIu64 " is more than an IPv4 datagram carries (%u)", mtu,
                                UDP_MTU_MAX_IPV4) < 0 ? -ENOMEM : -EINVAL;
        return 0;
}

static const struct smp_conn_option udp_options[] = {
        { .name = "mtu", .type = SMP_CONN_OPTION_UINT, .min = SMP_HEADER_SIZE, .max = UDP_MTU_MAX_IPV6 },
};

static const struct smp_conn_syntax udp_syntax = {
        .address = SMP_CONN_ADDRESS_INET,
        .options = udp_options,
        .n_options = ELEMENTSOF(udp_options),
        .check = udp_conn_check,
};

/* Errors an ICMP message leaves on a UDP socket (a port that is not open
 * yet while the device reboots, a route that flaps).  They concern a
 * datagram sent earlier, not the link: count a loss and carry on; the
 * session's retransmission covers it. */
static bool errno_is_icmp(int e) {
        return e == ECONNREFUSED || e == EHOSTUNREACH || e == EHOSTDOWN || e == ENETUNREACH ||
               e == ENETDOWN || e == EMSGSIZE || e == EPROTO;
}

/* ------------------------------------------------------------------ */
/* Links                                                               */

struct smp_link {
        unsigned n_ref;
        bool closed;            /* close() was called: report nothing more */
        int error;              /* the link failed; closed() was reported */
        bool want_writable;
        int fd;
        sd_event_source *io;
        size_t mtu;
        size_t overhead;
        struct smp_link_callbacks cb;
        void *userdata;
        struct smp_link_stats stats;
        uint8_t *rx; /* the instance's */
};

static void link_unref(struct smp_link *l) {
        if (--l->n_ref > 0)
                return;
        free(l);
}

static void link_shutdown(struct smp_link *l) {
        l->io = sd_event_source_disable_unref(l->io);
        if (l->fd >= 0)
                close(l->fd);
        l->fd = -1;
}

static void link_fail(struct smp_link *l, int err) {
        if (l->error)
                return;
        l->error = err;
        link_shutdown(l);
        if (!l->closed && l->cb.closed)
                l->cb.closed(err, l->userdata);
}

static int link_io_events(struct smp_link *l) {
        return sd_event_source_set_io_events(l->io, EPOLLIN | (l->want_writable ? EPOLLOUT : 0));
}

static void link_receive(struct smp_link *l) {
        for (int i = 0; i < UDP_RX_BATCH && !l->closed && !l->error; i++) {
                ssize_t n = recv(l->fd, l->rx, UDP_RX_MAX, MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        if (errno_is_icmp(errno)) {
                                l->stats.lost++;
                                continue;
                        }
                        link_fail(l, -errno);
                        return;
                }
                if (n == 0)
                        continue; /* an empty datagram carries no frame */
                if ((size_t) n > UDP_RX_MAX) {
                        l->stats.lost++;
                        continue;
                }
                l->stats.rx_packets++;
                l->stats.rx_bytes += (uint64_t) n;
                l->cb.receive(l->rx, (size_t) n, l->userdata);
        }
}

static int on_link_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct smp_link *l = userdata;

        /* Callbacks may close the link: keep it alive until we are done. */
        l->n_ref++;
        if (revents & (EPOLLIN | EPOLLERR))
                link_receive(l);
        if ((revents & EPOLLOUT) && !l->closed && !l->error && l->want_writable) {
                l->want_writable = false;
                int r = link_io_events(l);
                if (r < 0)
                        link_fail(l, r);
                else if (l->cb.writable)
                        l->cb.writable(l->userdata);
        }
        link_unref(l);
        return 0;
}

static int udp_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct udp_addr peer = {};
        uint64_t mtu;
        int r;

        if (!instance || !event || !conn || !cb || !cb->receive || !ret)
                return -EINVAL;
        struct sockaddr_storage ss;
        socklen_t ss_len;
        r = smp_conn_get_sockaddr(conn, &ss, &ss_len);
        if (r < 0)
                return r;
        peer.family = ss.ss_family;
        memcpy(&peer.sa, &ss, ss_len);
        peer.len = ss_len;
        if (!smp_conn_get_option_uint(conn, "mtu", &mtu))
                mtu = peer.family == AF_INET ? UDP_MTU_DEFAULT_IPV4 : UDP_MTU_DEFAULT_IPV6;

        _cleanup_close_ int fd = socket(peer.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Connected: the kernel drops datagrams from anyone but the peer
         * and reports its ICMP errors to us. */
        if (connect(fd, &peer.sa, peer.len) < 0)
                return -errno;

        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->n_ref = 1;
        l->fd = -1;
        l->mtu = (size_t) mtu;
        l->overhead = peer.family == AF_INET ? UDP_OVERHEAD_IPV4 : UDP_OVERHEAD_IPV6;
        l->cb = *cb;
        l->userdata = userdata;
        if (!instance->rx) {
                instance->rx = malloc(UDP_RX_MAX);
                if (!instance->rx) {
                        link_unref(l);
                        return -ENOMEM;
                }
        }
        l->rx = instance->rx;
        r = sd_event_add_io(event, &l->io, fd, EPOLLIN, on_link_io, l);
        if (r < 0) {
                link_unref(l);
                return r;
        }
        l->fd = fd;
        fd = -1;
        *ret = l;
        return 0;
}

static void udp_close(struct smp_link *l) {
        if (!l || l->closed)
                return;
        l->closed = true;
        link_shutdown(l);
        link_unref(l);
}

static int udp_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        if (!l || l->closed || !frame || len == 0)
                return -EINVAL;
        if (l->error)
                return l->error;
        if (len > l->mtu)
                return -EMSGSIZE;

        for (bool retried = false;;) {
                ssize_t n = send(l->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n >= 0)
                        break;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == ENOBUFS) {
                        l->want_writable = true;
                        int r = link_io_events(l);
                        return r < 0 ? r : -EAGAIN;
                }
                /* The kernel reports an ICMP error left by an earlier
                 * datagram on the next send and drops that send; the error
                 * is cleared now, so try once more. */
                if (errno_is_icmp(errno) && !retried) {
                        l->stats.lost++;
                        retried = true;
                        continue;
                }
                return -errno;
        }
        l->stats.tx_packets++;
        l->stats.tx_bytes += len;
        return 0;
}

static void udp_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) {
                .mtu = l->mtu,
                .fragments = false,
                .stream = false,
                .overhead = l->overhead,
                .buffer_overhead = 0,
        };
}

static void udp_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}

/* ------------------------------------------------------------------ */
/* Discovery                                                           */

struct smp_transport_discovery {
        unsigned n_ref;
        bool stopped;           /* discover_stop() was called */
        bool finished;          /* found(NULL) was reported */
        sd_event *event;
        int fd;
        sd_event_source *io, *timer;

        struct udp_addr base;   /* first address, port 0 */
        uint32_t n_addrs;       /* consecutive IPv4 addresses (1 for IPv6) */
        uint16_t port_lo;
        uint32_t n_ports;
        uint32_t n_targets;     /* n_addrs * n_ports */

        unsigned round;
        uint32_t next;          /* next target to probe in this round */
        uint32_t batch;         /* probes per batch: half the answers the socket holds */
        bool drained;           /* the socket was found empty since the last batch */
        bool listening;         /* this round's probes are out */
        uint32_t batch_sent, batch_answered; /* of the last batch, answers since it */
        uint64_t last_probe_usec, last_answer_usec;
        uint8_t seq;
        uint8_t probe[SMP_HEADER_SIZE + 1];
        uint8_t answered[DISCOVERY_TARGETS_MAX / 8];

        smp_discovered_fn found;
        void *userdata;
};

static void discovery_unref(struct smp_transport_discovery *d) {
        if (--d->n_ref > 0)
                return;
        sd_event_unref(d->event);
        free(d);
}

static void discovery_shutdown(struct smp_transport_discovery *d) {
        d->io = sd_event_source_disable_unref(d->io);
        d->timer = sd_event_source_disable_unref(d->timer);
        if (d->fd >= 0)
                close(d->fd);
        d->fd = -1;
}

static void discovery_finish(struct smp_transport_discovery *d) {
        if (d->finished)
                return;
        d->finished = true;
        discovery_shutdown(d);
        if (!d->stopped)
                d->found(NULL, d->userdata);
}

static bool target_answered(const struct smp_transport_discovery *d, uint32_t i) {
        return d->answered[i / 8] & (1u << (i % 8));
}

static void target_addr(const struct smp_transport_discovery *d, uint32_t i, struct udp_addr *ret) {
        *ret = d->base;
        if (ret->family == AF_INET)
                ret->in4.sin_addr.s_addr = htonl(ntohl(d->base.in4.sin_addr.s_addr) + i / d->n_ports);
        addr_set_port(ret, (uint16_t) (d->port_lo + i % d->n_ports));
}

/* The target index a datagram came from, or -1 if it is none of ours. */
static int64_t target_index(const struct smp_transport_discovery *d, const struct sockaddr_storage *from) {
        uint32_t a;
        uint16_t port;

        if (from->ss_family != d->base.family)
                return -1;
        if (from->ss_family == AF_INET) {
                const struct sockaddr_in *in4 = (const struct sockaddr_in *) from;
                a = ntohl(in4->sin_addr.s_addr) - ntohl(d->base.in4.sin_addr.s_addr);
                port = ntohs(in4->sin_port);
        } else {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) from;
                if (memcmp(&in6->sin6_addr, &d->base.in6.sin6_addr, sizeof(in6->sin6_addr)) != 0)
                        return -1;
                a = 0;
                port = ntohs(in6->sin6_port);
        }
        if (a >= d->n_addrs || port < d->port_lo || (uint32_t) (port - d->port_lo) >= d->n_ports)
                return -1;
        return (int64_t) a * d->n_ports + (port - d->port_lo);
}

static int discovery_arm_timer(struct smp_transport_discovery *d, uint64_t usec) {
        int r = sd_event_source_set_time(d->timer, usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

/* Sends this round's next batch of probes; stops at EAGAIN and resumes on
 * EPOLLOUT.  Then the timer: the next batch, or the end of the round. */
static int discovery_send(struct smp_transport_discovery *d) {
        uint32_t sent = 0;
        uint64_t now;
        int r;

        r = sd_event_now(d->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        while (d->next < d->n_targets && sent < d->batch) {
                if (target_answered(d, d->next)) {
                        d->next++;
                        continue;
                }
                struct udp_addr to;
                target_addr(d, d->next, &to);
                if (sendto(d->fd, d->probe, sizeof(d->probe), MSG_DONTWAIT | MSG_NOSIGNAL, &to.sa,
                           to.len) < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == ENOBUFS)
                                return sd_event_source_set_io_events(d->io, EPOLLIN | EPOLLOUT);
                        /* Unreachable or refused: that target is simply not
                         * there. */
                }
                d->next++;
                sent++;
        }
        d->drained = false;
        d->last_probe_usec = now;
        d->batch_sent = sent;
        d->batch_answered = 0;
        r = sd_event_source_set_io_events(d->io, EPOLLIN);
        if (r < 0)
                return r;
        if (d->next < d->n_targets)
                return discovery_arm_timer(d, now + DISCOVERY_PACE_USEC);
        d->listening = true;
        return discovery_arm_timer(d, now + DISCOVERY_QUIET_USEC);
}

static bool probe_answer_valid(const struct smp_transport_discovery *d, const uint8_t *pkt, size_t len) {
        struct smp_frame f;
        struct smp_cbor_item items[64];
        struct smp_cbor_doc doc;
        size_t off = 0;

        if (smp_packet_next(pkt, len, &off, &f) != 1)
                return false;
        if (f.hdr.op != SMP_OP_READ_RSP || f.hdr.group != SMP_GROUP_OS ||
            f.hdr.id != SMP_OS_CMD_MCUMGR_PARAMS || f.hdr.seq != d->seq)
                return false;
        return smp_cbor_parse(f.body, f.body_len, items, sizeof(items) / sizeof(items[0]), NULL,
                              &doc) == 0;
}

static void discovery_report(struct smp_transport_discovery *d, uint32_t i) {
        char host[INET6_ADDRSTRLEN], address[INET6_ADDRSTRLEN + 8], conn[INET6_ADDRSTRLEN + 12];
        struct udp_addr a;

        target_addr(d, i, &a);
        if (a.family == AF_INET) {
                inet_ntop(AF_INET, &a.in4.sin_addr, host, sizeof(host));
                snprintf(address, sizeof(address), "%s:%u", host, ntohs(a.in4.sin_port));
        } else {
                inet_ntop(AF_INET6, &a.in6.sin6_addr, host, sizeof(host));
                snprintf(address, sizeof(address), "[%s]:%u", host, ntohs(a.in6.sin6_port));
        }
        snprintf(conn, sizeof(conn), "udp:%s", address);
        d->found(&(const struct smp_discovered) { .conn = conn, .address = address }, d->userdata);
}

static void discovery_receive(struct smp_transport_discovery *d) {
        uint8_t buf[512]; /* answers to our probe are small; larger ones are not */

        for (int n_rx = 0; n_rx < UDP_RX_BATCH && !d->stopped && !d->finished; n_rx++) {
                struct sockaddr_storage from;
                socklen_t from_len = sizeof(from);
                ssize_t n = recvfrom(d->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC,
                                     (struct sockaddr *) &from, &from_len);
                if (n < 0) {
                        if (errno == EINTR || errno_is_icmp(errno))
                                continue;
                        if (errno == EAGAIN)
                                d->drained = true;
                        return;
                }
                if ((size_t) n > sizeof(buf))
                        continue;
                int64_t i = target_index(d, &from);
                if (i < 0 || target_answered(d, (uint32_t) i) ||
                    !probe_answer_valid(d, buf, (size_t) n))
                        continue;
                d->answered[i / 8] |= (uint8_t) (1u << (i % 8));
                (void) sd_event_now(d->event, CLOCK_MONOTONIC, &d->last_answer_usec);
                d->batch_answered++;
                discovery_report(d, (uint32_t) i);
        }
}

static int on_discovery_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct smp_transport_discovery *d = userdata;

        d->n_ref++;
        if (revents & (EPOLLIN | EPOLLERR))
                discovery_receive(d);
        if ((revents & EPOLLOUT) && !d->stopped && !d->finished && discovery_send(d) < 0)
                discovery_finish(d);
        discovery_unref(d);
        return 0;
}

/* The round's next batch, once the answers to the last one are in (or
 * have stopped coming) and read. */
static int discovery_pace(struct smp_transport_discovery *d, uint64_t now) {
        if (!d->drained) {
                discovery_receive(d);
                if (d->stopped || d->finished)
                        return 0;
                if (!d->drained)
                        /* The answers are still coming in faster than we
                         * take them: the next batch waits. */
                        return discovery_arm_timer(d, now + DISCOVERY_PACE_USEC);
        }
        uint64_t quiet_until = MAX(d->last_probe_usec, d->last_answer_usec) + DISCOVERY_BATCH_QUIET_USEC;
        if (d->batch_answered < d->batch_sent && now < quiet_until)
                return discovery_arm_timer(d, MIN(now + DISCOVERY_PACE_USEC, quiet_until));
        return discovery_send(d);
}

/* After the round's last probe: over when quiet, or listened long enough. */
static int discovery_listen(struct smp_transport_discovery *d, uint64_t now) {
        uint64_t quiet_from = MAX(d->last_probe_usec, d->last_answer_usec);

        if (now < quiet_from + DISCOVERY_QUIET_USEC && now < d->last_probe_usec + DISCOVERY_LISTEN_MAX_USEC)
                return discovery_arm_timer(
                        d, MIN(quiet_from + DISCOVERY_QUIET_USEC, d->last_probe_usec + DISCOVERY_LISTEN_MAX_USEC));
        if (++d->round >= DISCOVERY_ROUNDS) {
                discovery_finish(d);
                return 0;
        }
        d->next = 0;
        d->listening = false;
        d->drained = true;
        return discovery_send(d);
}

static int on_discovery_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct smp_transport_discovery *d = userdata;
        uint64_t now;

        d->n_ref++;
        int r = sd_event_now(d->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = d->listening ? discovery_listen(d, now) : discovery_pace(d, now);
        if (r < 0)
                discovery_finish(d);
        discovery_unref(d);
        return 0;
}

/* A receive buffer for the answers of a whole range if the kernel allows
 * (net.core.rmem_max), and batches of half of what it really holds. */
static void discovery_size_buffer(struct smp_transport_discovery *d) {
        int want = (int) MIN((uint64_t) d->n_targets * DISCOVERY_ANSWER_COST, (uint64_t) DISCOVERY_RCVBUF_MAX);
        int have = 0;
        socklen_t len = sizeof(have);

        /* Best effort: the kernel caps it, and we read back what it gave. */
        (void) setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
        if (getsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &have, &len) < 0 || have <= 0)
                have = 0;
        /* getsockopt() reports twice what was set, the kernel's own
         * bookkeeping included; what is left for answers is about half. */
        d->batch = MAX((uint32_t) have / 2u / DISCOVERY_ANSWER_COST / 2u, DISCOVERY_BATCH_MIN);
}

/* HOST:PORT[-PORT] or A.B.C.D-A.B.C.E:PORT[-PORT]. */
static int parse_range(const char *args, struct smp_transport_discovery *d) {
        size_t len = strnlen(args, SMP_CONN_MAX + 1), host_len;
        uint64_t lo, hi;
        int r;

        if (len > SMP_CONN_MAX)
                return -ENAMETOOLONG;
        r = split_host_port(args, len, &host_len);
        if (r < 0)
                return r;

        /* Ports. */
        const char *p = args + host_len + 1;
        size_t p_len = len - host_len - 1;
        const char *dash = memchr(p, '-', p_len);
        if (dash) {
                if (smp_parse_uint_n(p, (size_t) (dash - p), 1, 65535, &lo) < 0 ||
                    smp_parse_uint_n(dash + 1, p_len - (size_t) (dash - p) - 1, 1, 65535, &hi) < 0)
                        return -EINVAL;
        } else {
                if (smp_parse_uint_n(p, p_len, 1, 65535, &lo) < 0)
                        return -EINVAL;
                hi = lo;
        }
        if (lo == 0 || hi < lo)
                return -EINVAL;

        /* Addresses: a dash range only for IPv4 (no bracket). */
        dash = args[0] != '[' ? memchr(args, '-', host_len) : NULL;
        uint32_t n_addrs = 1;
        r = parse_host(args, dash ? (size_t) (dash - args) : host_len, &d->base);
        if (r < 0)
                return r;
        if (dash) {
                struct udp_addr last;
                r = parse_host(dash + 1, host_len - (size_t) (dash - args) - 1, &last);
                if (r < 0 || last.family != AF_INET)
                        return -EINVAL;
                uint32_t a = ntohl(d->base.in4.sin_addr.s_addr), b = ntohl(last.in4.sin_addr.s_addr);
                if (b < a || b - a >= DISCOVERY_TARGETS_MAX)
                        return b < a ? -EINVAL : -E2BIG;
                n_addrs = b - a + 1;
        }
        uint64_t n = (uint64_t) n_addrs * (hi - lo + 1);
        if (n > DISCOVERY_TARGETS_MAX)
                return -E2BIG;
        d->n_addrs = n_addrs;
        d->port_lo = (uint16_t) lo;
        d->n_ports = (uint32_t) (hi - lo + 1);
        d->n_targets = (uint32_t) n;
        return 0;
}

static int udp_discover_start(struct smp_transport_instance *instance, sd_event *event, const char *args,
                              smp_discovered_fn found, void *userdata, struct smp_transport_discovery **ret) {
        int r;

        if (!event || !args || !found || !ret)
                return -EINVAL;

        _cleanup_free_ struct smp_transport_discovery *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->fd = -1;
        r = parse_range(args, d);
        if (r < 0)
                return r;

        /* A v2 read of the mcumgr parameters with an empty map as body.
         * The sequence number comes from the clock: answers to an earlier
         * discovery that arrive late are not taken for ours. */
        uint64_t now = 0;
        (void) sd_event_now(event, CLOCK_MONOTONIC, &now);
        d->seq = (uint8_t) (now / 1000u);
        const struct smp_header hdr = {
                .op = SMP_OP_READ,
                .version = SMP_VERSION_2,
                .group = SMP_GROUP_OS,
                .seq = d->seq,
                .id = SMP_OS_CMD_MCUMGR_PARAMS,
        };
        static const uint8_t empty_map[] = { 0xa0 };
        r = smp_frame_build(&hdr, empty_map, sizeof(empty_map), d->probe, sizeof(d->probe));
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(d->base.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        d->event = sd_event_ref(event);
        d->n_ref = 1;
        d->found = found;
        d->userdata = userdata;
        r = sd_event_add_io(event, &d->io, fd, EPOLLIN, on_discovery_io, d);
        if (r >= 0)
                r = sd_event_add_time(event, &d->timer, CLOCK_MONOTONIC, UINT64_MAX, 10000,
                                      on_discovery_timer, d);
        if (r < 0) {
                discovery_shutdown(d);
                sd_event_unref(d->event);
                return r;
        }
        d->fd = fd;
        fd = -1;
        discovery_size_buffer(d);
        d->drained = true;
        r = discovery_send(d);
        if (r < 0) {
                discovery_shutdown(d);
                sd_event_unref(d->event);
                return r;
        }
        *ret = d;
        d = NULL;
        return 0;
}

static void udp_discover_stop(struct smp_transport_discovery *d) {
        if (!d || d->stopped)
                return;
        d->stopped = true;
        discovery_shutdown(d);
        discovery_unref(d);
}

static int udp_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        struct smp_transport_instance *i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->host = host;
        *ret = i;
        return 0;
}

static void udp_instance_free(struct smp_transport_instance *i) {
        if (i)
                free(i->rx);
        free(i);
}

const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "udp",
        .description = "raw SMP over UDP (Zephyr smp_udp)",
        .conn_syntax = &udp_syntax,
        .instance_new = udp_instance_new,
        .instance_free = udp_instance_free,
        .open = udp_open,
        .close = udp_close,
        .send = udp_send,
        .get_info = udp_get_info,
        .get_stats = udp_get_stats,
        .discover_start = udp_discover_start,
        .discover_stop = udp_discover_stop,
};
