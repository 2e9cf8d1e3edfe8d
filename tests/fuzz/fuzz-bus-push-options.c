/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The options of D-Bus Push() (Manager1.Push(sasa{sv}), Device1.Push(
 * sa{sv})) as smpgwd reads them: bus_read_push_options() (daemon/
 * bus-job.c) on a method call a real sd-bus connection parsed from the
 * fuzzer's bytes, then the engine's check of what it read (mode,
 * attempts), as engine_push() makes it.
 *
 * The fuzzer writes the message body (signature "a{sv}") in the D-Bus
 * wire format, little-endian; this program puts a method call header in
 * front and hands the bytes to the server end of a socket pair
 * (anonymous authentication), so the message is the one sd-bus would
 * give the bus method: what sd-bus refuses never reaches it.  Variants
 * carry their own signatures, so the option types are the fuzzer's. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-internal.h"
#include "conf.h"
#include "engine.h"
#include "fuzz-bus-peer.h"
#include "manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What daemon/main.c defines for the log (the engine logs). */
int smpgwd_log_max_level = -1;
bool smpgwd_log_to_journal = false;

#define INPUT_MAX 65536u

struct wire {
        uint8_t buf[INPUT_MAX + 1024];
        size_t len;
        size_t start;
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

/* A header field: (code, variant of type t holding s). */
static void field_string(struct wire *w, uint8_t code, char t, const char *s) {
        size_t n = strlen(s);

        pad(w, 8);
        w->buf[w->len++] = code;
        w->buf[w->len++] = 1;
        w->buf[w->len++] = (uint8_t) t;
        w->buf[w->len++] = 0;
        if (t == 'g')
                w->buf[w->len++] = (uint8_t) n;
        else
                put_u32(w, (uint32_t) n);
        memcpy(w->buf + w->len, s, n + 1);
        w->len += n + 1;
}

static void put_call(struct wire *w, const uint8_t *body, uint32_t body_len) {
        size_t start = w->len, fields;
        uint32_t fields_len;

        w->start = start;
        w->buf[w->len++] = 'l';
        w->buf[w->len++] = SD_BUS_MESSAGE_METHOD_CALL;
        w->buf[w->len++] = 0;
        w->buf[w->len++] = 1;
        put_u32(w, body_len);
        put_u32(w, 1); /* serial */
        put_u32(w, 0); /* the fields' length, below */
        fields = w->len;
        field_string(w, 1, 'o', "/org/smpgw");
        field_string(w, 2, 's', "org.smpgw.Manager1");
        field_string(w, 3, 's', "Push");
        field_string(w, 8, 'g', "a{sv}");
        fields_len = (uint32_t) (w->len - fields);
        memcpy(w->buf + start + 12, &fields_len, 4);
        pad(w, 8);
        memcpy(w->buf + w->len, body, body_len);
        w->len += body_len;
}

static void read_options(sd_bus_message *m) {
        static struct config config = { .job_mode = SMP_UPDATE_TEST_AND_CONFIRM };
        static struct manager manager = { .config = &config };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct engine_push push = { .image = "0123456789abcdef", .devices_listed = true };
        struct engine_error e;
        int r;

        if (!sd_bus_message_is_method_call(m, "org.smpgw.Manager1", "Push"))
                return;
        r = bus_read_push_options(m, &push, &error);
        if (r >= 0) {
                if (push.mode)
                        (void) strlen(push.mode);
                if (engine_push_check_options(&manager, &push, &e) < 0)
                        assert(e.error == -EINVAL && e.message[0]);
        } else if (sd_bus_error_is_set(&error))
                assert(error.message && error.message[0]);
        sd_bus_error_free(&error);
}

/* Kept from one input to the next (fuzz-bus-peer.h). */
static struct fuzz_bus_peer peer = FUZZ_BUS_PEER_INIT;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct wire w;
        int r = 0;

        if (size > INPUT_MAX)
                return 0;
        w.len = 0;
        put_call(&w, data, (uint32_t) size);

        sd_bus *bus = fuzz_bus_peer_write(
                &peer, SD_ID128_MAKE(73, 6d, 70, 67, 77, 64, 70, 75, 73, 68, 6f, 70, 74, 73, 00, 01), w.buf, w.len);
        for (unsigned i = 0; i < 16; i++) {
                sd_bus_message *m = NULL;
                r = sd_bus_process(bus, &m);

                if (m) {
                        bool end = sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected");

                        if (!end)
                                read_options(m);
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
        return 0;
}
