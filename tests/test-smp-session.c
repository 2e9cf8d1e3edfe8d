/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The session engine's own rules, with an in-process transport so that
 * the test decides exactly which answer arrives when: matching, late and
 * duplicate answers, retransmission, version fallback, link loss,
 * stream reassembly.  (Against real devices the engine is tested through
 * smpgwctl and smpsim in tests/smpgwctl.)
 */
#include <errno.h>

#include "smpgw/smp-error.h"
#include "smpgw/smp-session.h"
#include "test-util.h"

struct smp_link {
        const struct smp_link_callbacks *cb;
        void *userdata;
        bool stream;
        size_t mtu;
        uint8_t sent[16][256];
        size_t sent_len[16];
        unsigned n_sent;
};

static struct smp_link *the_link; /* the one link this test opens */

static int loop_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                     const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        struct smp_link *l = calloc(1, sizeof(*l));
        ASSERT_TRUE(l);
        l->cb = cb;
        l->userdata = userdata;
        l->stream = smp_conn_get_option(conn, "framing") != NULL;
        l->mtu = 64;
        the_link = l;
        *ret = l;
        return 0;
}

static void loop_close(struct smp_link *l) {
        if (the_link == l)
                the_link = NULL;
        free(l);
}

static int loop_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        ASSERT_TRUE(l->n_sent < 16 && len <= 256);
        memcpy(l->sent[l->n_sent], frame, len);
        l->sent_len[l->n_sent++] = len;
        return 0;
}

static void loop_info(struct smp_link *l, struct smp_link_info *ret) {
        *ret = (struct smp_link_info) { .mtu = l->mtu, .stream = l->stream };
}

static void loop_stats(struct smp_link *l, struct smp_link_stats *ret) {
        *ret = (struct smp_link_stats) { 0 };
}

/* No state: any non-NULL pointer will do as the instance. */
static int loop_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        *ret = (struct smp_transport_instance *) host;
        return 0;
}

static void loop_instance_free(struct smp_transport_instance *instance) {
}

/* loop:HOST:PORT[,framing=stream]: the address is not used. */
static const char *const framing_words[] = { "stream", NULL };
static const struct smp_conn_option loop_options[] = {
        { .name = "framing", .type = SMP_CONN_OPTION_WORD, .words = framing_words },
};
static const struct smp_conn_syntax loop_syntax = {
        .address = SMP_CONN_ADDRESS_INET,
        .options = loop_options,
        .n_options = ELEMENTSOF(loop_options),
};

static const struct smp_transport loop_transport = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "loop",
        .conn_syntax = &loop_syntax,
        .instance_new = loop_instance_new,
        .instance_free = loop_instance_free,
        .open = loop_open,
        .close = loop_close,
        .send = loop_send,
        .get_info = loop_info,
        .get_stats = loop_stats,
};

struct outcome {
        int calls;
        int error;
        struct smp_header hdr;
        uint8_t body[64];
        size_t len;
};

static void on_done(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                    size_t len, void *userdata) {
        struct outcome *o = userdata;
        o->calls++;
        o->error = error;
        if (hdr) {
                o->hdr = *hdr;
                o->len = MIN(len, sizeof(o->body));
                memcpy(o->body, body, o->len);
        }
}

/* Answers the n-th sent frame with `body`, optionally with another
 * version or sequence number. */
static void answer(unsigned n, int version, int seq_delta, const uint8_t *body, size_t len) {
        struct smp_header h;
        uint8_t frame[128];
        ASSERT_OK(smp_header_decode(the_link->sent[n], the_link->sent_len[n], &h));
        h.op++;
        if (version >= 0)
                h.version = (uint8_t) version;
        h.seq = (uint8_t) (h.seq + seq_delta);
        int k = smp_frame_build(&h, body, len, frame, sizeof(frame));
        ASSERT_TRUE(k > 0);
        the_link->cb->receive(frame, (size_t) k, the_link->userdata);
}

static const uint8_t EMPTY[] = { 0xa0 };
static const uint8_t ECHO_BODY[] = { 0xa1, 0x61, 0x64, 0x62, 0x68, 0x69 }; /* {"d": "hi"} */
static const uint8_t ECHO_RSP[] = { 0xbf, 0x61, 0x72, 0x62, 0x68, 0x69, 0xff }; /* zcbor {"r": "hi"} */

static const struct smp_request_params ECHO = {
        .op = SMP_OP_WRITE, .group = SMP_GROUP_OS, .id = 0,
        .body = ECHO_BODY, .body_len = sizeof(ECHO_BODY),
};

static sd_event *event;
static struct smp_context *ctx;

static struct smp_session *open_session(const char *conn) {
        struct smp_session *s;
        ASSERT_OK(smp_session_open(ctx, event, conn, &s));
        return s;
}

/* Runs the loop until `usec` has passed. */
static void run_for(uint64_t usec) {
        uint64_t now, until;
        ASSERT_OK(sd_event_now(event, CLOCK_MONOTONIC, &now));
        until = now + usec;
        do {
                ASSERT_OK(sd_event_run(event, until - now));
                ASSERT_OK(sd_event_now(event, CLOCK_MONOTONIC, &now));
        } while (now < until);
}

static void test_match_and_ignore(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome o = { 0 };
        struct smp_session_stats st;

        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &o, NULL));
        ASSERT_EQ(the_link->n_sent, 1);
        ASSERT_EQ(the_link->sent[0][0], 0x0a); /* v2 write */
        answer(0, -1, 1, ECHO_RSP, sizeof(ECHO_RSP)); /* wrong sequence */
        ASSERT_EQ(o.calls, 0);
        answer(0, -1, 0, ECHO_RSP, sizeof(ECHO_RSP));
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, 0);
        ASSERT_EQ(o.len, sizeof(ECHO_RSP));
        answer(0, -1, 0, ECHO_RSP, sizeof(ECHO_RSP)); /* a duplicate */
        ASSERT_EQ(o.calls, 1);
        smp_session_get_stats(s, &st);
        ASSERT_EQ(st.ignored_answers, 2);
        ASSERT_EQ(st.answers, 1);
        smp_session_free(s);
}

static void test_retransmit_and_timeout(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome idem = { 0 }, once = { 0 };
        struct smp_request_params p = ECHO;

        p.idempotent = true;
        p.retries = 5; /* exhausted only after 240 ms: room for a slow machine */
        p.timeout_usec = 40000;
        ASSERT_OK(smp_session_send(s, &p, on_done, &idem, NULL));
        run_for(60000); /* one retransmission at 40 ms, the next due at 80 */
        /* sent again with the same sequence number */
        ASSERT_TRUE(the_link->n_sent >= 2);
        ASSERT_MEMEQ(the_link->sent[0], the_link->sent[1], the_link->sent_len[0]);
        ASSERT_EQ(idem.calls, 0);
        answer(0, -1, 0, ECHO_RSP, sizeof(ECHO_RSP)); /* the late answer to the first one counts */
        ASSERT_EQ(idem.calls, 1);
        ASSERT_EQ(idem.error, 0);

        p.idempotent = false;
        unsigned before = the_link->n_sent;
        ASSERT_OK(smp_session_send(s, &p, on_done, &once, NULL));
        run_for(100000);
        ASSERT_EQ(once.calls, 1);
        ASSERT_EQ(once.error, -ETIMEDOUT);
        ASSERT_EQ(the_link->n_sent, before + 1); /* never repeated */
        smp_session_free(s);
}

/* An answer that waited on device work (the erase behind an upload's
 * first chunk) is no round-trip sample: the timeouts that follow the
 * smoothed RTT must not take the erase's seconds for the link's. */
static void test_no_rtt_sample(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome slow = { 0 }, plain = { 0 };
        struct smp_session_stats st;
        struct smp_request_params p = ECHO;

        p.no_rtt_sample = true;
        ASSERT_OK(smp_session_send(s, &p, on_done, &slow, NULL));
        run_for(30000);
        answer(0, -1, 0, ECHO_RSP, sizeof(ECHO_RSP));
        ASSERT_EQ(slow.calls, 1);
        smp_session_get_stats(s, &st);
        ASSERT_EQ(st.srtt_usec, 0);

        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &plain, NULL));
        run_for(30000);
        answer(1, -1, 0, ECHO_RSP, sizeof(ECHO_RSP));
        ASSERT_EQ(plain.calls, 1);
        smp_session_get_stats(s, &st);
        ASSERT_TRUE(st.srtt_usec >= 30000);
        smp_session_free(s);
}

static void test_version_fallback(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome o = { 0 };
        /* {"rc": 12}: MGMT_ERR_UNSUPPORTED_TOO_OLD */
        static const uint8_t TOO_OLD[] = { 0xa1, 0x62, 0x72, 0x63, 0x0c };

        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &o, NULL));
        answer(0, SMP_VERSION_1, 0, ECHO_RSP, sizeof(ECHO_RSP)); /* firmware without v2 */
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(smp_session_get_version(s), SMP_VERSION_1);
        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &o, NULL));
        ASSERT_EQ(the_link->sent[1][0], 0x02); /* v1 write */

        /* a v2-only Zephyr refuses v1: the request goes out again as v2 */
        answer(1, SMP_VERSION_1, 0, TOO_OLD, sizeof(TOO_OLD));
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(the_link->n_sent, 3);
        ASSERT_EQ(the_link->sent[2][0], 0x0a);
        answer(2, SMP_VERSION_2, 0, ECHO_RSP, sizeof(ECHO_RSP));
        ASSERT_EQ(o.calls, 2);
        ASSERT_EQ(o.error, 0);
        ASSERT_EQ(smp_session_get_version(s), SMP_VERSION_2);
        smp_session_free(s);
}

static int closed_calls;

static void on_closed(struct smp_session *s, int error, void *userdata) {
        closed_calls++;
}

static void test_link_loss_cancel_and_size(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome a = { 0 }, b = { 0 };
        struct smp_request *rb;
        uint8_t big[100] = { 0xa0 };
        struct smp_request_params p = ECHO;

        smp_session_set_closed_handler(s, on_closed, NULL);
        p.body = big;
        p.body_len = sizeof(big); /* 108-byte frame, link MTU 64, no fragments */
        ASSERT_EQ(smp_session_send(s, &p, on_done, &a, NULL), -EMSGSIZE);

        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &a, NULL));
        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &b, &rb));
        ASSERT_TRUE(smp_request_get_seq(rb) != the_link->sent[0][6]);
        smp_request_cancel(rb);
        the_link->cb->closed(-ECONNRESET, the_link->userdata);
        ASSERT_EQ(a.calls, 1);
        ASSERT_EQ(a.error, -ECONNRESET);
        ASSERT_EQ(b.calls, 0);
        ASSERT_EQ(closed_calls, 1);
        ASSERT_TRUE(!smp_session_is_open(s));
        ASSERT_EQ(smp_session_send(s, &ECHO, on_done, &a, NULL), -ENOTCONN);
        ASSERT_OK(smp_session_reconnect(s));
        ASSERT_TRUE(smp_session_is_open(s));
        smp_session_free(s);
}

static void test_stream_reassembly(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1,framing=stream");
        struct outcome o = { 0 };
        struct smp_header h;
        uint8_t frame[64];

        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &o, NULL));
        ASSERT_OK(smp_header_decode(the_link->sent[0], the_link->sent_len[0], &h));
        h.op++;
        int k = smp_frame_build(&h, ECHO_RSP, sizeof(ECHO_RSP), frame, sizeof(frame));
        /* BLE notifications: 3 bytes, then 5, then the rest */
        the_link->cb->receive(frame, 3, the_link->userdata);
        the_link->cb->receive(frame + 3, 5, the_link->userdata);
        ASSERT_EQ(o.calls, 0);
        the_link->cb->receive(frame + 8, (size_t) k - 8, the_link->userdata);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.len, sizeof(ECHO_RSP));
        smp_session_free(s);
}

static void test_free_with_requests_in_flight(void) {
        struct smp_session *s = open_session("loop:127.0.0.1:1");
        struct outcome o = { 0 };
        ASSERT_OK(smp_session_send(s, &ECHO, on_done, &o, NULL));
        ASSERT_OK(smp_session_send(s, &(struct smp_request_params) {
                .op = SMP_OP_READ, .group = SMP_GROUP_OS, .id = 6, .body = EMPTY, .body_len = 1 },
                on_done, &o, NULL));
        ASSERT_EQ(smp_session_in_flight(s), 2);
        smp_session_free(s);
        ASSERT_EQ(o.calls, 0); /* no callbacks from a freed session */
}

int main(void) {
        static const struct test_case cases[] = {
                TEST(test_match_and_ignore),
                TEST(test_retransmit_and_timeout),
                TEST(test_no_rtt_sample),
                TEST(test_version_fallback),
                TEST(test_link_loss_cancel_and_size),
                TEST(test_stream_reassembly),
                TEST(test_free_with_requests_in_flight),
        };
        ASSERT_OK(sd_event_new(&event));
        /* The transport is built in: the context loads nothing. */
        ASSERT_OK(smp_context_new(&ctx));
        ASSERT_OK(smp_context_set_plugin_path(ctx, "/nonexistent"));
        ASSERT_OK(smp_context_add_transport(ctx, &loop_transport));
        test_run_all(cases, ELEMENTSOF(cases));
        smp_context_unref(ctx);
        sd_event_unref(event);
        return 0;
}
