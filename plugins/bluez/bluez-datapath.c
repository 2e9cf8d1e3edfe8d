/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A ble link's data path once connected and resolved: AcquireWrite and
 * AcquireNotify sockets (one SOCK_SEQPACKET datagram = one ATT value),
 * falling back per direction to WriteValue(type=command) and StartNotify
 * when BlueZ refuses (mode=notify uses those only); frames queued by
 * send() cut into ATT MTU - 3 pieces; notifications delivered as stream
 * pieces.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bluez.h"

void txq_clear(struct smp_link *l) {
        while (l->txq) {
                struct tx_frame *f = l->txq;
                l->txq = f->next;
                free(f);
        }
        l->txq_tail = NULL;
        l->txq_bytes = 0;
}


void link_check_resolved(struct smp_link *l) {
        if (l->state != ST_RESOLVE || !l->resolved || !l->chrc_path[0])
                return;
        l->timer = sd_event_source_disable_unref(l->timer);
        link_start_acquire(l);
}

void link_deliver(struct smp_link *l, const uint8_t *data, size_t len) {
        if (len == 0)
                return;
        l->stats.rx_packets++;
        l->stats.rx_bytes += len;
        if (l->cb->receive)
                l->cb->receive(data, len, l->userdata);
}

static int on_notify_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        uint8_t buf[ATT_MTU_MAX + 16];

        for (unsigned i = 0; i < 64 && l->state == ST_READY && !l->closed_by_user; i++) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
                if (n == 0) {
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
                link_deliver(l, buf, (size_t) n);
        }
        if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN) && l->state == ST_READY)
                link_fail(l, -ECONNRESET);
        return 0;
}

static int on_write_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        if (revents & (EPOLLHUP | EPOLLERR)) {
                link_fail(l, -ECONNRESET);
                return 0;
        }
        (void) sd_event_source_set_io_events(s, EPOLLIN);
        link_flush(l);
        return 0;
}

static int on_write_value(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(link_unrefp) struct smp_link *l = link_ref(userdata);
        sd_bus_slot *slot = sd_bus_get_current_slot(l->bus);
        for (size_t i = 0; i < ELEMENTSOF(l->writevalue); i++)
                if (l->writevalue[i] && l->writevalue[i] == slot) {
                        l->writevalue[i] = sd_bus_slot_unref(l->writevalue[i]);
                        l->writevalue_inflight--;
                }
        int r = reply_errno(l->instance, l, "WriteValue", m);
        if (r < 0) {
                l->stats.lost++;
                if (r == -ENOTCONN || r == -ENODEV) {
                        link_fail(l, -ECONNRESET);
                        return 0;
                }
        }
        link_flush(l);
        return 0;
}

static int write_value(struct smp_link *l, const uint8_t *p, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->chrc_path, CHRC_IFACE, "WriteValue");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', p, n);
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 1, "type", "s", "command");
        size_t i = 0;
        while (i < ELEMENTSOF(l->writevalue) && l->writevalue[i])
                i++;
        if (r >= 0 && i == ELEMENTSOF(l->writevalue))
                r = -EBUSY;
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->writevalue[i], m, on_write_value, l, 0);
        if (r >= 0)
                l->writevalue_inflight++;
        return r;
}

/* Bytes of a packet per write: MTU - 3, at most ATT_VALUE_MAX. */
static size_t link_piece_max(const struct smp_link *l) {
        return MIN((size_t) l->mtu - ATT_HDR, (size_t) ATT_VALUE_MAX);
}

void link_flush(struct smp_link *l) {
        _cleanup_(link_unrefp) _unused_ struct smp_link *ref = link_ref(l);
        size_t piece_max = link_piece_max(l);

        if (l->state != ST_READY)
                return;
        while (l->txq) {
                struct tx_frame *f = l->txq;
                size_t n = MIN(piece_max, f->len - f->off);
                if (l->write_fd >= 0) {
                        ssize_t k = send(l->write_fd, f->data + f->off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (k < 0) {
                                if (errno == EAGAIN || errno == ENOBUFS) {
                                        (void) sd_event_source_set_io_events(l->write_src, EPOLLIN | EPOLLOUT);
                                        return;
                                }
                                if (errno == EINTR)
                                        continue;
                                link_fail(l, -ECONNRESET);
                                return;
                        }
                } else {
                        if (l->writevalue_inflight >= WRITEVALUE_INFLIGHT_MAX)
                                return;
                        int r = write_value(l, f->data + f->off, n);
                        if (r < 0) {
                                link_fail(l, r);
                                return;
                        }
                }
                l->stats.tx_packets++;
                l->stats.tx_bytes += n;
                f->off += n;
                if (f->off == f->len) {
                        l->txq = f->next;
                        if (!l->txq)
                                l->txq_tail = NULL;
                        l->txq_bytes -= f->len;
                        free(f);
                }
        }
        if (l->want_writable && l->txq_bytes < TXQ_MAX / 2) {
                l->want_writable = false;
                if (l->cb->writable)
                        l->cb->writable(l->userdata);
        }
}

static void link_set_ready(struct smp_link *l) {
        if (l->state != ST_ACQUIRE || l->acquire_pending_write || l->acquire_pending_notify)
                return;
        l->state = ST_READY;
        ble_debug(l->instance, l, "%s ready: write %s, notify %s, ATT MTU %u", l->address, l->write_fd >= 0 ? "socket" : "WriteValue",
                  l->notify_fd >= 0 ? "socket" : "StartNotify", l->mtu);
        link_flush(l);
}

static bool acquire_refused(int r) {
        return r == -EPERM || r == -EIO || r == -EOPNOTSUPP || r == -EINPROGRESS;
}

/* StartNotify refused with NotPermitted "Notify acquired": bluetoothd
 * (5.66 characteristic_start_notify()) holds an acquired notification
 * for the characteristic, and this link holds none.  Another program may
 * hold it; or nobody does: before 5.84 (commit 476ae809a), an
 * AcquireNotify whose CCC write failed (an unpaired device that needs an
 * authenticated link) or whose link dropped meanwhile stays half set up,
 * and every AcquireNotify and StartNotify is refused so until bluetoothd
 * restarts or the device object goes.  Retrying cannot help: say which. */
static bool notify_held_elsewhere(const sd_bus_error *e) {
        return e && sd_bus_error_has_name(e, BLUEZ_ERROR "NotPermitted") && e->message &&
               streq(e->message, "Notify acquired");
}

/* The data path's calls get resolve-timeout, not sd-bus's 25 s: each one
 * answers at once unless bluetoothd waits on the device, and the one that
 * waits is the CCC write behind AcquireNotify and StartNotify, which
 * bluetoothd sends again after raising the link's security when the device
 * wants an authenticated link: pairing that no one answers, or a device
 * gone, holds it. */
static int datapath_call(struct smp_link *l, const char *method, bool options, sd_bus_message_handler_t handler) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->chrc_path, CHRC_IFACE, method);
        if (r >= 0 && options)
                r = sd_bus_message_append(m, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(l->bus, &l->call, m, handler, l, l->resolve_timeout_usec);
        return r;
}

/* A data path call that got no answer within resolve-timeout: say which,
 * and what usually holds it. */
static void datapath_call_timed_out(struct smp_link *l, const char *method) {
        smp_host_log(l->instance->host, SMP_LOG_WARNING,
                     "%s: bluetoothd did not answer %s within resolve-timeout (%" PRIu64 " ms): a device that "
                     "wants an authenticated link waits for pairing ('bluetoothctl pair %s' pairs it), or the "
                     "device went away (doc/transport-ble.md)",
                     l->address, method, l->resolve_timeout_usec / 1000u, l->address);
}

static int on_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        l->acquire_pending_notify = false;
        int r = reply_errno(l->instance, l, "StartNotify", m);
        if (r == -ETIMEDOUT)
                datapath_call_timed_out(l, "StartNotify");
        if (r < 0 && notify_held_elsewhere(sd_bus_message_get_error(m))) {
                smp_host_log(l->instance->host, SMP_LOG_WARNING,
                             "%s: bluetoothd refuses notifications (NotPermitted \"Notify acquired\"): another "
                             "program holds them, or bluetoothd before 5.84 kept them from an AcquireNotify that "
                             "failed (a device that needs pairing, or a link lost meanwhile); 'systemctl restart "
                             "bluetooth' or 'bluetoothctl remove %s' clears that (doc/transport-ble.md)",
                             l->address, l->address);
                r = -EBUSY;
        }
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        l->notify_dbus = true;
        link_set_ready(l);
        return 0;
}

static void link_start_notify(struct smp_link *l) {
        int r = datapath_call(l, "StartNotify", false, on_start_notify);
        if (r < 0)
                link_fail(l, r);
}

static int read_acquired(struct smp_link *l, sd_bus_message *m, int *ret_fd) {
        int fd;
        uint16_t mtu;
        int r = sd_bus_message_read(m, "hq", &fd, &mtu);
        if (r < 0)
                return r;
        /* The fd belongs to the message. */
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        if (mtu >= ATT_MTU_MIN)
                l->mtu = MIN((unsigned) mtu, ATT_MTU_MAX);
        *ret_fd = copy;
        return 0;
}

static int on_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        int r = reply_errno(l->instance, l, "AcquireNotify", m);
        if (r == -ETIMEDOUT)
                datapath_call_timed_out(l, "AcquireNotify");
        if (r < 0) {
                if (acquire_refused(r)) {
                        ble_debug(l->instance, l, "AcquireNotify refused, using StartNotify");
                        link_start_notify(l);
                } else
                        link_fail(l, r);
                return 0;
        }
        r = read_acquired(l, m, &l->notify_fd);
        if (r >= 0)
                r = sd_event_add_io(l->event, &l->notify_src, l->notify_fd, EPOLLIN, on_notify_io, l);
        if (r < 0) {
                link_fail(l, r);
                return 0;
        }
        l->acquire_pending_notify = false;
        link_set_ready(l);
        return 0;
}

static void link_notify_path(struct smp_link *l) {
        if (l->mode_notify) {
                link_start_notify(l);
                return;
        }
        int r = datapath_call(l, "AcquireNotify", true, on_acquire_notify);
        if (r < 0)
                link_fail(l, r);
}

static int on_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct smp_link *l = userdata;
        l->call = sd_bus_slot_unref(l->call);
        int r = reply_errno(l->instance, l, "AcquireWrite", m);
        if (r == -ETIMEDOUT)
                datapath_call_timed_out(l, "AcquireWrite");
        if (r < 0) {
                if (!acquire_refused(r)) {
                        link_fail(l, r);
                        return 0;
                }
                ble_debug(l->instance, l, "AcquireWrite refused, using WriteValue(type=command)");
                l->write_dbus = true;
        } else {
                r = read_acquired(l, m, &l->write_fd);
                if (r >= 0)
                        r = sd_event_add_io(l->event, &l->write_src, l->write_fd, EPOLLIN, on_write_io, l);
                if (r < 0) {
                        link_fail(l, r);
                        return 0;
                }
        }
        l->acquire_pending_write = false;
        link_notify_path(l);
        return 0;
}

void link_start_acquire(struct smp_link *l) {
        l->state = ST_ACQUIRE;
        l->acquire_pending_write = true;
        l->acquire_pending_notify = true;
        if (l->mode_notify) {
                l->write_dbus = true;
                l->acquire_pending_write = false;
                link_notify_path(l);
                return;
        }
        int r = datapath_call(l, "AcquireWrite", true, on_acquire_write);
        if (r < 0)
                link_fail(l, r);
}

void link_restart(struct smp_link *l) {
        l->retries++;
        ble_debug(l->instance, l, "link lost before it was ready, connecting again (retry %u)", l->retries);
        l->call = sd_bus_slot_unref(l->call);
        l->write_src = sd_event_source_disable_unref(l->write_src);
        l->notify_src = sd_event_source_disable_unref(l->notify_src);
        if (l->write_fd >= 0)
                close(l->write_fd);
        if (l->notify_fd >= 0)
                close(l->notify_fd);
        l->write_fd = l->notify_fd = -1;
        l->notify_dbus = l->write_dbus = false;
        l->acquire_pending_write = l->acquire_pending_notify = false;
        l->resolved = false;
        l->state = ST_RETRY;
        if (link_set_timer(l, RETRY_DELAY_USEC, on_retry) < 0)
                link_fail(l, -ENOMEM);
}

static int txq_push(struct smp_link *l, const uint8_t *data, size_t len) {
        struct tx_frame *f = malloc(sizeof(*f) + len);
        if (!f)
                return -ENOMEM;
        f->next = NULL;
        f->len = len;
        f->off = 0;
        memcpy(f->data, data, len);
        if (l->txq_tail)
                l->txq_tail->next = f;
        else
                l->txq = f;
        l->txq_tail = f;
        l->txq_bytes += len;
        return 0;
}

int ble_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        int r;

        if (l->state == ST_FAILED)
                return -ENOTCONN;
        if (len == 0)
                return -EINVAL;
        if (l->txq && l->txq_bytes + len > TXQ_MAX) {
                l->want_writable = true;
                return -EAGAIN;
        }
        /* Several frames in one call: each is cut on its own, since the
         * device reassembles one frame from its first piece's header. */
        while (len > 0) {
                size_t n = len;
                if (len >= SMP_HEADER_SIZE && SMP_HEADER_SIZE + (size_t) unaligned_read_be16(frame + 2) <= len)
                        n = SMP_HEADER_SIZE + unaligned_read_be16(frame + 2);
                r = txq_push(l, frame, n);
                if (r < 0)
                        return r;
                frame += n;
                len -= n;
        }
        if (l->state == ST_READY)
                link_flush(l);
        return 0;
}

void ble_get_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) {
                .mtu = link_piece_max(l),
                .fragments = true,
                .fragments_need_device = true,
                .stream = true,
                /* L2CAP header + ATT opcode and handle */
                .overhead = 4 + ATT_HDR,
        };
}

void ble_get_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = l->stats;
}
