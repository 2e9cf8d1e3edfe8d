/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "smpgw/smp-serial.h"
#include "sim-serial.h"
#include "util.h"

/* Output not yet taken by the pty: bounded like a UART FIFO plus driver
 * ring buffer; a client that never reads loses answers, not memory. */
#define SERIAL_TX_MAX (256u * 1024u)

struct sim_serial {
        struct sim_device *device;
        int master_fd;
        int slave_fd;             /* kept open so the master never sees EIO */
        sd_event_source *source;
        struct smp_serial_decoder *decoder;
        char link_path[4096];
        uint8_t *tx;
        size_t tx_len;
};

static void on_packet(const uint8_t *frame, size_t len, void *userdata) {
        struct sim_serial *s = userdata;
        struct sim_route route = { .kind = SIM_TRANSPORT_SERIAL };
        sim_device_receive(s->device, &route, frame, len);
}

static void on_dropped(enum smp_serial_drop why, void *userdata) {
        struct sim_serial *s = userdata;
        dev_log(s->device, 2, "serial packet dropped: %s", smp_serial_drop_to_string(why));
}

static const struct smp_serial_callbacks serial_callbacks = {
        .packet = on_packet,
        .dropped = on_dropped,
};

static int serial_flush(struct sim_serial *s) {
        while (s->tx_len > 0) {
                ssize_t n = write(s->master_fd, s->tx, s->tx_len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                memmove(s->tx, s->tx + n, s->tx_len - (size_t) n);
                s->tx_len -= (size_t) n;
        }
        return sd_event_source_set_io_events(s->source, EPOLLIN | (s->tx_len ? EPOLLOUT : 0));
}

static int on_serial_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct sim_serial *s = userdata;

        if (revents & EPOLLIN) {
                uint8_t *buf = s->device->sim->rx_buf;
                ssize_t n = read(fd, buf, SIM_RX_BUF_SIZE);
                if (n > 0)
                        smp_serial_decoder_feed(s->decoder, buf, (size_t) n);
        }
        if (revents & EPOLLOUT)
                (void) serial_flush(s);
        return 0;
}

int sim_serial_open(struct sim *sim, struct sim_device *d, const char *dir) {
        _cleanup_free_ struct sim_serial *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->device = d;
        s->master_fd = s->slave_fd = -1;

        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (master < 0)
                return -errno;
        if (grantpt(master) < 0 || unlockpt(master) < 0)
                return -errno;
        char pts[128];
        if (ptsname_r(master, pts, sizeof(pts)) != 0)
                return -errno;

        /* Raw on the device side, so our answers are not echoed back to us
         * and bytes pass unchanged whatever the client sets. */
        _cleanup_close_ int slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return -errno;
        struct termios t;
        if (tcgetattr(slave, &t) < 0)
                return -errno;
        cfmakeraw(&t);
        if (tcsetattr(slave, TCSANOW, &t) < 0)
                return -errno;

        snprintf(s->link_path, sizeof(s->link_path), "%s/%s", dir, d->name);
        (void) unlink(s->link_path);
        if (symlink(pts, s->link_path) < 0)
                return -errno;

        r = smp_serial_decoder_new(SMP_SERIAL_FRAME_MAX, &serial_callbacks, s, &s->decoder);
        if (r < 0)
                return r;
        r = sd_event_add_io(sim->event, &s->source, master, EPOLLIN, on_serial_io, s);
        if (r < 0) {
                smp_serial_decoder_free(s->decoder);
                return r;
        }
        s->master_fd = TAKE_FD(master);
        s->slave_fd = TAKE_FD(slave);
        d->serial = TAKE_PTR(s);
        return 0;
}

void sim_serial_send(struct sim_device *d, const uint8_t *frame, size_t len) {
        struct sim_serial *s = d->serial;
        if (!s)
                return;

        size_t need = smp_serial_encoded_size(len, SMP_SERIAL_LINE_MAX);
        if (need == 0 || s->tx_len + need > SERIAL_TX_MAX) {
                dev_log(d, 1, "serial output full, answer dropped");
                return;
        }
        uint8_t *tx = realloc(s->tx, s->tx_len + need);
        if (!tx)
                return;
        s->tx = tx;
        int n = smp_serial_encode(frame, len, SMP_SERIAL_LINE_MAX, s->tx + s->tx_len, need);
        if (n < 0)
                return;
        s->tx_len += (size_t) n;
        (void) serial_flush(s);
}

void sim_serial_close(struct sim_device *d) {
        struct sim_serial *s = d->serial;
        if (!s)
                return;
        s->source = sd_event_source_disable_unref(s->source);
        smp_serial_decoder_free(s->decoder);
        if (s->link_path[0])
                (void) unlink(s->link_path);
        if (s->master_fd >= 0)
                close(s->master_fd);
        if (s->slave_fd >= 0)
                close(s->slave_fd);
        free(s->tx);
        free(s);
        d->serial = NULL;
}
