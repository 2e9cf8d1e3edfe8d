/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP over a serial console (Zephyr "SMP over console", UART or USB CDC
 * ACM, MCUboot serial recovery):
 *
 *   serial:/dev/PATH[,baud=N]
 *
 * PATH is a tty under /dev/ (a pty works: smpsim's devices are ptys, at
 * /dev/pts/N); libsmpgw checks the grammar (smp-conn.h).  baud defaults to
 * 115200 and must be one of the termios rates.
 *
 * Frames are wrapped in the console framing of smp-serial.h (length,
 * CRC16, base64 in lines of at most 127 bytes) and unwrapped here, so the
 * session sees whole packets: stream = false.  The device keeps length
 * and CRC in its SMP buffer, hence buffer_overhead = 4.  Packets the
 * decoder drops (bad CRC, bad base64, cut short) count as lost.  The byte
 * counters count SMP bytes, like every transport; the console framing
 * adds about a third on the wire.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <smpgw/smp-serial.h>
#include <smpgw/smp-transport.h>

#include "plugin-util.h"

#define SERIAL_BAUD_DEFAULT 115200u
/* Bytes taken off the tty per read, and reads per wake-up. */
#define SERIAL_RX_CHUNK 4096u
#define SERIAL_RX_BATCH 16
/* Per packet on the wire beyond the frame: length and CRC, and the first
 * line's marker and newline; base64 then adds a third to everything. */
#define SERIAL_OVERHEAD (4u + 3u)

static const struct {
        unsigned long rate;
        speed_t speed;
} baud_rates[] = {
        { 50, B50 },           { 75, B75 },           { 110, B110 },         { 134, B134 },
        { 150, B150 },         { 200, B200 },         { 300, B300 },         { 600, B600 },
        { 1200, B1200 },       { 1800, B1800 },       { 2400, B2400 },       { 4800, B4800 },
        { 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },     { 57600, B57600 },
        { 115200, B115200 },   { 230400, B230400 },   { 460800, B460800 },   { 500000, B500000 },
        { 576000, B576000 },   { 921600, B921600 },   { 1000000, B1000000 }, { 1152000, B1152000 },
        { 1500000, B1500000 }, { 2000000, B2000000 }, { 2500000, B2500000 }, { 3000000, B3000000 },
        { 3500000, B3500000 }, { 4000000, B4000000 },
};

/* The same rates as numbers, for the connection string syntax. */
static const uint64_t baud_values[] = {
        50,     75,      110,     134,     150,     200,     300,     600,     1200,    1800,
        2400,   4800,    9600,    19200,   38400,   57600,   115200,  230400,  460800,  500000,
        576000, 921600,  1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000,
};

static const struct smp_conn_option serial_options[] = {
        { .name = "baud", .type = SMP_CONN_OPTION_UINT, .min = 50, .max = 4000000, .allowed = baud_values,
          .n_allowed = ELEMENTSOF(baud_values) },
};

static const struct smp_conn_syntax serial_syntax = {
        .address = SMP_CONN_ADDRESS_DEV_PATH,
        .options = serial_options,
        .n_options = ELEMENTSOF(serial_options),
};

struct smp_transport_instance {
        const struct smp_host *host;
};

static speed_t baud_speed(uint64_t rate) {
        for (size_t i = 0; i < ELEMENTSOF(baud_rates); i++)
                if (baud_rates[i].rate == rate)
                        return baud_rates[i].speed;
        return B115200; /* not reached: the syntax allows only these */
}

struct smp_link {
        unsigned n_ref;
        bool closed;            /* close() was called: report nothing more */
        int error;              /* the link failed */
        bool error_reported;
        bool want_writable;
        int fd;
        sd_event_source *io;
        sd_event_source *defer; /* reports a failure seen inside send() */
        struct smp_serial_decoder *decoder;

        /* Encoded lines not yet taken by the tty: tx[tx_off..tx_len). */
        uint8_t *tx;
        size_t tx_off, tx_len, tx_cap;

        struct smp_link_callbacks cb;
        void *userdata;
        struct smp_link_stats stats;
};

static void link_unref(struct smp_link *l) {
        if (--l->n_ref > 0)
                return;
        smp_serial_decoder_free(l->decoder);
        free(l->tx);
        free(l);
}

static void link_shutdown(struct smp_link *l) {
        l->io = sd_event_source_disable_unref(l->io);
        l->defer = sd_event_source_disable_unref(l->defer);
        if (l->fd >= 0) {
                /* Output the device is not reading (flow stopped, a
                 * stuck USB adapter) would make close() wait for it,
                 * up to 30 s, non-blocking fd or not (the tty layer's
                 * closing_wait): on our one thread, the whole daemon. */
                (void) tcflush(l->fd, TCIOFLUSH);
                /* a pty's tty outlives our close while its master is
                 * open, and with it TIOCEXCL */
                (void) ioctl(l->fd, TIOCNXCL);
                close(l->fd);
        }
        l->fd = -1;
}

/* An I/O error on a tty is the device going away (USB unplugged, pty
 * master closed): to the session that is a reset connection. */
static int map_io_error(int e) {
        return e == EIO || e == ENXIO || e == ENODEV || e == EPIPE ? -ECONNRESET : -e;
}

static void link_report_failure(struct smp_link *l) {
        if (l->error_reported)
                return;
        l->error_reported = true;
        int err = l->error;
        link_shutdown(l);
        if (!l->closed && l->cb.closed)
                l->cb.closed(err, l->userdata);
}

static int on_defer(sd_event_source *s, void *userdata) {
        struct smp_link *l = userdata;
        l->n_ref++;
        link_report_failure(l);
        link_unref(l);
        return 0;
}

/* Records a failure.  From the event loop it is reported at once; from
 * send() it is reported on the next loop iteration, so that the caller
 * never sees closed() from inside its own send(). */
static void link_fail(struct smp_link *l, int err, bool now) {
        if (l->error)
                return;
        l->error = err;
        if (now || !l->io) {
                link_report_failure(l);
                return;
        }
        /* Stop reading and writing; the fd stays open until reported. */
        (void) sd_event_source_set_enabled(l->io, SD_EVENT_OFF);
        if (sd_event_add_defer(sd_event_source_get_event(l->io), &l->defer, on_defer, l) < 0)
                link_report_failure(l);
}

static int link_io_events(struct smp_link *l) {
        bool out = l->tx_len > l->tx_off || l->want_writable;
        return sd_event_source_set_io_events(l->io, EPOLLIN | (out ? EPOLLOUT : 0));
}

/* Writes what the tty takes.  Returns 0 or a negative errno for a failed
 * link. */
static int link_flush(struct smp_link *l) {
        while (l->tx_len > l->tx_off) {
                ssize_t n = write(l->fd, l->tx + l->tx_off, l->tx_len - l->tx_off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return map_io_error(errno);
                }
                l->tx_off += (size_t) n;
        }
        if (l->tx_off == l->tx_len)
                l->tx_off = l->tx_len = 0;
        return link_io_events(l);
}

static void on_packet(const uint8_t *frame, size_t len, void *userdata) {
        struct smp_link *l = userdata;
        if (l->closed || l->error)
                return;
        l->stats.rx_packets++;
        l->stats.rx_bytes += len;
        l->cb.receive(frame, len, l->userdata);
}

static void on_dropped(enum smp_serial_drop why, void *userdata) {
        struct smp_link *l = userdata;
        l->stats.lost++;
}

static const struct smp_serial_callbacks decoder_callbacks = {
        .packet = on_packet,
        .dropped = on_dropped,
};

/* Reads what the tty has.  Returns true when it was drained. */
static bool link_read(struct smp_link *l) {
        uint8_t buf[SERIAL_RX_CHUNK];

        for (int i = 0; i < SERIAL_RX_BATCH && !l->closed && !l->error; i++) {
                ssize_t n = read(l->fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return true;
                        link_fail(l, map_io_error(errno), true);
                        return false;
                }
                if (n == 0) {
                        /* End of file on a tty: the line hung up. */
                        link_fail(l, -ECONNRESET, true);
                        return false;
                }
                smp_serial_decoder_feed(l->decoder, buf, (size_t) n);
        }
        return false;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct smp_link *l = userdata;

        /* Callbacks may close the link: keep it alive until we are done. */
        l->n_ref++;
        /* Read even on hang-up: answers may still be buffered, and the
         * read usually reports the error itself.  A hang-up that leaves
         * nothing to read and no error is one too. */
        if ((revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) && link_read(l) && (revents & EPOLLHUP) &&
            !l->closed && !l->error)
                link_fail(l, -ECONNRESET, true);
        if ((revents & EPOLLOUT) && !l->closed && !l->error) {
                int r = link_flush(l);
                if (r < 0)
                        link_fail(l, r, true);
                else if (l->want_writable && l->tx_len == 0) {
                        /* Drained: whatever was refused fits now. */
                        l->want_writable = false;
                        r = link_io_events(l);
                        if (r < 0)
                                link_fail(l, r, true);
                        else if (l->cb.writable)
                                l->cb.writable(l->userdata);
                }
        }
        link_unref(l);
        return 0;
}

static int serial_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                       const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct termios t;
        uint64_t baud = SERIAL_BAUD_DEFAULT;
        int r = 0;

        if (!event || !conn || !cb || !cb->receive || !ret)
                return -EINVAL;
        (void) smp_conn_get_option_uint(conn, "baud", &baud);
        speed_t speed = baud_speed(baud);

        _cleanup_close_ int fd = open(smp_conn_get_path(conn), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* Two programs writing lines to one console interleave them and
         * corrupt both: one user at a time. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (tcgetattr(fd, &t) < 0)
                return -errno; /* -ENOTTY for anything that is not a tty */
        /* flock() binds only who asks for it (not a terminal program,
         * getty or ModemManager): no other open while we hold it, root's
         * aside (TIOCEXCL). */
        (void) ioctl(fd, TIOCEXCL);
        /* Raw: no echo, no line editing, no CR/NL translation, 8N1; the
         * framing brings its own line structure.  cfmakeraw() keeps what
         * the last program set beside that: hardware or software flow
         * control (a USB adapter with CTS not wired then sends nothing)
         * and two stop bits go; and the lines stay up at close (HUPCL
         * off), or a board wired to reset on DTR (Arduino-style, ESP32)
         * would reset at each of our closes, after every probe. */
        cfmakeraw(&t);
        t.c_iflag &= ~(tcflag_t) (IXOFF | IXANY);
        t.c_cflag &= ~(tcflag_t) (CRTSCTS | CSTOPB | HUPCL);
        t.c_cflag |= CLOCAL | CREAD;
        if (cfsetispeed(&t, speed) < 0 || cfsetospeed(&t, speed) < 0)
                return -errno;
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        /* What an earlier program or session left unread (a half line,
         * an old answer) is not this session's. */
        (void) tcflush(fd, TCIFLUSH);

        struct smp_link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->n_ref = 1;
        l->fd = -1;
        l->cb = *cb;
        l->userdata = userdata;
        /* Room for the largest frame, or for many small ones; a sender
         * that outruns the line gets -EAGAIN, not more memory. */
        l->tx_cap = smp_serial_encoded_size(SMP_SERIAL_FRAME_MAX, SMP_SERIAL_LINE_MAX);
        l->tx = malloc(l->tx_cap);
        if (!l->tx)
                r = -ENOMEM;
        if (r >= 0)
                r = smp_serial_decoder_new(SMP_SERIAL_FRAME_MAX, &decoder_callbacks, l, &l->decoder);
        if (r >= 0)
                r = sd_event_add_io(event, &l->io, fd, EPOLLIN, on_io, l);
        if (r < 0) {
                link_unref(l);
                return r;
        }
        l->fd = fd;
        fd = -1;
        *ret = l;
        return 0;
}

static void serial_close(struct smp_link *l) {
        if (!l || l->closed)
                return;
        l->closed = true;
        link_shutdown(l);
        link_unref(l);
}

static int serial_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        if (!l || l->closed || !frame || len == 0)
                return -EINVAL;
        if (l->error)
                return l->error;
        size_t need = smp_serial_encoded_size(len, SMP_SERIAL_LINE_MAX);
        if (need == 0)
                return -EMSGSIZE;

        if (l->tx_len - l->tx_off + need > l->tx_cap) {
                l->want_writable = true;
                int r = link_io_events(l);
                return r < 0 ? r : -EAGAIN;
        }
        if (l->tx_len + need > l->tx_cap) {
                memmove(l->tx, l->tx + l->tx_off, l->tx_len - l->tx_off);
                l->tx_len -= l->tx_off;
                l->tx_off = 0;
        }
        int n = smp_serial_encode(frame, len, SMP_SERIAL_LINE_MAX, l->tx + l->tx_len,
                                  l->tx_cap - l->tx_len);
        if (n < 0)
                return n;
        l->tx_len += (size_t) n;
        l->stats.tx_packets++;
        l->stats.tx_bytes += len;

        int r = link_flush(l);
        if (r < 0) {
                /* The frame is queued, and lost with the link: report that
                 * through closed() like any other failure. */
                link_fail(l, r, false);
                return r;
        }
        return 0;
}

static void serial_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) {
                .mtu = SMP_SERIAL_FRAME_MAX,
                /* Lines carry a frame of any size the device buffer takes. */
                .fragments = true,
                .stream = false,
                .overhead = SERIAL_OVERHEAD,
                .buffer_overhead = 4,
                .device_line_buffers = true,
        };
}

static void serial_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}

static int serial_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        struct smp_transport_instance *i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        i->host = host;
        *ret = i;
        return 0;
}

static void serial_instance_free(struct smp_transport_instance *i) {
        free(i);
}

const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "serial",
        .description = "SMP console framing over a serial line (UART, USB CDC ACM, pty)",
        .conn_syntax = &serial_syntax,
        .instance_new = serial_instance_new,
        .instance_free = serial_instance_free,
        .open = serial_open,
        .close = serial_close,
        .send = serial_send,
        .get_info = serial_get_info,
        .get_stats = serial_get_stats,
};
