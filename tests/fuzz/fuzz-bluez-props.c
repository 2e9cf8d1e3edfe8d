/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the ble transport reads from the bus, as it reads it: the
 * GetManagedObjects answer (a{oa{sa{sv}}}), InterfacesAdded (oa{sa{sv}}),
 * PropertiesChanged (sa{sv}as) and GetAll (a{sv}) with bluez-bus.c's
 * read_managed_objects(), read_ifaces() and read_props(), errors with
 * reply_errno(), and characteristic Values (notifications) into the SMP
 * reassembler a session puts behind a stream link.  plugins/bluez/
 * bluez-bus.c is compiled in.
 *
 * The fuzzer writes message bodies in the D-Bus wire format; this program
 * puts a header in front (the signature the shape has: variants inside
 * the body carry their own, so types are the fuzzer's to choose) and
 * hands the bytes to a real sd-bus connection (the server end of a socket
 * pair, anonymous authentication), so every message is the one sd-bus
 * would give the plugin: whatever sd-bus refuses never reaches it.
 *
 * Input: records of a kind byte, a little-endian 16-bit length and that
 * many body bytes.  kind % 6: 0 GetManagedObjects answer, 1
 * InterfacesAdded, 2 PropertiesChanged, 3 GetAll answer, 4 an error
 * answer named by kind / 8 (org.bluez errors and others; body "s"), 5
 * InterfacesRemoved (oas). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bluez.h"
#include "fuzz-bus-peer.h"
#include "smpgw/smp-frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* All of it is written into the socket before sd-bus reads any. */
#define INPUT_MAX 65536u
#define RECORDS_MAX 16u

enum kind {
        KIND_MANAGED_OBJECTS,
        KIND_INTERFACES_ADDED,
        KIND_PROPERTIES_CHANGED,
        KIND_GET_ALL,
        KIND_ERROR,
        KIND_INTERFACES_REMOVED,
        _KIND_MAX,
};

static const char *const signatures[_KIND_MAX] = {
        [KIND_MANAGED_OBJECTS] = "a{oa{sa{sv}}}",
        [KIND_INTERFACES_ADDED] = "oa{sa{sv}}",
        [KIND_PROPERTIES_CHANGED] = "sa{sv}as",
        [KIND_GET_ALL] = "a{sv}",
        [KIND_ERROR] = "s",
        [KIND_INTERFACES_REMOVED] = "oas",
};

static const char *const error_names[] = {
        "org.bluez.Error.Failed",
        "org.bluez.Error.NotReady",
        "org.bluez.Error.InProgress",
        "org.bluez.Error.NotPermitted",
        "org.bluez.Error.NotAuthorized",
        "org.bluez.Error.AlreadyConnected",
        "org.bluez.Error.DoesNotExist",
        "org.bluez.Error.NotConnected",
        "org.bluez.Error.NotSupported",
        "org.bluez.Error.InvalidArguments",
        "org.bluez.Error.InvalidLength",
        "org.bluez.Error.AuthenticationFailed",
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.AccessDenied",
        "com.example.Unknown",
};

/* ---- the host the plugin logs to: every message formatted ---- */

__attribute__((format(printf, 3, 0))) static void host_logv(const struct smp_host *host, int level, const char *fmt,
                                                            va_list ap) {
        char line[1024];
        vsnprintf(line, sizeof(line), fmt, ap);
}

static bool host_log_enabled(const struct smp_host *host, int level) {
        return true;
}

static const struct smp_host host = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_host),
        .logv = host_logv,
        .log_enabled = host_log_enabled,
};

/* ---- a D-Bus header in front of the fuzzer's body ---- */

struct wire {
        uint8_t buf[INPUT_MAX + 4096];
        size_t len;
        size_t start;   /* of the message being written: alignment counts from there */
};

static void pad(struct wire *w, size_t align) {
        while ((w->len - w->start) % align)
                w->buf[w->len++] = 0;
}

static void put_u32(struct wire *w, uint32_t v) {
        pad(w, 4);
        memcpy(w->buf + w->len, &v, 4);
        w->len += 4;
}

/* A header field: (code, variant of type t). */
static void field_string(struct wire *w, uint8_t code, char t, const char *s) {
        pad(w, 8);
        w->buf[w->len++] = code;
        w->buf[w->len++] = 1;
        w->buf[w->len++] = (uint8_t) t;
        w->buf[w->len++] = 0;
        size_t n = strlen(s);
        if (t == 'g')
                w->buf[w->len++] = (uint8_t) n;
        else
                put_u32(w, (uint32_t) n);
        memcpy(w->buf + w->len, s, n + 1);
        w->len += n + 1;
}

static void field_u32(struct wire *w, uint8_t code, uint32_t v) {
        pad(w, 8);
        w->buf[w->len++] = code;
        w->buf[w->len++] = 1;
        w->buf[w->len++] = 'u';
        w->buf[w->len++] = 0;
        put_u32(w, v);
}

static void put_message(struct wire *w, enum kind kind, uint8_t sel, uint32_t serial, const uint8_t *body,
                        uint32_t body_len) {
        static const uint8_t type[_KIND_MAX] = {
                [KIND_MANAGED_OBJECTS] = SD_BUS_MESSAGE_METHOD_RETURN,
                [KIND_INTERFACES_ADDED] = SD_BUS_MESSAGE_SIGNAL,
                [KIND_PROPERTIES_CHANGED] = SD_BUS_MESSAGE_SIGNAL,
                [KIND_GET_ALL] = SD_BUS_MESSAGE_METHOD_RETURN,
                [KIND_ERROR] = SD_BUS_MESSAGE_METHOD_ERROR,
                [KIND_INTERFACES_REMOVED] = SD_BUS_MESSAGE_SIGNAL,
        };
        size_t start = w->len;

        /* Messages follow one another unpadded; each aligns its own parts. */
        w->start = start;
        w->buf[w->len++] = 'l';
        w->buf[w->len++] = type[kind];
        w->buf[w->len++] = 0;
        w->buf[w->len++] = 1;
        put_u32(w, body_len);
        put_u32(w, serial);
        put_u32(w, 0); /* the fields' length, below */
        size_t fields = w->len;
        switch (type[kind]) {
        case SD_BUS_MESSAGE_SIGNAL:
                field_string(w, 1, 'o', kind == KIND_PROPERTIES_CHANGED ? "/org/bluez/hci0/dev_C0_DE_00_00_00_01"
                                                                        : "/");
                field_string(w, 2, 's', kind == KIND_PROPERTIES_CHANGED ? PROPS_IFACE : OM_IFACE);
                field_string(w, 3, 's',
                             kind == KIND_PROPERTIES_CHANGED  ? "PropertiesChanged"
                             : kind == KIND_INTERFACES_ADDED ? "InterfacesAdded"
                                                             : "InterfacesRemoved");
                break;
        case SD_BUS_MESSAGE_METHOD_ERROR:
                field_string(w, 4, 's', error_names[(sel / 8) % ELEMENTSOF(error_names)]);
                __attribute__((fallthrough));
        default:
                field_u32(w, 5, serial);
                break;
        }
        field_string(w, 8, 'g', signatures[kind]);
        uint32_t fields_len = (uint32_t) (w->len - fields);
        memcpy(w->buf + start + 12, &fields_len, 4);
        pad(w, 8);
        memcpy(w->buf + w->len, body, body_len);
        w->len += body_len;
}

/* ---- what the link and the discovery do with what they read ---- */

struct state {
        struct smp_transport_instance instance;
        struct smp_reassembler *reassembler;
        char device_path[128], adapter_path[64], chrc_path[192];
        unsigned mtu;
        volatile uint8_t sink;
};

static void touch(struct state *s, const char *str) {
        if (str)
                for (size_t i = 0; str[i]; i++)
                        s->sink ^= (uint8_t) str[i];
}

/* link_on_iface() and discovery_on_iface() in their parts that read. */
static int on_iface(void *userdata, const char *path, const char *iface, const struct dev_props *p) {
        struct state *s = userdata;
        char conn[32];

        touch(s, path);
        touch(s, iface);
        touch(s, p->address);
        touch(s, p->address_type);
        touch(s, p->name);
        touch(s, p->adapter);
        touch(s, p->uuid);
        assert(p->has_value || (!p->value && p->value_len == 0));
        for (size_t i = 0; i < p->value_len; i++)
                s->sink ^= p->value[i];

        if (streq(iface, DEVICE_IFACE) && p->address && p->adapter && !s->device_path[0]) {
                const char *slash = strrchr(p->adapter, '/');
                (void) (slash && streq(slash + 1, "hci0"));
                snprintf(s->device_path, sizeof(s->device_path), "%s", path);
                snprintf(s->adapter_path, sizeof(s->adapter_path), "%s", p->adapter);
                snprintf(conn, sizeof(conn), "ble:%s", p->address);
                (void) strcasecmp(p->address, "C0:DE:00:00:00:01");
        } else if (streq(iface, CHRC_IFACE) && s->device_path[0] && path_is_below(path, s->device_path) && p->uuid &&
                   strcasecmp(p->uuid, SMP_CHRC_UUID) == 0) {
                snprintf(s->chrc_path, sizeof(s->chrc_path), "%s", path);
                if (p->has_mtu && p->mtu >= ATT_MTU_MIN)
                        s->mtu = MIN((unsigned) p->mtu, ATT_MTU_MAX);
        }
        return 0;
}

static void deliver_value(struct state *s, const uint8_t *value, size_t len) {
        struct smp_frame f;
        int r = smp_reassembler_feed(s->reassembler, value, len);
        while (r >= 0 && (r = smp_reassembler_next(s->reassembler, &f)) > 0) {
                assert(f.body_len == f.hdr.len);
                for (size_t i = 0; i < f.body_len; i++)
                        s->sink ^= f.body[i];
        }
}

static void handle(struct state *s, sd_bus_message *m) {
        const char *sig = sd_bus_message_get_signature(m, true);
        const char *str;
        struct dev_props p = {};
        int r;

        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "message %s %s\n", sd_bus_message_get_member(m) ?: "(reply)", sig ?: "");
        if (sd_bus_message_is_method_error(m, NULL)) {
                r = reply_errno(&s->instance, s, "Call", m);
                assert(r < 0);
                return;
        }
        if (!sig)
                return;
        if (streq(sig, signatures[KIND_MANAGED_OBJECTS])) {
                /* As the link does: twice, the characteristic may come
                 * before its device; and as the discovery does. */
                r = read_managed_objects(m, on_iface, s);
                if (r >= 0 && sd_bus_message_rewind(m, true) >= 0)
                        (void) read_managed_objects(m, on_iface, s);
                if (sd_bus_message_rewind(m, true) >= 0)
                        (void) read_managed_objects(m, on_iface, s);
        } else if (streq(sig, signatures[KIND_INTERFACES_ADDED])) {
                if (sd_bus_message_read_basic(m, 'o', &str) >= 0)
                        (void) read_ifaces(m, str, on_iface, s);
        } else if (streq(sig, signatures[KIND_PROPERTIES_CHANGED])) {
                if (sd_bus_message_read_basic(m, 's', &str) < 0 || read_props(m, &p) < 0)
                        return;
                touch(s, str);
                (void) on_iface(s, sd_bus_message_get_path(m), str, &p);
                if (p.has_value)
                        deliver_value(s, p.value, p.value_len);
        } else if (streq(sig, signatures[KIND_GET_ALL])) {
                if (read_props(m, &p) >= 0)
                        (void) on_iface(s, "/org/bluez/hci0/dev_C0_DE_00_00_00_01", DEVICE_IFACE, &p);
        } else if (streq(sig, signatures[KIND_INTERFACES_REMOVED])) {
                if (sd_bus_message_read_basic(m, 'o', &str) >= 0)
                        touch(s, str);
        }
}

/* Kept from one input to the next (fuzz-bus-peer.h); the reassembler
 * too, emptied for each input. */
static struct fuzz_bus_peer peer = FUZZ_BUS_PEER_INIT;
static struct smp_reassembler *reassembler;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct wire w;
        struct state s = { .instance.host = &host, .mtu = ATT_MTU_MIN };
        int r = 0;

        if (size > INPUT_MAX)
                return 0;

        w.len = 0;
        size_t pos = 0;
        uint32_t serial = 1;
        for (unsigned n = 0; n < RECORDS_MAX && pos + 3 <= size; n++) {
                uint8_t sel = data[pos];
                size_t len = MIN((size_t) (data[pos + 1] | data[pos + 2] << 8), size - pos - 3);
                put_message(&w, (enum kind) (sel % _KIND_MAX), sel, serial++, data + pos + 3, (uint32_t) len);
                pos += 3 + len;
        }

        sd_bus *bus = fuzz_bus_peer_write(
                &peer, SD_ID128_MAKE(73, 6d, 70, 67, 77, 66, 75, 7a, 7a, 62, 6c, 75, 65, 7a, 00, 01), w.buf, w.len);
        if (!reassembler && smp_reassembler_new(SMP_FRAME_MAX, &reassembler) < 0)
                abort();
        smp_reassembler_reset(reassembler);
        s.reassembler = reassembler;

        /* Each message, until sd-bus has read them all (or reports an
         * error, or the peer gone). */
        for (unsigned i = 0; i < 4 * RECORDS_MAX + 8; i++) {
                sd_bus_message *m = NULL;
                r = sd_bus_process(bus, &m);
                if (m) {
                        bool end = sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected");
                        if (!end)
                                handle(&s, m);
                        sd_bus_message_unref(m);
                        if (end) {
                                r = -ECONNRESET;
                                break;
                        }
                }
                if (r <= 0)
                        break;
        }

        fuzz_bus_peer_done(&peer, r);
        (void) s.sink;
        return 0;
}
