/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One sd-bus connection for the bus targets' inputs; see fuzz-bus-peer.h. */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-bus-peer.h"

static void peer_close(struct fuzz_bus_peer *p) {
        p->bus = sd_bus_close_unref(p->bus);
        if (p->fd >= 0)
                close(p->fd);
        p->fd = -1;
}

static void peer_open(struct fuzz_bus_peer *p, sd_id128_t server_id) {
        static const char auth[] = "\0AUTH ANONYMOUS\r\nBEGIN\r\n";
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                abort();
        if (write(sv[1], auth, sizeof(auth) - 1) != (ssize_t) (sizeof(auth) - 1))
                abort();
        if (sd_bus_new(&p->bus) < 0 || sd_bus_set_fd(p->bus, sv[0], sv[0]) < 0 ||
            sd_bus_set_server(p->bus, 1, server_id) < 0 || sd_bus_set_anonymous(p->bus, 1) < 0 ||
            sd_bus_start(p->bus) < 0)
                abort();
        p->fd = sv[1];
        /* Through the authentication, before any input's message. */
        for (unsigned i = 0; i < 8; i++) {
                sd_bus_message *m = NULL;
                int r = sd_bus_process(p->bus, &m);
                assert(!m);
                if (r <= 0)
                        break;
        }
}

sd_bus *fuzz_bus_peer_write(struct fuzz_bus_peer *p, sd_id128_t server_id, const uint8_t *messages, size_t len) {
        if (!p->bus)
                peer_open(p, server_id);
        /* Everything is in the socket before sd-bus reads: no peer to wait for. */
        if (len > 0 && write(p->fd, messages, len) != (ssize_t) len)
                abort();
        return p->bus;
}

/* Nothing left unread on the connection or queued in it, still open; and
 * nothing it wrote (the authentication's "OK", a reply) left in its way. */
static bool peer_clean(struct fuzz_bus_peer *p) {
        uint64_t queued = 1;
        int unread = 1;
        char sink[256];

        while (read(p->fd, sink, sizeof(sink)) > 0)
                ;
        return sd_bus_is_open(p->bus) > 0 && sd_bus_get_n_queued_read(p->bus, &queued) >= 0 && queued == 0 &&
               sd_bus_get_n_queued_write(p->bus, &queued) >= 0 && queued == 0 &&
               ioctl(sd_bus_get_fd(p->bus), FIONREAD, &unread) >= 0 && unread == 0;
}

void fuzz_bus_peer_done(struct fuzz_bus_peer *p, int r) {
        if (p->bus && (r != 0 || !peer_clean(p)))
                peer_close(p);
}
