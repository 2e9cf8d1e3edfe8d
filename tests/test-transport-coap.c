/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The coap transport plugin against real peers over real sockets:
 *   - smpsim --coap (libcoap's server, separate responses, Block1/Block2):
 *     echo and mcumgr params, a 2000-byte echo that needs both block
 *     directions, 300 ms latency, a device that never answers, closing the
 *     link from inside receive();
 *   - a hand-written CoAP "device" on a plain UDP socket that ignores the
 *     first transmission and answers the retransmission piggybacked (the
 *     plugin's timers must fire inside sd-event, and the retransmission is
 *     counted as lost), then answers 4.00 (dropped and counted);
 *   - connection strings that must be refused, and the link info.
 *
 * Needs $SMPSIM and $SMPGW_PLUGIN_DIR (meson sets both).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "smpgw/smp-cbor.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-transport.h"
#include "test-client.h"
#include "test-context.h"
#include "test-loop.h"
#include "test-smpsim.h"
#include "test-util.h"

static struct smp_context *ctx;
static const struct smp_transport *coap;

/* Opens a bare coap link to address (and options), "coap:" added. */
static int coap_open(sd_event *e, const char *address, const struct smp_link_callbacks *cb, void *userdata,
                     struct smp_link **ret) {
        char conn[256];
        snprintf(conn, sizeof(conn), "coap:%s", address);
        return test_link_open(ctx, e, conn, cb, userdata, NULL, ret);
}

/* ---- the transport ---- */

static void test_load(void) {
        ctx = test_context_new();
        ASSERT_OK(smp_context_find_transport(ctx, "coap", &coap, NULL));
        ASSERT_TRUE(coap);
        ASSERT_EQ(coap->abi_version, SMP_TRANSPORT_ABI_VERSION);
        ASSERT_STREQ(coap->name, "coap");
        /* Multicast discovery (tests/smpsim/test_coap_multicast.py). */
        ASSERT_TRUE(coap->discover_start && coap->discover_stop);
}

/* ---- smpsim ---- */

static const struct test_smpsim_options coap_sim = { .coap = true };

static void address_of(const struct test_smpsim *s, char *buf, size_t size) {
        snprintf(buf, size, "127.0.0.1:%u", s->coap_port);
}

/* ---- a client on the link ---- */

/* For links a test opens only to be refused or looked at. */
static void ignore_receive(const uint8_t *data, size_t len, void *userdata) {
}
static void ignore_closed(int err, void *userdata) {
}
static const struct smp_link_callbacks callbacks = {
        .receive = ignore_receive,
        .closed = ignore_closed,
};

/* A client on a loop of its own, to coap:address. */
static void client_open(struct test_client *c, const char *address) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char conn[256];
        ASSERT_OK(sd_event_new(&e));
        snprintf(conn, sizeof(conn), "coap:%s", address);
        ASSERT_OK(test_client_open(c, ctx, e, conn));
}

static bool client_wait(struct test_client *c, unsigned n, unsigned timeout_ms) {
        return test_client_wait(c, n, (uint64_t) timeout_ms * TEST_USEC_PER_MSEC);
}

static void client_idle(struct test_client *c, unsigned ms) {
        test_run_for(c->event, (uint64_t) ms * TEST_USEC_PER_MSEC);
}

static size_t params_frame(uint8_t seq, uint8_t *out, size_t cap) {
        static const uint8_t empty_map[] = { 0xa0 };
        struct smp_header h = {
                .op = SMP_OP_READ, .version = SMP_VERSION_2, .group = SMP_GROUP_OS, .seq = seq,
                .id = SMP_OS_CMD_MCUMGR_PARAMS,
        };
        int r = smp_frame_build(&h, empty_map, sizeof(empty_map), out, cap);
        ASSERT_OK(r);
        return (size_t) r;
}

/* ---- tests ---- */

static void test_addresses(void) {
        static const char *const bad[] = {
                "", ":5683", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:12x",
                "[::1", "[]:5683", "::1:5683", "[::1]5683", "example.com:5683", "127.0.0.1:5683,mtu=5",
                "127.0.0.1:5683,mtu=100000", "127.0.0.1:5683,mtu=", "127.0.0.1:5683,foo=1",
                "127.0.0.1:5683,", "999.1.1.1:5683",
        };
        sd_event *e = NULL;
        struct smp_link *l = NULL;
        struct smp_link_info info;

        ASSERT_OK(sd_event_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = coap_open(e, bad[i], &callbacks, NULL, &l);
                if (r != -EINVAL)
                        fprintf(stderr, "'%s' gave %d\n", bad[i], r);
                ASSERT_EQ(r, -EINVAL);
        }

        /* Default datagram (1152): 1024-byte blocks, frames up to 1019. */
        ASSERT_OK(coap_open(e, "localhost", &callbacks, NULL, &l));
        coap->get_info(l, &info);
        ASSERT_EQ(info.mtu, 1024 - (SMP_OMP_OVERHEAD - SMP_HEADER_SIZE));
        ASSERT_TRUE(info.fragments);
        ASSERT_TRUE(!info.stream);
        ASSERT_EQ(info.overhead, 18);
        ASSERT_EQ(info.buffer_overhead, 0);
        coap->close(l);

        /* 512-byte datagrams: 508 after the header, 450 left after our
         * options and libcoap's reserve: 256-byte blocks. */
        ASSERT_OK(coap_open(e, "[::1]:5683,mtu=512", &callbacks, NULL, &l));
        coap->get_info(l, &info);
        ASSERT_EQ(info.mtu, 256 - 5);
        coap->close(l);

        ASSERT_OK(coap_open(e, "10.0.0.1", &callbacks, NULL, &l));
        coap->close(l);
        sd_event_unref(e);
}

static void test_echo_and_params(void) {
        struct test_smpsim s;
        struct test_client c;
        struct smp_link_stats st;
        struct smp_os_params_rsp params;
        struct smp_header h;
        uint8_t f[256], g[256];
        char addr[64];

        test_smpsim_start(&s, &coap_sim, "--buf-size", "3072", NULL);
        address_of(&s, addr, sizeof(addr));
        client_open(&c, addr);

        size_t n = test_echo_frame(0x42, "hello coap", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 1, 5000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 0x42, "hello coap");

        n = params_frame(200, f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 2, 5000));
        size_t len;
        const uint8_t *frame = test_client_frame(&c, TEST_CLIENT_LAST, &len);
        ASSERT_OK(smp_header_decode(frame, len, &h));
        ASSERT_EQ(h.op, SMP_OP_READ_RSP);
        ASSERT_EQ(h.seq, 200);
        ASSERT_EQ(h.id, SMP_OS_CMD_MCUMGR_PARAMS);
        ASSERT_OK(smp_os_params_rsp_decode(frame + SMP_HEADER_SIZE, h.len, &params, NULL));
        ASSERT_EQ(params.buf_size, 3072);

        /* Two frames in one packet: two requests, two answers. */
        size_t a = test_echo_frame(1, "one", f, sizeof(f));
        size_t b = test_echo_frame(2, "two", f + a, sizeof(f) - a);
        ASSERT_OK(coap->send(c.link, f, a + b));
        ASSERT_TRUE(client_wait(&c, 4, 5000));

        /* A different frame with a sequence number still in flight is
         * refused; the same frame again is a retransmission. */
        n = test_echo_frame(7, "first", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        size_t m = test_echo_frame(7, "second", g, sizeof(g));
        ASSERT_EQ(coap->send(c.link, g, m), -EBUSY);
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 5, 5000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 7, "first");
        /* the duplicate answer, if it comes, is the same echo */
        client_idle(&c, 200);
        test_client_check_echo(&c, TEST_CLIENT_LAST, 7, "first");
        unsigned got = c.frames;
        /* Answered: the sequence number is free again. */
        ASSERT_OK(coap->send(c.link, g, m));
        ASSERT_TRUE(client_wait(&c, got + 1, 5000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 7, "second");

        /* Not a request: refused before anything is sent. */
        f[0] = (f[0] & ~7) | SMP_OP_WRITE_RSP;
        ASSERT_EQ(coap->send(c.link, f, n), -EINVAL);
        /* Truncated frame. */
        ASSERT_EQ(coap->send(c.link, g, m - 1), -EBADMSG);

        coap->get_stats(c.link, &st);
        ASSERT_TRUE(st.tx_packets >= 7);
        ASSERT_EQ(st.rx_packets, c.frames);
        ASSERT_TRUE(st.tx_bytes > 0 && st.rx_bytes > 0);
        ASSERT_EQ(st.lost, 0);
        ASSERT_EQ(c.closed_err, 0);

        test_client_close(&c);
        test_smpsim_stop(&s);
}

static void test_large_echo(void) {
        static char text[2001];
        static uint8_t f[4096];
        struct test_smpsim s;
        struct test_client c;
        struct smp_link_stats st;
        struct smp_link_info info;
        char addr[64];

        for (size_t i = 0; i < sizeof(text) - 1; i++)
                text[i] = (char) ('a' + i % 26);
        test_smpsim_start(&s, &coap_sim, "--buf-size", "4096", NULL);
        address_of(&s, addr, sizeof(addr));
        client_open(&c, addr);
        coap->get_info(c.link, &info);

        size_t n = test_echo_frame(9, text, f, sizeof(f));
        ASSERT_TRUE(n > info.mtu + 900);
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 1, 10000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 9, text);

        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.tx_packets, 2); /* two Block1 blocks (1024 + ~990) */
        ASSERT_EQ(st.rx_packets, 1); /* one answer, however many blocks */
        ASSERT_TRUE(st.rx_bytes > 2000);
        ASSERT_EQ(st.lost, 0);

        /* And a small one after it on the same link. */
        n = test_echo_frame(10, "small", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 2, 5000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 10, "small");

        test_client_close(&c);
        test_smpsim_stop(&s);
}

static void test_latency(void) {
        struct test_smpsim s;
        struct test_client c;
        struct smp_link_stats st;
        uint8_t f[256];
        char addr[64];

        test_smpsim_start(&s, &coap_sim, "--latency", "300", NULL);
        address_of(&s, addr, sizeof(addr));
        client_open(&c, addr);

        size_t n = test_echo_frame(3, "slow", f, sizeof(f));
        uint64_t t0 = test_now_usec();
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 1, 5000));
        ASSERT_TRUE(test_now_usec() - t0 >= 600000);
        test_client_check_echo(&c, TEST_CLIENT_LAST, 3, "slow");
        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.lost, 0);

        test_client_close(&c);
        test_smpsim_stop(&s);
}

static void test_silent_device(void) {
        struct test_smpsim s;
        struct test_client c;
        struct smp_link_stats st;
        uint8_t f[256], g[256];
        char addr[64];

        test_smpsim_start(&s, &coap_sim, "--fault", "silent=1", NULL);
        address_of(&s, addr, sizeof(addr));
        client_open(&c, addr);

        size_t n = test_echo_frame(5, "anyone?", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        /* The test's own timeout: nothing comes, nothing breaks. */
        ASSERT_TRUE(!client_wait(&c, 1, 1500));
        /* A session would now retransmit the same frame ... */
        ASSERT_OK(coap->send(c.link, f, n));
        /* ... and must not reuse its sequence number for another. */
        size_t m = test_echo_frame(5, "other", g, sizeof(g));
        ASSERT_EQ(coap->send(c.link, g, m), -EBUSY);
        ASSERT_TRUE(!client_wait(&c, 1, 500));

        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.tx_packets, 2);
        ASSERT_EQ(st.rx_packets, 0);
        ASSERT_EQ(c.closed_err, 0);

        /* Closing with requests in flight. */
        test_client_close(&c);
        test_smpsim_stop(&s);
}

static void test_close_in_receive(void) {
        struct test_smpsim s;
        struct test_client c;
        uint8_t f[256];
        char addr[64];

        test_smpsim_start(&s, &coap_sim, NULL);
        address_of(&s, addr, sizeof(addr));
        client_open(&c, addr);
        c.close_in_receive = true;

        /* Two answers may arrive in the same pass: the second must not be
         * delivered to a closed link. */
        size_t a = test_echo_frame(1, "one", f, sizeof(f));
        size_t b = test_echo_frame(2, "two", f + a, sizeof(f) - a);
        ASSERT_OK(coap->send(c.link, f, a + b));
        ASSERT_TRUE(client_wait(&c, 1, 5000));
        ASSERT_TRUE(c.link == NULL);
        client_idle(&c, 300);
        ASSERT_EQ(c.frames, 1);

        test_client_close(&c);
        test_smpsim_stop(&s);
}

/* ---- a hand-made CoAP device ---- */

struct fake_device {
        int fd;
        uint16_t port;
        sd_event_source *source;
        unsigned requests;       /* datagrams received */
        unsigned ignore_first;   /* ignore so many before answering */
        uint8_t code;            /* answer code, e.g. 0x45 = 2.05 */
        int last_mid;
};

/* Returns the payload of a CoAP datagram (after the 0xFF marker). */
static const uint8_t *coap_payload(const uint8_t *p, size_t n, size_t *ret_len) {
        size_t i = 4 + (p[0] & 0x0f);
        while (i < n && p[i] != 0xff) {
                unsigned d = p[i] >> 4, l = p[i] & 0x0f;
                i++;
                i += d == 13 ? 1 : d == 14 ? 2 : 0;
                if (l == 13)
                        l = 13 + p[i++];
                else if (l == 14) {
                        l = 269 + (p[i] << 8 | p[i + 1]);
                        i += 2;
                }
                i += l;
        }
        ASSERT_TRUE(i < n);
        *ret_len = n - i - 1;
        return p + i + 1;
}

static int on_fake(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct fake_device *d = userdata;
        uint8_t in[1500], out[1500], frame[1500];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        size_t plen;

        ssize_t n = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *) &from, &fromlen);
        ASSERT_TRUE(n >= 5);
        d->requests++;
        ASSERT_EQ(in[0] >> 6, 1);             /* version 1 */
        ASSERT_EQ((in[0] >> 4) & 3, 0);       /* CON */
        ASSERT_EQ(in[0] & 0x0f, 1);           /* 1-byte token */
        ASSERT_EQ(in[1], 0x03);               /* PUT */
        int mid = in[2] << 8 | in[3];
        if (d->requests <= d->ignore_first) {
                d->last_mid = mid;
                return 0;
        }
        if (d->last_mid >= 0)
                ASSERT_EQ(mid, d->last_mid);  /* a retransmission: same mid */
        d->last_mid = -1;

        /* The SMP request, and an echo answer to it. */
        const uint8_t *payload = coap_payload(in, (size_t) n, &plen);
        int r = smp_omp_decode(payload, plen, frame, sizeof(frame));
        ASSERT_OK(r);
        struct smp_header h;
        ASSERT_OK(smp_header_decode(frame, (size_t) r, &h));
        uint8_t body[64];
        struct smp_cbor_writer w;
        smp_cbor_writer_init(&w, body, sizeof(body));
        ASSERT_OK(smp_os_echo_rsp_encode(&w, SMP_CBOR_SLICE_LIT("pong")));
        h.op = SMP_OP_WRITE_RSP;
        int fl = smp_frame_build(&h, body, w.len, frame, sizeof(frame));
        ASSERT_OK(fl);

        /* ACK, same mid and token, Content-Format 60, payload. */
        size_t o = 0;
        out[o++] = 0x60 | 1;
        out[o++] = d->code;
        out[o++] = in[2];
        out[o++] = in[3];
        out[o++] = in[4];
        out[o++] = 0xc1; /* option 12, length 1 */
        out[o++] = 60;
        out[o++] = 0xff;
        r = smp_omp_encode(frame, (size_t) fl, out + o, sizeof(out) - o);
        ASSERT_OK(r);
        o += (size_t) r;
        ASSERT_EQ(sendto(fd, out, o, 0, (struct sockaddr *) &from, fromlen), (ssize_t) o);
        return 0;
}

static void fake_start(struct fake_device *d, sd_event *e) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        memset(d, 0, sizeof(*d));
        d->last_mid = -1;
        d->code = 0x45;
        d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ASSERT_TRUE(d->fd >= 0);
        ASSERT_OK(bind(d->fd, (struct sockaddr *) &a, sizeof(a)));
        ASSERT_OK(getsockname(d->fd, (struct sockaddr *) &a, &len));
        d->port = ntohs(a.sin_port);
        ASSERT_OK(sd_event_add_io(e, &d->source, d->fd, EPOLLIN, on_fake, d));
}

static void fake_stop(struct fake_device *d) {
        d->source = sd_event_source_disable_unref(d->source);
        close(d->fd);
}

static void test_retransmission_and_errors(void) {
        struct test_client c;
        struct fake_device d;
        struct smp_link_stats st;
        uint8_t f[256];
        char addr[64], conn[80];
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;

        ASSERT_OK(sd_event_new(&e));
        fake_start(&d, e);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", d.port);
        snprintf(conn, sizeof(conn), "coap:%s", addr);
        ASSERT_OK(test_client_open(&c, ctx, e, conn));

        /* The first transmission is "lost": libcoap's retransmission timer
         * must fire in our loop, after ACK_TIMEOUT (2 s, no random factor). */
        d.ignore_first = 1;
        size_t n = test_echo_frame(11, "ping", f, sizeof(f));
        uint64_t t0 = test_now_usec();
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 1, 5000));
        uint64_t dt = test_now_usec() - t0;
        ASSERT_TRUE(dt >= 1900000 && dt < 3500000);
        ASSERT_EQ(d.requests, 2);
        test_client_check_echo(&c, TEST_CLIENT_LAST, 11, "pong");
        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.lost, 1);

        /* 4.00 Bad Request: not an SMP frame, dropped and counted. */
        d.ignore_first = 0;
        d.requests = 0;
        d.code = 0x80;
        n = test_echo_frame(12, "ping", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(!client_wait(&c, 2, 500));
        ASSERT_EQ(d.requests, 1);
        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.lost, 2);
        ASSERT_EQ(st.rx_packets, 2);
        /* Answered, even if with an error: seq 12 is free again. */
        n = test_echo_frame(12, "again", f, sizeof(f));
        d.code = 0x44; /* 2.04 Changed is accepted as well */
        ASSERT_OK(coap->send(c.link, f, n));
        ASSERT_TRUE(client_wait(&c, 2, 2000));
        test_client_check_echo(&c, TEST_CLIENT_LAST, 12, "pong");

        ASSERT_EQ(c.closed_err, 0);
        coap->close(c.link);
        c.link = NULL;
        fake_stop(&d);
        test_client_close(&c);
}

/* Nobody listens: ICMP port unreachable is a lost request, not the end
 * of the link (the device may be rebooting). */
static void test_unreachable(void) {
        struct test_client c;
        struct smp_link_stats st;
        uint8_t f[256];
        char addr[64];

        snprintf(addr, sizeof(addr), "127.0.0.1:%u", test_free_udp_ports(1, 0));
        client_open(&c, addr);
        size_t n = test_echo_frame(1, "hello?", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        client_idle(&c, 300);
        n = test_echo_frame(2, "hello?", f, sizeof(f));
        ASSERT_OK(coap->send(c.link, f, n));
        client_idle(&c, 300);
        coap->get_stats(c.link, &st);
        ASSERT_EQ(st.tx_packets, 2);
        ASSERT_EQ(st.rx_packets, 0);
        ASSERT_EQ(st.lost, 2);
        ASSERT_EQ(c.closed_err, 0);
        test_client_close(&c);
}

static void test_end(void) {
        ctx = smp_context_unref(ctx);
}

TEST_MAIN(TEST(test_load), TEST(test_addresses), TEST(test_echo_and_params), TEST(test_large_echo), TEST(test_latency),
          TEST(test_silent_device), TEST(test_close_in_receive), TEST(test_retransmission_and_errors),
          TEST(test_unreachable), TEST(test_end))
