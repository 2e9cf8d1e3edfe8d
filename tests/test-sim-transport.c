/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-process simulated-device transport (tests/lib/sim-transport.h)
 * that unit tests of sessions and of smpgwd's engine run against:
 *   - bare links: nothing arrives inside send() or open(), answers come
 *     from the loop one packet per dispatch, a link closes from inside
 *     receive(), -EMSGSIZE above the mtu, an absent device is silence,
 *     answers to a link closed meanwhile are dropped;
 *   - sessions: echo, an image upload (images made by the test's own
 *     writer, tests/test-image-writer.c), the update procedure end to
 *     end, and its outcomes with the device's revert and reject faults;
 *   - the faults daemon tests need: a hung device, a reboot that keeps
 *     the device away for a while, a link dropped after N bytes (the
 *     update resumes on a new link), links refused at open() and after
 *     it, links that die with a reset (connected), latency and bandwidth.
 */
#include <errno.h>

#include <systemd/sd-event.h>

#include "sim-transport.h"
#include "smpgw/smp-cbor.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-session.h"
#include "smpgw/smp-update.h"
#include "smpgw/smp-upload.h"
#include "test-context.h"
#include "test-image-writer.h"
#include "test-loop.h"
#include "test-util.h"

#define WAIT_USEC (10u * TEST_USEC_PER_SEC)

/* A fleet on a fresh loop, in a context of its own. */
struct fixture {
        sd_event *event;
        struct smp_context *ctx;
        struct sim_fleet *fleet;
};

/* Timings short enough for many updates per test (smpsim's defaults
 * take about a second each). */
static void params_fast(struct sim_fleet_params *p, unsigned count) {
        sim_fleet_params_default(p);
        p->count = count;
        p->device.reset_delay_ms = 20;
        p->device.boot_ms = 20;
        p->device.swap_ms = 50;
}

static void fixture_new(struct fixture *fx, const struct sim_fleet_params *p) {
        ASSERT_OK(sd_event_new(&fx->event));
        ASSERT_OK(smp_context_new(&fx->ctx));
        ASSERT_OK(sim_fleet_new(fx->event, p, &fx->fleet));
        ASSERT_OK(sim_fleet_add_to_context(fx->fleet, fx->ctx));
}

static void fixture_free(struct fixture *fx) {
        /* The context borrows the fleet's descriptor: it goes first. */
        fx->ctx = smp_context_unref(fx->ctx);
        fx->fleet = sim_fleet_free(fx->fleet);
        /* Nothing of the fleet may be left in the loop. */
        ASSERT_OK(sd_event_run(fx->event, 0));
        fx->event = sd_event_unref(fx->event);
}

/* An image of version major.minor.revision with a body of size bytes. */
static uint8_t *image_new(uint8_t major, uint8_t minor, size_t size, size_t *ret_len) {
        const struct tiw_params tp = { .major = major, .minor = minor, .body_size = size, .body_seed = major };
        uint8_t *img;
        tiw_build(&tp, &img, ret_len, NULL);
        return img;
}

/* ---- bare links ---- */

struct peer {
        const struct smp_transport *t;
        struct smp_link *link;
        unsigned received;
        uint8_t last[512];
        size_t last_len;
        int closed;
        bool close_in_receive;
};

static void peer_receive(const uint8_t *data, size_t len, void *userdata) {
        struct peer *p = userdata;
        p->received++;
        p->last_len = MIN(len, sizeof(p->last));
        memcpy(p->last, data, p->last_len);
        if (p->close_in_receive) {
                p->t->close(p->link);
                p->link = NULL;
        }
}

static void peer_closed(int err, void *userdata) {
        struct peer *p = userdata;
        ASSERT_TRUE(err < 0);
        ASSERT_EQ(p->closed, 0); /* once */
        p->closed = err;
}

static const struct smp_link_callbacks peer_callbacks = { .receive = peer_receive, .closed = peer_closed };

static bool peer_has(void *userdata) {
        const struct peer *p = userdata;
        return p->received > 0 || p->closed;
}

static size_t echo_frame(uint8_t seq, const char *text, uint8_t *out, size_t cap) {
        uint8_t body[1600];
        struct smp_cbor_writer w;
        const struct smp_header h = {
                .op = SMP_OP_WRITE, .version = SMP_VERSION_2, .group = SMP_GROUP_OS, .seq = seq,
                .id = SMP_OS_CMD_ECHO,
        };
        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_os_echo_req_encode(&w, smp_cbor_slice_str(text)));
        int n = smp_frame_build(&h, body, w.len, out, cap);
        ASSERT_OK(n);
        return (size_t) n;
}

static void check_echo(const uint8_t *frame, size_t len, uint8_t seq, const char *text) {
        struct smp_header h;
        struct smp_cbor_slice got;
        ASSERT_OK(smp_header_decode(frame, len, &h));
        ASSERT_EQ(h.op, SMP_OP_WRITE_RSP);
        ASSERT_EQ(h.seq, seq);
        ASSERT_EQ(h.len + SMP_HEADER_SIZE, len);
        ASSERT_OK(smp_os_echo_rsp_decode(frame + SMP_HEADER_SIZE, h.len, &got, NULL));
        ASSERT_TRUE(smp_cbor_slice_eq(got, text));
}

static void test_descriptor_and_params(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct sim_fleet *f;
        struct smp_conn *conn;
        struct smp_link_info info;
        struct peer peer = { 0 };
        sd_event *other;

        sim_fleet_params_default(&p);
        p.count = 0;
        ASSERT_OK(sd_event_new(&other));
        ASSERT_EQ(sim_fleet_new(other, &p, &f), -EINVAL);
        p.count = 2;
        p.scheme = "Sim";
        ASSERT_EQ(sim_fleet_new(other, &p, &f), -EINVAL);
        p.scheme = NULL;
        p.info.stream = true;
        ASSERT_EQ(sim_fleet_new(other, &p, &f), -EINVAL);
        p.info.stream = false;
        static const uint8_t not_an_image[64] = { 1, 2, 3 };
        p.image = not_an_image;
        p.image_len = sizeof(not_an_image);
        ASSERT_EQ(sim_fleet_new(other, &p, &f), -EINVAL);
        p.image = NULL;

        fixture_new(&fx, &p);
        ASSERT_EQ(sim_fleet_count(fx.fleet), 2);
        ASSERT_STREQ(sim_fleet_conn(fx.fleet, 1), "sim:C0:DE:00:00:00:01");
        ASSERT_TRUE(sim_fleet_conn(fx.fleet, 2) == NULL);
        ASSERT_TRUE(sim_fleet_device(fx.fleet, 2) == NULL);
        ASSERT_EQ(sim_fleet_add_to_context(fx.fleet, fx.ctx), -EEXIST);
        ASSERT_EQ(sim_fleet_get_transport(fx.fleet)->abi_version, SMP_TRANSPORT_ABI_VERSION);

        /* The address is a Bluetooth address, canonical in upper case. */
        ASSERT_OK(smp_context_parse_conn(fx.ctx, "sim:c0:de:00:00:00:01", &conn, NULL));
        ASSERT_STREQ(smp_conn_get_string(conn), "sim:C0:DE:00:00:00:01");
        smp_conn_unref(conn);
        ASSERT_EQ(smp_context_parse_conn(fx.ctx, "sim:127.0.0.1:1", &conn, NULL), -EINVAL);
        ASSERT_EQ(smp_context_parse_conn(fx.ctx, "sim:C0:DE:00:00:00:01,mtu=5", &conn, NULL), -EINVAL);

        /* Links belong to the fleet's loop. */
        ASSERT_EQ(test_link_open(fx.ctx, other, "sim:C0:DE:00:00:00:01", &peer_callbacks, &peer, &peer.t,
                                 &peer.link),
                  -EINVAL);
        ASSERT_OK(test_link_open(fx.ctx, fx.event, "sim:C0:DE:00:00:00:01", &peer_callbacks, &peer, &peer.t,
                                 &peer.link));
        peer.t->get_info(peer.link, &info);
        ASSERT_EQ(info.mtu, 1472);
        ASSERT_TRUE(!info.stream && !info.fragments);
        ASSERT_EQ(sim_fleet_links(fx.fleet, 1), 1);
        ASSERT_EQ(sim_fleet_links(fx.fleet, 0), 0);
        peer.t->close(peer.link);
        ASSERT_EQ(sim_fleet_links(fx.fleet, 1), 0);
        ASSERT_EQ(sim_fleet_links_opened(fx.fleet, 1), 1);
        fixture_free(&fx);
        sd_event_unref(other);
}

/* Nothing comes back inside send(): the answer waits for the loop,
 * even with a link of no latency at all. */
static void test_link_never_reentrant(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct peer peer = { 0 };
        struct smp_link_stats st;
        uint8_t frame[1600];

        sim_fleet_params_default(&p);
        fixture_new(&fx, &p);
        ASSERT_OK(test_link_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &peer_callbacks, &peer, &peer.t,
                                 &peer.link));
        size_t n = echo_frame(7, "hello", frame, sizeof(frame));
        ASSERT_OK(peer.t->send(peer.link, frame, n));
        ASSERT_EQ(peer.received, 0);
        ASSERT_TRUE(test_run_until_fn(fx.event, peer_has, &peer, WAIT_USEC));
        ASSERT_EQ(peer.received, 1);
        check_echo(peer.last, peer.last_len, 7, "hello");

        /* Two frames in one packet: two answers, delivered in two
         * dispatches (the loop runs in between, as with a socket). */
        size_t a = echo_frame(8, "one", frame, sizeof(frame));
        size_t b = echo_frame(9, "two", frame + a, sizeof(frame) - a);
        ASSERT_OK(peer.t->send(peer.link, frame, a + b));
        peer.received = 0;
        ASSERT_TRUE(test_run_until_fn(fx.event, peer_has, &peer, WAIT_USEC));
        ASSERT_EQ(peer.received, 1);
        check_echo(peer.last, peer.last_len, 8, "one");
        ASSERT_OK(sd_event_run(fx.event, 100000));
        ASSERT_EQ(peer.received, 2);
        check_echo(peer.last, peer.last_len, 9, "two");

        /* Larger than the mtu: refused, nothing sent. */
        char text[1500];
        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = 0;
        n = echo_frame(10, text, frame, sizeof(frame));
        ASSERT_EQ(peer.t->send(peer.link, frame, n), -EMSGSIZE);
        peer.t->get_stats(peer.link, &st);
        ASSERT_EQ(st.tx_packets, 2);
        ASSERT_EQ(st.rx_packets, 3);
        ASSERT_EQ(st.lost, 0);

        /* Closed from inside receive(), with another answer queued. */
        peer.close_in_receive = true;
        peer.received = 0;
        n = echo_frame(11, "a", frame, sizeof(frame));
        ASSERT_OK(peer.t->send(peer.link, frame, n));
        ASSERT_OK(peer.t->send(peer.link, frame, n));
        ASSERT_TRUE(test_run_until_fn(fx.event, peer_has, &peer, WAIT_USEC));
        ASSERT_TRUE(peer.link == NULL);
        test_run_for(fx.event, 100000);
        ASSERT_EQ(peer.received, 1);
        fixture_free(&fx);
}

/* An address no device has: silence, like udp to nobody. */
static void test_absent_device_is_silent(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct peer peer = { 0 };
        uint8_t frame[64];

        sim_fleet_params_default(&p);
        fixture_new(&fx, &p);
        ASSERT_OK(test_link_open(fx.ctx, fx.event, "sim:C0:DE:00:00:00:05", &peer_callbacks, &peer, &peer.t,
                                 &peer.link));
        ASSERT_OK(peer.t->send(peer.link, frame, echo_frame(1, "anyone?", frame, sizeof(frame))));
        test_run_for(fx.event, 200000);
        ASSERT_EQ(peer.received, 0);
        ASSERT_EQ(peer.closed, 0);
        peer.t->close(peer.link);
        fixture_free(&fx);
}

/* A link closed while its answers are on the way, one queued on the
 * link (the device sent it in this loop iteration; the link delivers it
 * in the next) and one still in the link model: both are dropped, and
 * the fleet goes cleanly. */
static void test_link_closed_with_answers_on_the_way(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct peer peer = { 0 };
        uint8_t frame[64];

        sim_fleet_params_default(&p);
        p.link.latency_ms = 30;
        fixture_new(&fx, &p);
        const struct sim_device *d = sim_fleet_device(fx.fleet, 0);
        ASSERT_OK(test_link_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &peer_callbacks, &peer, &peer.t,
                                 &peer.link));
        size_t n = echo_frame(1, "x", frame, sizeof(frame));
        ASSERT_OK(peer.t->send(peer.link, frame, n));
        uint64_t end = test_now_usec() + WAIT_USEC;
        while (d->stats.tx_packets == 0 && test_now_usec() < end)
                ASSERT_OK(sd_event_run(fx.event, 100000));
        ASSERT_EQ(d->stats.tx_packets, 1);
        ASSERT_EQ(peer.received, 0);
        ASSERT_OK(peer.t->send(peer.link, frame, n));
        peer.t->close(peer.link);
        ASSERT_EQ(sim_fleet_links(fx.fleet, 0), 0);
        test_run_for(fx.event, 150000);
        ASSERT_EQ(peer.received, 0);
        ASSERT_EQ(peer.closed, 0);
        ASSERT_EQ(d->stats.tx_packets, 2);
        fixture_free(&fx);
}

/* ---- sessions ---- */

struct answer {
        bool done;
        int error;
        char text[256];
        uint64_t at_usec;
};

static void on_echo(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                    size_t len, void *userdata) {
        struct answer *a = userdata;
        struct smp_cbor_slice got;
        a->done = true;
        a->error = error;
        a->at_usec = test_now_usec();
        if (error == 0) {
                ASSERT_OK(smp_os_echo_rsp_decode(body, len, &got, NULL));
                ASSERT_OK(smp_cbor_slice_copy(got, a->text, sizeof(a->text)));
        }
}

/* Sends an echo of text; the caller runs the loop. */
static void echo_send(struct smp_session *s, const char *text, uint64_t timeout_usec, struct answer *a) {
        uint8_t body[300];
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_os_echo_req_encode(&w, smp_cbor_slice_str(text)));
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE, .group = SMP_GROUP_OS, .id = SMP_OS_CMD_ECHO, .body = body,
                .body_len = w.len, .timeout_usec = timeout_usec, .idempotent = false,
        };
        memset(a, 0, sizeof(*a));
        ASSERT_OK(smp_session_send(s, &rp, on_echo, a, NULL));
}

/* An echo that must come back within WAIT_USEC. */
static void echo(struct fixture *fx, struct smp_session *s, const char *text) {
        struct answer a;
        echo_send(s, text, 0, &a);
        ASSERT_EQ(a.done, false);
        ASSERT_TRUE(test_run_until(fx->event, &a.done, WAIT_USEC));
        ASSERT_OK(a.error);
        ASSERT_STREQ(a.text, text);
}

struct closed_note {
        unsigned calls;
        int error;
};

static void on_session_closed(struct smp_session *s, int error, void *userdata) {
        struct closed_note *n = userdata;
        n->calls++;
        n->error = error;
}

static void test_session_echo(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;

        sim_fleet_params_default(&p);
        p.count = 2;
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 1), &s));
        echo(&fx, s, "over the simulated link");
        ASSERT_EQ(sim_fleet_device(fx.fleet, 1)->stats.rx_packets, 1);
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->stats.rx_packets, 0);
        smp_session_free(s);
        fixture_free(&fx);
}

struct upload_done {
        bool done;
        struct smp_upload_result result;
};

static void on_upload_done(struct smp_upload *u, const struct smp_upload_result *r, void *userdata) {
        struct upload_done *d = userdata;
        d->done = true;
        d->result = *r;
}

static void test_session_upload(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_upload *up;
        struct upload_done d = { 0 };
        struct sim_fleet_slot slot;
        size_t len;

        params_fast(&p, 1);
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(2, 0, 20000, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        ASSERT_EQ(sim_fleet_slot(fx.fleet, 0, 1, &slot), -ENOENT);
        const struct smp_upload_params up_params = { .data = img, .len = len, .done = on_upload_done, .userdata = &d };
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_EQ(d.result.buf_size, 2048);
        ASSERT_EQ(d.result.buf_count, 4);
        ASSERT_TRUE(d.result.has_match && d.result.match);
        ASSERT_OK(sim_fleet_slot(fx.fleet, 0, 1, &slot));
        ASSERT_STREQ(slot.version, "2.0.0");
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->stats.upload_bytes, len);
        ASSERT_OK(sim_fleet_slot(fx.fleet, 0, 0, &slot));
        ASSERT_STREQ(slot.version, "1.0.0");
        ASSERT_TRUE(slot.flags & SIM_SLOT_F_ACTIVE);
        smp_session_free(s);
        fixture_free(&fx);
}

/* Over BLE without the device's reassembly (Zephyr's default) each
 * write is a whole packet: an upload to a device that does not answer
 * the params request goes one packet per write, at most the MTU. */
static void test_session_upload_ble_unreassembled(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_upload *up;
        struct upload_done d = { 0 };
        size_t len;

        params_fast(&p, 1);
        /* ATT MTU 247, the link's pieces 244 bytes */
        p.info = (struct smp_link_info) { .mtu = 244, .fragments = true, .fragments_need_device = true, .overhead = 7 };
        p.device.no_reassembly = true;
        p.device.no_params = true;
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(2, 0, 5000, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        const struct smp_upload_params up_params = { .data = img, .len = len, .done = on_upload_done, .userdata = &d };
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_TRUE(d.result.has_match && d.result.match);
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->stats.upload_bytes, len);
        /* data and the request's fields in one write */
        ASSERT_TRUE(d.result.chunk > 0 && d.result.chunk < 244);
        smp_session_free(s);
        fixture_free(&fx);

        /* With reassembly and params answered, packets go up to the
         * device's buffer, in pieces of the MTU. */
        memset(&d, 0, sizeof(d));
        p.device.no_reassembly = false;
        p.device.no_params = false;
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_TRUE(d.result.chunk > 244);
        smp_session_free(s);
        fixture_free(&fx);
}

/* Zephyr refuses a first chunk of less than the image header (32 bytes,
 * img_mgmt_upload_inspect()): a --chunk below that leaves the first
 * chunk alone, and a buffer too small for it is an error at once. */
static void test_session_upload_small_chunk(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_upload *up;
        struct upload_done d = { 0 };
        size_t len;

        params_fast(&p, 1);
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(2, 0, 600, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        struct smp_upload_params up_params = {
                .data = img,
                .len = len,
                .chunk = 8,
                .done = on_upload_done,
                .userdata = &d,
        };
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_TRUE(d.result.has_match && d.result.match);
        ASSERT_EQ(d.result.chunk, 8);

        /* 90 bytes hold the first chunk's fields and 24 data bytes */
        up_params.buf_size = 90;
        up_params.buf_count = 2;
        up_params.chunk = 0;
        ASSERT_EQ(smp_upload_start(s, &up_params, &up), -EMSGSIZE);
        smp_session_free(s);
        fixture_free(&fx);
}

/* MCUboot's serial recovery answers a chunk that does not end the image
 * with the offset its flash write alignment let it write to: progress,
 * on which the window stays as it was. */
static void test_session_upload_aligned_answers(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_upload *up;
        struct upload_done d = { 0 };
        size_t len;

        params_fast(&p, 1);
        p.device.write_align = 8;
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(2, 0, 3000, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        /* 100 bytes: each chunk answered 4 short of its end */
        const struct smp_upload_params up_params = {
                .data = img,
                .len = len,
                .chunk = 100,
                .done = on_upload_done,
                .userdata = &d,
        };
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_TRUE(d.result.has_match && d.result.match);
        /* buf_count 4: a window of 3 from the start, never shrunk */
        ASSERT_EQ(d.result.window_max, 3);
        smp_session_free(s);
        fixture_free(&fx);
}

struct update_done {
        bool done;
        struct smp_update_result result;
};

static void on_update_done(struct smp_update *u, const struct smp_update_result *r, void *userdata) {
        struct update_done *d = userdata;
        d->done = true;
        d->result = *r;
}

/* Runs the update procedure on device index with an image of version
 * major.0.0; returns its result. */
static struct smp_update_result run_update(struct fixture *fx, unsigned index, uint8_t major, size_t size) {
        struct smp_session *s;
        struct smp_update *u;
        struct update_done d = { 0 };
        size_t len;

        _cleanup_free_ uint8_t *img = image_new(major, 0, size, &len);
        ASSERT_OK(smp_session_open(fx->ctx, fx->event, sim_fleet_conn(fx->fleet, index), &s));
        const struct smp_update_params up = {
                .data = img, .len = len, .mode = SMP_UPDATE_TEST_AND_CONFIRM, .poll_interval_usec = 50000,
                .swap_timeout_usec = WAIT_USEC, .done = on_update_done, .userdata = &d,
        };
        ASSERT_OK(smp_update_start(s, &up, &u));
        ASSERT_TRUE(test_run_until(fx->event, &d.done, 3 * WAIT_USEC));
        smp_session_free(s);
        return d.result;
}

static void test_session_update(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct sim_fleet_slot slot;

        params_fast(&p, 1);
        fixture_new(&fx, &p);
        struct smp_update_result r = run_update(&fx, 0, 3, 30000);
        ASSERT_OK(r.error);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_STREQ(r.new_version, "3.0.0+0"); /* as lib spells versions: MCUboot's 1.2.3+4 */
        ASSERT_OK(sim_fleet_slot(fx.fleet, 0, 0, &slot));
        ASSERT_STREQ(slot.version, "3.0.0");
        ASSERT_EQ(slot.flags & (SIM_SLOT_F_ACTIVE | SIM_SLOT_F_CONFIRMED), SIM_SLOT_F_ACTIVE | SIM_SLOT_F_CONFIRMED);
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->boot_count, 2);
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->last_boot, SIM_BOOT_SWAPPED_TEST);

        /* Again: nothing to do. */
        r = run_update(&fx, 0, 3, 30000);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UP_TO_DATE);
        fixture_free(&fx);
}

/* A device with two updatable images (nRF5340: the network core's is
 * image 1) lists image 1's slots as "image": 1, slot 0 and 1; an update
 * of image 1 follows image 1's slots, not image 0's.  It runs in
 * confirm-only mode (Zephyr refuses to confirm another image's running
 * slot: test-and-confirm is refused at the start). */
static void test_session_update_image_1(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_update *u;
        struct update_done d = { 0 };
        struct sim_fleet_slot slot;
        struct sim_image_info info;
        size_t len;

        params_fast(&p, 1);
        p.device.two_images = true;
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(4, 0, 20000, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        const struct smp_update_params up = {
                .data = img,
                .len = len,
                .mode = SMP_UPDATE_CONFIRM_ONLY,
                .poll_interval_usec = 50000,
                .swap_timeout_usec = WAIT_USEC,
                .has_image = true,
                .image = 1,
                .done = on_update_done,
                .userdata = &d,
        };
        ASSERT_OK(smp_update_start(s, &up, &u));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, 3 * WAIT_USEC));
        smp_session_free(s);
        ASSERT_OK(d.result.error);
        ASSERT_EQ(d.result.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        /* image 1 runs the new one, confirmed; image 0 is as it was */
        const struct sim_flash *image1 = &sim_fleet_device(fx.fleet, 0)->flash_image1;
        ASSERT_OK(sim_flash_read_info(image1, 0, &info));
        ASSERT_EQ(info.major, 4);
        ASSERT_EQ(sim_flash_slot_flags(image1, 0) & (SIM_SLOT_F_ACTIVE | SIM_SLOT_F_CONFIRMED),
                  SIM_SLOT_F_ACTIVE | SIM_SLOT_F_CONFIRMED);
        ASSERT_OK(sim_fleet_slot(fx.fleet, 0, 0, &slot));
        ASSERT_STREQ(slot.version, "1.0.0");
        ASSERT_EQ(sim_fleet_slot(fx.fleet, 0, 1, &slot), -ENOENT);
        fixture_free(&fx);
}

static void test_session_update_revert_and_reject(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct sim_fleet_slot slot;
        const char *err = NULL;

        params_fast(&p, 2);
        fixture_new(&fx, &p);
        ASSERT_EQ(sim_fleet_fault(fx.fleet, 0, "revert=1", &err), -EINVAL);
        ASSERT_TRUE(err && *err);
        ASSERT_EQ(sim_fleet_fault(fx.fleet, 2, "revert", &err), -EINVAL);
        ASSERT_OK(sim_fleet_fault(fx.fleet, 0, "revert", NULL));
        ASSERT_OK(sim_fleet_fault(fx.fleet, 1, "reject", NULL));

        struct smp_update_result r = run_update(&fx, 0, 2, 10000);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_REVERTED);
        ASSERT_TRUE(!r.rejected);
        ASSERT_OK(sim_fleet_slot(fx.fleet, 0, 0, &slot));
        ASSERT_STREQ(slot.version, "1.0.0");
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->last_boot, SIM_BOOT_REVERTED);

        r = run_update(&fx, 1, 2, 10000);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_REVERTED);
        ASSERT_TRUE(r.rejected);
        ASSERT_EQ(sim_fleet_device(fx.fleet, 1)->last_boot, SIM_BOOT_REJECTED);

        /* Without its fault the device takes the image. */
        sim_fleet_clear_faults(fx.fleet, 1);
        r = run_update(&fx, 1, 2, 10000);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        fixture_free(&fx);
}

/* A hung device answers nothing until it is reset; a reboot keeps it
 * away for the time asked (requests then time out), then it answers. */
static void test_hang_and_reboot(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct answer a;

        params_fast(&p, 1);
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        echo(&fx, s, "up");

        sim_fleet_hang(fx.fleet, 0);
        echo_send(s, "hung?", 200000, &a);
        ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
        ASSERT_EQ(a.error, -ETIMEDOUT);

        uint64_t t0 = test_now_usec();
        sim_fleet_reboot(fx.fleet, 0, 400000);
        ASSERT_TRUE(sim_fleet_device(fx.fleet, 0)->rebooting);
        echo_send(s, "away?", 150000, &a);
        ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
        ASSERT_EQ(a.error, -ETIMEDOUT);
        /* Asked again and again, as a client would; answered once back. */
        for (;;) {
                echo_send(s, "back?", 100000, &a);
                ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
                if (a.error == 0)
                        break;
                ASSERT_EQ(a.error, -ETIMEDOUT);
                ASSERT_TRUE(test_now_usec() - t0 < WAIT_USEC);
        }
        ASSERT_TRUE(a.at_usec - t0 >= 400000);
        ASSERT_STREQ(a.text, "back?");
        ASSERT_EQ(sim_fleet_device(fx.fleet, 0)->stats.resets, 1);
        smp_session_free(s);
        fixture_free(&fx);
}

/* The link breaks after 6000 bytes of an upload: the session hears of it
 * from the loop, and the update procedure opens a new link and resumes
 * where the device got to. */
static void test_drop_after_bytes_and_resume(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct closed_note note = { 0 };
        struct answer a;

        params_fast(&p, 1);
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        smp_session_set_closed_handler(s, on_session_closed, &note);
        sim_fleet_link_faults(fx.fleet, 0)->drop_after_bytes = 20;
        echo_send(s, "short", 0, &a); /* 8 + 1 + 5 + 6 = 20 bytes: gets through */
        ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
        ASSERT_OK(a.error);
        echo_send(s, "x", 0, &a);
        ASSERT_EQ(note.calls, 0);
        ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
        ASSERT_EQ(a.error, -ECONNRESET);
        ASSERT_EQ(note.calls, 1);
        ASSERT_EQ(note.error, -ECONNRESET);
        ASSERT_EQ(sim_fleet_link_faults(fx.fleet, 0)->drop_after_bytes, -1);
        ASSERT_EQ(sim_fleet_links(fx.fleet, 0), 0);
        smp_session_free(s);

        sim_fleet_link_faults(fx.fleet, 0)->drop_after_bytes = 6000;
        struct smp_update_result r = run_update(&fx, 0, 4, 20000);
        ASSERT_OK(r.error);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(r.upload.resumed_at > 0 && r.upload.resumed_at < 6000);
        /* The echo session's link, the update's, and one after the drop. */
        ASSERT_EQ(sim_fleet_links_opened(fx.fleet, 0), 3u);
        fixture_free(&fx);
}

/* A link that drops under a full window (buf_count 8: seven uploads in
 * flight): the session fails the old link's requests, the upload's
 * callback reconnects from inside that and sends on the new link; those
 * new requests must not be failed as well.  They were, so each drop cost
 * a reconnect per request in flight, until the update ran out of them. */
static void test_drop_under_a_full_window(void) {
        struct sim_fleet_params p;
        struct fixture fx;

        params_fast(&p, 1);
        p.device.buf_count = 8;
        fixture_new(&fx, &p);
        sim_fleet_link_faults(fx.fleet, 0)->drop_after_bytes = 6000;
        struct smp_update_result r = run_update(&fx, 0, 4, 40000);
        ASSERT_OK(r.error);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(r.upload.resumed_at > 0 && r.upload.resumed_at < 6000);
        /* the update's link, and one after the drop */
        ASSERT_EQ(sim_fleet_links_opened(fx.fleet, 0), 2u);
        fixture_free(&fx);
}

static void test_links_refused(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct closed_note note = { 0 };

        sim_fleet_params_default(&p);
        fixture_new(&fx, &p);
        struct sim_fleet_link_faults *lf = sim_fleet_link_faults(fx.fleet, 0);
        lf->refuse = 1;
        lf->refuse_at_open = true;
        ASSERT_EQ(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s), -ECONNREFUSED);

        /* Refused after open() returned: closed() from the loop. */
        lf->refuse = 1;
        lf->refuse_at_open = false;
        lf->refuse_error = -ECONNABORTED;
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        smp_session_set_closed_handler(s, on_session_closed, &note);
        ASSERT_EQ(note.calls, 0);
        test_run_for(fx.event, 50000);
        ASSERT_EQ(note.calls, 1);
        ASSERT_EQ(note.error, -ECONNABORTED);
        ASSERT_TRUE(!smp_session_is_open(s));
        ASSERT_OK(smp_session_reconnect(s));
        echo(&fx, s, "third time");
        ASSERT_EQ(sim_fleet_links_opened(fx.fleet, 0), 3);
        smp_session_free(s);
        fixture_free(&fx);
}

/* Links that live and die with the device (BLE): a reset closes them,
 * a link opened while the device is down fails, and the update
 * procedure gets through by opening new ones. */
static void test_connected_links(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct closed_note note = { 0 };

        params_fast(&p, 1);
        p.link_faults.connected = true;
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        smp_session_set_closed_handler(s, on_session_closed, &note);
        echo(&fx, s, "connected");
        sim_fleet_reboot(fx.fleet, 0, 300000);
        test_run_for(fx.event, 50000);
        ASSERT_EQ(note.calls, 1);
        ASSERT_EQ(note.error, -ECONNRESET);
        ASSERT_OK(smp_session_reconnect(s));
        test_run_for(fx.event, 50000);
        ASSERT_EQ(note.calls, 2);
        ASSERT_EQ(note.error, -EHOSTDOWN);
        test_run_for(fx.event, 400000);
        ASSERT_OK(smp_session_reconnect(s));
        echo(&fx, s, "back");
        smp_session_free(s);

        struct smp_update_result r = run_update(&fx, 0, 5, 10000);
        ASSERT_OK(r.error);
        ASSERT_EQ(r.outcome, SMP_UPDATE_OUTCOME_UPDATED);
        ASSERT_TRUE(sim_fleet_links_opened(fx.fleet, 0) >= 5);

        /* Nobody at the address: closed(-EHOSTUNREACH). */
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, "sim:C0:DE:00:00:01:00", &s));
        note.calls = 0;
        smp_session_set_closed_handler(s, on_session_closed, &note);
        test_run_for(fx.event, 50000);
        ASSERT_EQ(note.error, -EHOSTUNREACH);
        smp_session_free(s);
        fixture_free(&fx);
}

/* The link model: a round trip takes twice the latency, and a transfer
 * takes at least its bytes over the bandwidth. */
static void test_latency_and_bandwidth(void) {
        struct sim_fleet_params p;
        struct fixture fx;
        struct smp_session *s;
        struct smp_upload *up;
        struct upload_done d = { 0 };
        struct answer a;
        size_t len;

        sim_fleet_params_default(&p);
        p.link.latency_ms = 100;
        fixture_new(&fx, &p);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        uint64_t t0 = test_now_usec();
        echo_send(s, "slow", 0, &a);
        ASSERT_TRUE(test_run_until(fx.event, &a.done, WAIT_USEC));
        ASSERT_OK(a.error);
        ASSERT_TRUE(a.at_usec - t0 >= 200000);
        smp_session_free(s);
        fixture_free(&fx);

        sim_fleet_params_default(&p);
        p.link.bandwidth = 40000;
        fixture_new(&fx, &p);
        _cleanup_free_ uint8_t *img = image_new(2, 1, 16000, &len);
        ASSERT_OK(smp_session_open(fx.ctx, fx.event, sim_fleet_conn(fx.fleet, 0), &s));
        const struct smp_upload_params up_params = { .data = img, .len = len, .done = on_upload_done, .userdata = &d };
        t0 = test_now_usec();
        ASSERT_OK(smp_upload_start(s, &up_params, &up));
        ASSERT_TRUE(test_run_until(fx.event, &d.done, WAIT_USEC));
        ASSERT_OK(d.result.error);
        ASSERT_TRUE(test_now_usec() - t0 >= (uint64_t) len * TEST_USEC_PER_SEC / 40000);
        smp_session_free(s);
        fixture_free(&fx);
}

TEST_MAIN(TEST(test_descriptor_and_params), TEST(test_link_never_reentrant), TEST(test_absent_device_is_silent),
          TEST(test_link_closed_with_answers_on_the_way), TEST(test_session_echo), TEST(test_session_upload),
          TEST(test_session_upload_ble_unreassembled), TEST(test_session_upload_small_chunk),
          TEST(test_session_upload_aligned_answers), TEST(test_session_update), TEST(test_session_update_image_1),
          TEST(test_session_update_revert_and_reject), TEST(test_hang_and_reboot),
          TEST(test_drop_after_bytes_and_resume), TEST(test_drop_under_a_full_window), TEST(test_links_refused),
          TEST(test_connected_links), TEST(test_latency_and_bandwidth))
