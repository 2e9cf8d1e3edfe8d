/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-cbor.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-os.h"
#include "test-client.h"
#include "test-context.h"
#include "test-loop.h"
#include "test-util.h"

static void on_receive(const uint8_t *data, size_t len, void *userdata) {
        struct test_client *c = userdata;

        c->pieces++;
        ASSERT_TRUE(c->rx_len + len <= TEST_CLIENT_RX_MAX);
        if (c->rx_len + len > c->rx_cap) {
                size_t cap = MAX(c->rx_cap * 2, c->rx_len + len);
                c->rx = realloc(c->rx, cap);
                ASSERT_TRUE(c->rx);
                c->rx_cap = cap;
        }
        memcpy(c->rx + c->rx_len, data, len);
        c->rx_len += len;
        while (c->rx_len - c->whole >= SMP_HEADER_SIZE) {
                size_t n = SMP_HEADER_SIZE + unaligned_read_be16(c->rx + c->whole + 2);
                if (c->rx_len - c->whole < n)
                        break;
                c->last_off = c->whole;
                c->whole += n;
                c->frames++;
        }
        if (c->close_in_receive && c->link) {
                c->t->close(c->link);
                c->link = NULL;
        }
}

static void on_closed(int err, void *userdata) {
        struct test_client *c = userdata;
        ASSERT_TRUE(err < 0);
        c->closed = true;
        c->closed_err = err;
}

static void on_writable(void *userdata) {
        struct test_client *c = userdata;
        c->writable++;
}

static const struct smp_link_callbacks callbacks = {
        .receive = on_receive,
        .closed = on_closed,
        .writable = on_writable,
};

int test_client_open(struct test_client *c, struct smp_context *ctx, sd_event *event, const char *conn) {
        memset(c, 0, sizeof(*c));
        int r = test_link_open(ctx, event, conn, &callbacks, c, &c->t, &c->link);
        if (r < 0) {
                c->link = NULL;
                return r;
        }
        c->event = sd_event_ref(event);
        return 0;
}

void test_client_close(struct test_client *c) {
        if (c->link)
                c->t->close(c->link);
        c->link = NULL;
        if (c->event)
                ASSERT_OK(sd_event_run(c->event, 0));
        c->event = sd_event_unref(c->event);
        free(c->rx);
        c->rx = NULL;
        c->rx_len = c->rx_cap = c->whole = c->last_off = 0;
}

void test_client_clear(struct test_client *c) {
        /* A piece of a frame not complete yet stays. */
        if (c->rx_len > c->whole)
                memmove(c->rx, c->rx + c->whole, c->rx_len - c->whole);
        c->rx_len -= c->whole;
        c->whole = c->last_off = 0;
        c->frames = 0;
}

struct wait_for {
        const struct test_client *c;
        unsigned frames;
};

static bool have_frames(void *userdata) {
        const struct wait_for *w = userdata;
        return w->c->frames >= w->frames || w->c->closed;
}

bool test_client_wait(struct test_client *c, unsigned frames, uint64_t timeout_usec) {
        struct wait_for w = { c, frames };
        (void) test_run_until_fn(c->event, have_frames, &w, timeout_usec);
        return c->frames >= frames;
}

bool test_client_wait_closed(struct test_client *c, uint64_t timeout_usec) {
        return test_run_until(c->event, &c->closed, timeout_usec);
}

const uint8_t *test_client_frame(const struct test_client *c, unsigned index, size_t *ret_len) {
        size_t off = 0;

        ASSERT_TRUE(c->frames > 0);
        if (index == TEST_CLIENT_LAST)
                off = c->last_off;
        else {
                ASSERT_TRUE(index < c->frames);
                for (unsigned i = 0; i < index; i++)
                        off += SMP_HEADER_SIZE + unaligned_read_be16(c->rx + off + 2);
        }
        *ret_len = SMP_HEADER_SIZE + unaligned_read_be16(c->rx + off + 2);
        return c->rx + off;
}

size_t test_echo_frame(uint8_t seq, const char *text, uint8_t *out, size_t cap) {
        uint8_t body[8192];
        struct smp_cbor_writer w;
        const struct smp_header h = {
                .op = SMP_OP_WRITE,
                .version = SMP_VERSION_2,
                .group = SMP_GROUP_OS,
                .seq = seq,
                .id = SMP_OS_CMD_ECHO,
        };

        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_os_echo_req_encode(&w, smp_cbor_slice_str(text)));
        int n = smp_cbor_writer_finish(&w);
        ASSERT_OK(n);
        n = smp_frame_build(&h, body, (size_t) n, out, cap);
        ASSERT_OK(n);
        return (size_t) n;
}

void test_check_echo(const uint8_t *frame, size_t len, uint8_t seq, const char *text) {
        struct smp_header h;
        struct smp_cbor_slice got;

        ASSERT_OK(smp_header_decode(frame, len, &h));
        ASSERT_EQ(h.op, SMP_OP_WRITE_RSP);
        ASSERT_EQ(h.version, SMP_VERSION_2);
        ASSERT_EQ(h.group, SMP_GROUP_OS);
        ASSERT_EQ(h.id, SMP_OS_CMD_ECHO);
        ASSERT_EQ(h.seq, seq);
        ASSERT_EQ(h.len + SMP_HEADER_SIZE, len);
        ASSERT_OK(smp_os_echo_rsp_decode(frame + SMP_HEADER_SIZE, h.len, &got, NULL));
        ASSERT_EQ(got.len, strlen(text));
        ASSERT_MEMEQ(got.ptr, text, got.len);
}

void test_client_check_echo(const struct test_client *c, unsigned index, uint8_t seq, const char *text) {
        size_t len;
        const uint8_t *f = test_client_frame(c, index, &len);
        test_check_echo(f, len, seq, text);
}
