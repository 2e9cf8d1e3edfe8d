/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-udp.h"
#include "util.h"

int sim_parse_endpoint(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        char host[256];
        const char *port_str;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':' || (size_t) (close - s - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, (size_t) (close - s - 1));
                host[close - s - 1] = 0;
                port_str = close + 2;
        } else {
                const char *colon = strrchr(s, ':');
                if (!colon || (size_t) (colon - s) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, (size_t) (colon - s));
                host[colon - s] = 0;
                port_str = colon + 1;
        }
        char *end;
        errno = 0;
        unsigned long port = strtoul(port_str, &end, 10);
        if (errno || *port_str == 0 || *end || port > 65535)
                return -EINVAL;

        memset(ret, 0, sizeof(*ret));
        struct sockaddr_in *in4 = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t) port);
                *ret_len = sizeof(*in4);
                return 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof(*in6);
                return 0;
        }
        return -EINVAL;
}

void sim_sockaddr_set_port(struct sockaddr_storage *a, uint16_t port) {
        if (a->ss_family == AF_INET)
                ((struct sockaddr_in *) a)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *) a)->sin6_port = htons(port);
}

static int on_udp_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sim_device *d = userdata;
        uint8_t *buf = d->sim->rx_buf;

        /* Edge-triggered (sim_udp_open()): read until the socket is empty. */
        for (;;) {
                struct sim_route route = { .kind = SIM_TRANSPORT_UDP, .addrlen = sizeof(route.addr) };
                ssize_t n = recvfrom(fd, buf, SIM_RX_BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC,
                                     (struct sockaddr *) &route.addr, &route.addrlen);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        dev_log(d, 0, "udp receive failed: %s", strerror(errno));
                        break;
                }
                if ((size_t) n > SIM_RX_BUF_SIZE)
                        continue; /* truncated: far beyond any buffer */
                sim_device_receive(d, &route, buf, (size_t) n);
        }
        return 0;
}

int sim_udp_open(struct sim *sim, struct sim_device *d, const struct sockaddr_storage *base,
                 socklen_t base_len, uint16_t port) {
        struct sockaddr_storage addr = *base;
        int r;

        sim_sockaddr_set_port(&addr, port);
        _cleanup_close_ int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &addr, base_len) < 0)
                return -errno;

        /* Edge-triggered: with thousands of devices probed at once, a
         * level-triggered socket not yet served would come back from every
         * epoll_wait() until it is, and serving N of them would cost N²
         * (10,000 devices answered a discovery in tens of seconds). */
        r = sd_event_add_io(sim->event, &d->udp_source, fd, EPOLLIN | EPOLLET, on_udp_readable, d);
        if (r < 0)
                return r;
        d->udp_fd = TAKE_FD(fd);
        d->port = port;
        return 0;
}

void sim_udp_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len) {
        if (d->udp_fd < 0)
                return;
        if (sendto(d->udp_fd, pkt, len, MSG_DONTWAIT, (const struct sockaddr *) &route->addr, route->addrlen) < 0)
                dev_log(d, 2, "udp send failed: %s", strerror(errno));
}

void sim_udp_close(struct sim_device *d) {
        d->udp_source = sd_event_source_disable_unref(d->udp_source);
        if (d->udp_fd >= 0)
                close(d->udp_fd);
        d->udp_fd = -1;
}
