/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The plugin loader and the udp and serial transports, loaded the way
 * sessions load them (through a context), against smpsim over real
 * sockets and ptys:
 *   - loader: unknown (-ENOENT, naming the directories searched) and
 *     invalid (-EINVAL) schemes, broken plugins (-EPROTO with the reason:
 *     dlerror() for a file that is no library, ABI version 1 and 3, a
 *     version 2 descriptor too small, a wrong name, no descriptor),
 *     transports added to the context, listing;
 *   - udp: SMP v2 echo, several frames in one datagram, -EMSGSIZE above
 *     the mtu, a refused port that counts a loss but keeps the link,
 *     discovery of exactly smpsim's devices in a port range;
 *   - serial: echo through the pty, a frame spanning many console lines,
 *     the device side going away (closed(-ECONNRESET)).
 *
 * Needs $SMPSIM and $SMPGW_PLUGIN_DIR (meson sets both; the plugin path
 * also holds the broken plugins built beside this test).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "smpgw/smp-discovery.h"
#include "smpgw/smp-frame.h"
#include "smpgw/smp-serial.h"
#include "smpgw/smp-transport.h"
#include "test-client.h"
#include "test-context.h"
#include "test-loop.h"
#include "test-smpsim.h"
#include "test-util.h"

#define WAIT_USEC (5u * TEST_USEC_PER_SEC)

static struct smp_context *ctx;

/* For links a test opens only to look at or to be refused: nothing
 * arrives on them. */
static void ignore_receive(const uint8_t *data, size_t len, void *userdata) {
}
static void ignore_closed(int err, void *userdata) {
}
static const struct smp_link_callbacks callbacks = {
        .receive = ignore_receive,
        .closed = ignore_closed,
};

/* Waits for n whole frames; what came must be whole frames only (udp and
 * serial deliver whole packets). */
static bool wait_frames(struct test_client *c, unsigned n) {
        bool ok = test_client_wait(c, n, WAIT_USEC);
        ASSERT_EQ(c->rx_len, c->whole);
        return ok;
}

/* ---- loader ---- */

static void test_loader(void) {
        const struct smp_transport *t, *t2;
        char *why = NULL;

        ASSERT_OK(smp_context_find_transport(ctx, "udp", &t, NULL));
        ASSERT_STREQ(t->name, "udp");
        ASSERT_EQ(t->abi_version, SMP_TRANSPORT_ABI_VERSION);
        ASSERT_TRUE(t->struct_size >= SMP_TRANSPORT_SIZE_V2);
        ASSERT_TRUE(t->discover_start && t->discover_stop);
        ASSERT_OK(smp_context_find_transport(ctx, "udp", &t2, NULL));
        ASSERT_TRUE(t == t2); /* loaded once */
        ASSERT_OK(smp_context_find_transport(ctx, "serial", &t, NULL));
        ASSERT_STREQ(t->name, "serial");
        ASSERT_TRUE(!t->discover_start);

        /* Not there: the sentence names every directory searched. */
        ASSERT_EQ(smp_context_find_transport(ctx, "nosuchtransport", &t, &why), -ENOENT);
        ASSERT_TRUE(why);
        ASSERT_TRUE(strstr(why, "smpgw-transport-nosuchtransport.so"));
        const char *path = smp_context_get_plugin_path(ctx);
        char dirs[4096];
        snprintf(dirs, sizeof(dirs), "%s", path);
        for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
                ASSERT_TRUE(strstr(why, dir));
        free(why);
        why = NULL;

        ASSERT_EQ(smp_context_find_transport(ctx, "", &t, NULL), -EINVAL);
        ASSERT_EQ(smp_context_find_transport(ctx, "../plugins/smpgw-transport-udp", &t, NULL), -EINVAL);
        ASSERT_EQ(smp_context_find_transport(ctx, "Udp", &t, NULL), -EINVAL);
        ASSERT_EQ(smp_context_find_transport(ctx, "udp.so", &t, NULL), -EINVAL);
        /* Broken plugins, found in the second directory of the path, each
         * refused with its reason. */
        static const struct {
                const char *scheme, *reason;
        } broken[] = {
                { "badabi", "built for plugin ABI version 3, this libsmpgw speaks 2" },
                { "badv1", "built for plugin ABI version 1, this libsmpgw speaks 2" },
                { "badsize", "descriptor is 16 bytes, ABI version 2 needs at least" },
                { "badname", "is the 'udp' transport, not 'badname'" },
                { "nosym", "has no smpgw_transport_plugin symbol" },
        };
        for (size_t i = 0; i < ELEMENTSOF(broken); i++) {
                ASSERT_EQ(smp_context_find_transport(ctx, broken[i].scheme, &t, &why), -EPROTO);
                if (!why || !strstr(why, broken[i].reason) || !strstr(why, broken[i].scheme)) {
                        fprintf(stderr, "%s: '%s'\n", broken[i].scheme, why ? why : "(none)");
                        abort();
                }
                free(why);
                why = NULL;
        }
}

/* A file that is no shared library at all: dlerror() says why. */
static void test_loader_dlerror(void) {
        char dir[] = "/tmp/test-transports-plugins-XXXXXX", file[128];
        struct smp_context *c;
        const struct smp_transport *t;
        char *why = NULL;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/smpgw-transport-junk.so", dir);
        FILE *f = fopen(file, "w");
        ASSERT_TRUE(f);
        fputs("not an ELF file\n", f);
        fclose(f);

        ASSERT_OK(smp_context_new(&c));
        ASSERT_EQ(smp_context_set_plugin_path(c, "relative/dir"), -EINVAL);
        ASSERT_EQ(smp_context_set_plugin_path(c, "/a::/b"), -EINVAL);
        ASSERT_OK(smp_context_set_plugin_path(c, dir));
        ASSERT_EQ(smp_context_find_transport(c, "junk", &t, &why), -EPROTO);
        ASSERT_TRUE(why);
        ASSERT_TRUE(strstr(why, file));
        ASSERT_TRUE(strstr(why, "cannot be loaded: "));
        /* glibc: "invalid ELF header" or "file too short" */
        ASSERT_TRUE(strstr(why, "ELF") || strstr(why, "too short"));
        free(why);
        smp_context_unref(c);
        ASSERT_OK(unlink(file));
        ASSERT_OK(rmdir(dir));
}

static int fake_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                     const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        return -ENOSYS;
}
static int fake_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        *ret = (struct smp_transport_instance *) host;
        return 0;
}
static void fake_instance_free(struct smp_transport_instance *instance) {
}
static const struct smp_conn_syntax fake_syntax = { .address = SMP_CONN_ADDRESS_INET };
static void fake_close(struct smp_link *link) {
}
static int fake_send(struct smp_link *link, const uint8_t *frame, size_t len) {
        return -ENOSYS;
}
static void fake_get_info(struct smp_link *link, struct smp_link_info *ret) {
}
static void fake_get_stats(struct smp_link *link, struct smp_link_stats *ret) {
}

static void test_register_and_list(void) {
        static const struct smp_transport fake = {
                .abi_version = SMP_TRANSPORT_ABI_VERSION,
                .struct_size = sizeof(struct smp_transport),
                .name = "fake",
                .conn_syntax = &fake_syntax,
                .instance_new = fake_instance_new,
                .instance_free = fake_instance_free,
                .open = fake_open,
                .close = fake_close,
                .send = fake_send,
                .get_info = fake_get_info,
                .get_stats = fake_get_stats,
        };
        struct smp_transport bad = fake;
        const struct smp_transport *t;
        char **names;

        ASSERT_OK(smp_context_add_transport(ctx, &fake));
        ASSERT_EQ(smp_context_add_transport(ctx, &fake), -EEXIST);
        bad.abi_version = 99;
        ASSERT_EQ(smp_context_add_transport(ctx, &bad), -EINVAL);
        bad = fake;
        bad.name = "no/slash";
        ASSERT_EQ(smp_context_add_transport(ctx, &bad), -EINVAL);
        bad = fake;
        bad.struct_size = 8;
        ASSERT_EQ(smp_context_add_transport(ctx, &bad), -EINVAL);
        bad = fake;
        bad.conn_syntax = NULL;
        ASSERT_EQ(smp_context_add_transport(ctx, &bad), -EINVAL);
        ASSERT_OK(smp_context_find_transport(ctx, "fake", &t, NULL));
        ASSERT_TRUE(t == &fake);

        int n = smp_context_list_transports(ctx, &names);
        ASSERT_OK(n);
        ASSERT_TRUE(names[n] == NULL);
        bool have_udp = false, have_serial = false, have_fake = false, have_badabi = false;
        for (int i = 0; i < n; i++) {
                if (i > 0)
                        ASSERT_TRUE(strcmp(names[i - 1], names[i]) < 0); /* sorted, once */
                have_udp |= streq(names[i], "udp");
                have_serial |= streq(names[i], "serial");
                have_fake |= streq(names[i], "fake");
                have_badabi |= streq(names[i], "badabi");
        }
        ASSERT_TRUE(have_udp && have_serial && have_fake && have_badabi);
        smp_strv_free(names);
}

/* ---- udp ---- */

static void test_udp_address(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        const struct smp_transport *t;
        struct smp_link *l;
        struct smp_link_info info;
        static const char *const bad[] = {
                "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
                "example.com:1337", "::1:1337", "[::1]", "[::1]1337", "[::1:1337", "1.2.3.4:1,mtu=7",
                "1.2.3.4:1,mtu=65508", "1.2.3.4:1,mtu=", "1.2.3.4:1,mtux=9", "1.2.3.4:1,",
        };

        ASSERT_OK(sd_event_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char conn[64];
                snprintf(conn, sizeof(conn), "udp:%s", bad[i]);
                int r = test_link_open(ctx, e, conn, &callbacks, NULL, &t, &l);
                if (r != -EINVAL)
                        fprintf(stderr, "'%s': %d\n", bad[i], r);
                ASSERT_EQ(r, -EINVAL);
        }

        ASSERT_OK(test_link_open(ctx, e, "udp:localhost:1337", &callbacks, NULL, &t, &l));
        t->get_info(l, &info);
        ASSERT_EQ(info.mtu, 1472);
        ASSERT_TRUE(!info.stream && !info.fragments);
        ASSERT_EQ(info.overhead, 28);
        ASSERT_EQ(info.buffer_overhead, 0);
        t->close(l);
        ASSERT_OK(test_link_open(ctx, e, "udp:[::1]:1337", &callbacks, NULL, &t, &l));
        t->get_info(l, &info);
        ASSERT_EQ(info.mtu, 1452);
        ASSERT_EQ(info.overhead, 48);
        t->close(l);
        ASSERT_OK(test_link_open(ctx, e, "udp:127.0.0.1:1337,mtu=512", &callbacks, NULL, &t, &l));
        t->get_info(l, &info);
        ASSERT_EQ(info.mtu, 512);
        t->close(l);
}

static void test_udp_echo(struct test_smpsim *sim) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct test_client p;
        struct smp_link_stats st;
        char conn[64];
        uint8_t frame[2048];

        ASSERT_OK(sd_event_new(&e));
        snprintf(conn, sizeof(conn), "udp:127.0.0.1:%u", sim->udp_port);
        ASSERT_OK(test_client_open(&p, ctx, e, conn));

        size_t n = test_echo_frame(0x42, "hi", frame, sizeof(frame));
        ASSERT_OK(p.t->send(p.link, frame, n));
        ASSERT_TRUE(wait_frames(&p, 1));
        ASSERT_EQ(p.pieces, 1);
        test_client_check_echo(&p, 0, 0x42, "hi");
        p.t->get_stats(p.link, &st);
        ASSERT_EQ(st.tx_packets, 1);
        ASSERT_EQ(st.tx_bytes, n);
        ASSERT_EQ(st.rx_packets, 1);
        ASSERT_EQ(st.rx_bytes, p.rx_len);
        ASSERT_EQ(st.lost, 0);
        ASSERT_TRUE(!p.closed);

        /* Several frames in one datagram: answered in order. */
        uint8_t pkt[1024];
        size_t len = 0;
        len += test_echo_frame(1, "one", pkt + len, sizeof(pkt) - len);
        len += test_echo_frame(2, "two", pkt + len, sizeof(pkt) - len);
        len += test_echo_frame(3, "three", pkt + len, sizeof(pkt) - len);
        test_client_clear(&p);
        ASSERT_OK(p.t->send(p.link, pkt, len));
        ASSERT_TRUE(wait_frames(&p, 3));
        test_client_check_echo(&p, 0, 1, "one");
        test_client_check_echo(&p, 1, 2, "two");
        test_client_check_echo(&p, 2, 3, "three");

        /* Larger than the mtu: refused, nothing sent. */
        char text[1500];
        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = 0;
        n = test_echo_frame(4, text, frame, sizeof(frame));
        ASSERT_TRUE(n > 1472);
        ASSERT_EQ(p.t->send(p.link, frame, n), -EMSGSIZE);
        text[1456] = 0; /* 8 header + 1 map + 2 key + 3 text head + 1456 = 1470 */
        n = test_echo_frame(5, text, frame, sizeof(frame));
        ASSERT_TRUE(n <= 1472);
        test_client_clear(&p);
        ASSERT_OK(p.t->send(p.link, frame, n));
        ASSERT_TRUE(wait_frames(&p, 1));
        test_client_check_echo(&p, 0, 5, text);

        /* Closing from inside receive(). */
        p.close_in_receive = true;
        n = test_echo_frame(6, "bye", frame, sizeof(frame));
        ASSERT_OK(p.t->send(p.link, frame, n));
        unsigned before = p.pieces;
        bool got = false;
        for (int i = 0; i < 100 && !got; i++) {
                ASSERT_OK(sd_event_run(e, 50000));
                got = p.pieces > before;
        }
        ASSERT_TRUE(got);
        ASSERT_TRUE(p.link == NULL);
        ASSERT_TRUE(!p.closed);
        test_client_close(&p);
}

/* A port nobody listens on: the kernel's ICMP "port unreachable" comes
 * back as ECONNREFUSED; the link counts it and stays usable. */
static void test_udp_refused(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct test_client p;
        struct smp_link_stats st;
        char conn[64];
        uint8_t frame[64];

        ASSERT_OK(sd_event_new(&e));
        snprintf(conn, sizeof(conn), "udp:127.0.0.1:%u", test_free_udp_ports(1, 0));
        ASSERT_OK(test_client_open(&p, ctx, e, conn));
        size_t n = test_echo_frame(7, "anyone?", frame, sizeof(frame));
        for (int i = 0; i < 3; i++) {
                ASSERT_OK(p.t->send(p.link, frame, n));
                test_run_for(e, 50000);
        }
        p.t->get_stats(p.link, &st);
        ASSERT_EQ(st.tx_packets, 3);
        ASSERT_TRUE(st.lost >= 1);
        ASSERT_EQ(st.rx_packets, 0);
        ASSERT_TRUE(!p.closed);
        test_client_close(&p);
}

struct discovery_result {
        char conns[16][64];
        unsigned n;
        bool done;
        struct smp_discovery *d;
        bool stop_in_found;
};

static void on_found(const struct smp_discovered *found, void *userdata) {
        struct discovery_result *res = userdata;
        ASSERT_TRUE(!res->done);
        if (!found) {
                res->done = true;
                return;
        }
        ASSERT_TRUE(res->n < ELEMENTSOF(res->conns));
        ASSERT_TRUE(found->conn && found->address);
        ASSERT_TRUE(strncmp(found->conn, "udp:", 4) == 0);
        ASSERT_STREQ(found->conn + 4, found->address);
        snprintf(res->conns[res->n++], sizeof(res->conns[0]), "%s", found->conn);
        if (res->stop_in_found) {
                res->d = smp_discovery_free(res->d);
                res->done = true;
        }
}

static int conn_cmp(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_udp_discovery(struct test_smpsim *sim) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct discovery_result res = {};
        char args[64];
        struct smp_discovery *d;
        static const char *const bad[] = {
                "", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:9-8", "127.0.0.2-127.0.0.1:1",
                "[::1]-[::2]:1", "example.com:1-2", "127.0.0.1:1-2-3",
        };

        ASSERT_OK(sd_event_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_EQ(smp_discovery_start(ctx, e, "udp", bad[i], on_found, &res, &d), -EINVAL);
        /* Bounded: 4097 targets are too many, 4096 are not. */
        ASSERT_EQ(smp_discovery_start(ctx, e, "udp", "127.0.0.1:1000-5096", on_found, &res, &d), -E2BIG);
        ASSERT_EQ(smp_discovery_start(ctx, e, "udp", "10.0.0.0-10.0.16.0:1337", on_found, &res, &d), -E2BIG);
        ASSERT_EQ(smp_discovery_start(ctx, e, "udp", "10.0.0.0-10.0.0.255:1337-1352", on_found, &res, &d), 0);
        smp_discovery_free(d);
        /* serial cannot discover */
        ASSERT_EQ(smp_discovery_start(ctx, e, "serial", "", on_found, &res, &d), -EOPNOTSUPP);

        /* Devices at port..port+2; the range reaches 3 ports below and 5
         * above, which nobody answers from. */
        snprintf(args, sizeof(args), "127.0.0.1:%u-%u", sim->udp_port - 3, sim->udp_port + sim->count + 4);
        ASSERT_OK(smp_discovery_start(ctx, e, "udp", args, on_found, &res, &res.d));
        ASSERT_TRUE(test_run_until(e, &res.done, WAIT_USEC));
        smp_discovery_free(res.d);
        ASSERT_EQ(res.n, sim->count);
        qsort(res.conns, res.n, sizeof(res.conns[0]), conn_cmp);
        for (unsigned i = 0; i < sim->count; i++) {
                char want[64];
                snprintf(want, sizeof(want), "udp:127.0.0.1:%u", sim->udp_port + i);
                ASSERT_STREQ(res.conns[i], want);
        }

        /* Stopping from inside found(). */
        memset(&res, 0, sizeof(res));
        res.stop_in_found = true;
        snprintf(args, sizeof(args), "localhost:%u", sim->udp_port);
        ASSERT_OK(smp_discovery_start(ctx, e, "udp", args, on_found, &res, &res.d));
        ASSERT_TRUE(test_run_until(e, &res.done, WAIT_USEC));
        ASSERT_EQ(res.n, 1);
        ASSERT_TRUE(res.d == NULL);
        test_run_for(e, 100000); /* nothing fires after the stop */
}

/* ---- serial ---- */

static void test_serial_address(struct test_smpsim *sim) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        const struct smp_transport *t;
        struct smp_link *l, *l2;
        struct smp_link_info info;
        char addr[128];

        ASSERT_OK(sd_event_new(&e));
        static const char *const bad[] = {
                "serial:", "serial:dev/ttyACM0", "serial:/", "serial:/dev/ttyACM0,baud=12345",
                "serial:/dev/ttyACM0,baud=", "serial:/dev/ttyACM0,baud=115200x", "serial:/dev/ttyACM0,parity=none",
                "serial:/nonexistent/tty",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_EQ(test_link_open(ctx, e, bad[i], &callbacks, NULL, &t, &l), -EINVAL);
        ASSERT_EQ(test_link_open(ctx, e, "serial:/dev/nonexistent-tty", &callbacks, NULL, &t, &l), -ENOENT);
        ASSERT_EQ(test_link_open(ctx, e, "serial:/dev/null", &callbacks, NULL, &t, &l), -ENOTTY);

        char tty[64];
        test_smpsim_tty(sim, 1, tty, sizeof(tty));
        snprintf(addr, sizeof(addr), "serial:%s,baud=9600", tty);
        ASSERT_OK(test_link_open(ctx, e, addr, &callbacks, NULL, &t, &l));
        t->get_info(l, &info);
        ASSERT_EQ(info.mtu, SMP_SERIAL_FRAME_MAX);
        ASSERT_TRUE(info.fragments && !info.stream);
        ASSERT_EQ(info.buffer_overhead, 4);
        /* One user per tty. */
        ASSERT_EQ(test_link_open(ctx, e, addr, &callbacks, NULL, &t, &l2), -EBUSY);
        t->close(l);
        ASSERT_OK(test_link_open(ctx, e, addr, &callbacks, NULL, &t, &l2));
        t->close(l2);
}

static void test_serial_echo(struct test_smpsim *sim) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct test_client p;
        struct smp_link_stats st;
        char conn[128];
        uint8_t frame[2048];

        ASSERT_OK(sd_event_new(&e));
        char tty[64];
        test_smpsim_tty(sim, 0, tty, sizeof(tty));
        snprintf(conn, sizeof(conn), "serial:%s", tty);
        ASSERT_OK(test_client_open(&p, ctx, e, conn));

        size_t n = test_echo_frame(0x42, "hi", frame, sizeof(frame));
        ASSERT_OK(p.t->send(p.link, frame, n));
        ASSERT_TRUE(wait_frames(&p, 1));
        ASSERT_EQ(p.pieces, 1);
        test_client_check_echo(&p, 0, 0x42, "hi");

        /* 1,500 bytes of text: about 17 console lines each way, well within
         * smpsim's 2048-byte buffer. */
        char text[1501];
        for (size_t i = 0; i < sizeof(text) - 1; i++)
                text[i] = (char) ('a' + i % 26);
        text[sizeof(text) - 1] = 0;
        n = test_echo_frame(0x43, text, frame, sizeof(frame));
        ASSERT_TRUE(smp_serial_encoded_size(n, SMP_SERIAL_LINE_MAX) > 10 * SMP_SERIAL_LINE_MAX);
        test_client_clear(&p);
        ASSERT_OK(p.t->send(p.link, frame, n));
        ASSERT_TRUE(wait_frames(&p, 1));
        ASSERT_EQ(p.pieces, 2); /* one receive() per packet, not per line */
        test_client_check_echo(&p, 0, 0x43, text);

        p.t->get_stats(p.link, &st);
        ASSERT_EQ(st.tx_packets, 2);
        ASSERT_EQ(st.rx_packets, 2);
        ASSERT_EQ(st.lost, 0);
        ASSERT_TRUE(!p.closed);
        test_client_close(&p);
}

/* The device side goes away (USB unplugged; here smpsim exits and closes
 * the pty master): closed(-ECONNRESET), and send() says so too. */
static void test_serial_hangup(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct test_smpsim sim;
        struct test_client p;
        char conn[128];
        uint8_t frame[64];

        test_smpsim_start(&sim, &(struct test_smpsim_options) { .serial = true }, NULL);
        ASSERT_OK(sd_event_new(&e));
        char tty[64];
        test_smpsim_tty(&sim, 0, tty, sizeof(tty));
        snprintf(conn, sizeof(conn), "serial:%s", tty);
        ASSERT_OK(test_client_open(&p, ctx, e, conn));
        size_t n = test_echo_frame(1, "still there?", frame, sizeof(frame));
        ASSERT_OK(p.t->send(p.link, frame, n));
        ASSERT_TRUE(wait_frames(&p, 1));

        test_smpsim_stop(&sim);
        bool closed = false;
        uint64_t start, now;
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &start));
        for (now = start; !closed && now - start < WAIT_USEC;) {
                ASSERT_OK(sd_event_run(e, 100000));
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
                closed = p.closed;
        }
        ASSERT_EQ(p.closed_err, -ECONNRESET);
        ASSERT_EQ(p.t->send(p.link, frame, n), -ECONNRESET);
        test_client_close(&p);
}

/* Our own pty, with nobody reading the device side at first: the output
 * buffer fills, send() says -EAGAIN, and once the lines are taken
 * writable() follows and every frame arrives intact.  Then the device
 * side writes a damaged packet and a good one. */
static unsigned decoded_packets, decoded_drops;

static void count_packet(const uint8_t *frame, size_t len, void *userdata) {
        decoded_packets++;
}

static void count_drop(enum smp_serial_drop why, void *userdata) {
        decoded_drops++;
}

/* What the last program left in the tty's settings goes: flow control
 * (a USB adapter with CTS not wired would send nothing), two stop bits,
 * HUPCL (a board wired to reset on DTR would reset at each close); the
 * tty is ours alone while open (TIOCEXCL), and free again once closed. */
static void test_serial_tty_settings(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        _cleanup_close_ int slave = -1;
        const struct smp_transport *t;
        struct smp_link *l;
        struct termios tio;
        char conn[128], pts[64];
        int excl = -1;

        ASSERT_TRUE(master >= 0);
        ASSERT_OK(grantpt(master));
        ASSERT_OK(unlockpt(master));
        ASSERT_EQ(ptsname_r(master, pts, sizeof(pts)), 0);
        slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
        ASSERT_TRUE(slave >= 0);
        /* as minicom or a getty may leave it */
        ASSERT_OK(tcgetattr(slave, &tio));
        tio.c_iflag |= IXON | IXOFF | IXANY;
        tio.c_cflag |= CRTSCTS | CSTOPB | HUPCL;
        ASSERT_OK(tcsetattr(slave, TCSANOW, &tio));

        ASSERT_OK(sd_event_new(&e));
        snprintf(conn, sizeof(conn), "serial:%s", pts);
        ASSERT_OK(test_link_open(ctx, e, conn, &callbacks, NULL, &t, &l));
        ASSERT_OK(tcgetattr(slave, &tio));
        ASSERT_EQ(tio.c_iflag & (IXON | IXOFF | IXANY), 0u);
        ASSERT_EQ(tio.c_cflag & (CRTSCTS | CSTOPB | HUPCL | PARENB), 0u);
        ASSERT_EQ(tio.c_cflag & CSIZE, (tcflag_t) CS8);
        ASSERT_OK(ioctl(slave, TIOCGEXCL, &excl));
        ASSERT_EQ(excl, 1);
        t->close(l);
        ASSERT_OK(ioctl(slave, TIOCGEXCL, &excl));
        ASSERT_EQ(excl, 0);
}

static void test_serial_backpressure(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        static const struct smp_serial_callbacks dcb = { .packet = count_packet, .dropped = count_drop };
        struct smp_serial_decoder *dec;
        struct smp_link_stats st;
        struct test_client p;
        char conn[128], pts[64];
        uint8_t frame[2048], buf[8192];
        char text[1501];

        ASSERT_TRUE(master >= 0);
        ASSERT_OK(grantpt(master));
        ASSERT_OK(unlockpt(master));
        ASSERT_EQ(ptsname_r(master, pts, sizeof(pts)), 0);
        ASSERT_OK(sd_event_new(&e));
        snprintf(conn, sizeof(conn), "serial:%s", pts);
        ASSERT_OK(test_client_open(&p, ctx, e, conn));

        memset(text, 'z', sizeof(text) - 1);
        text[sizeof(text) - 1] = 0;
        size_t n = test_echo_frame(9, text, frame, sizeof(frame));
        unsigned accepted = 0;
        int r = 0;
        for (int i = 0; i < 1000; i++) {
                r = p.t->send(p.link, frame, n);
                if (r == -EAGAIN)
                        break;
                ASSERT_OK(r);
                accepted++;
        }
        ASSERT_EQ(r, -EAGAIN);
        /* Bounded: a bit more than one largest frame, not unlimited. */
        ASSERT_TRUE(accepted > 10 && accepted < 100);
        ASSERT_TRUE(!p.writable);

        ASSERT_OK(smp_serial_decoder_new(4096, &dcb, NULL, &dec));
        decoded_packets = decoded_drops = 0;
        for (int i = 0; i < 2000 && !p.writable; i++) {
                ssize_t k;
                while ((k = read(master, buf, sizeof(buf))) > 0)
                        smp_serial_decoder_feed(dec, buf, (size_t) k);
                ASSERT_OK(sd_event_run(e, 10000));
        }
        ASSERT_TRUE(p.writable);
        for (int i = 0; i < 100 && decoded_packets < accepted; i++) {
                ssize_t k;
                while ((k = read(master, buf, sizeof(buf))) > 0)
                        smp_serial_decoder_feed(dec, buf, (size_t) k);
                ASSERT_OK(sd_event_run(e, 10000));
        }
        ASSERT_EQ(decoded_packets, accepted);
        ASSERT_EQ(decoded_drops, 0);
        smp_serial_decoder_free(dec);
        ASSERT_OK(p.t->send(p.link, frame, n));

        /* From the device: console noise, a packet with a broken CRC, a
         * good packet. */
        uint8_t lines[4096];
        int len = smp_serial_encode(frame, 40, SMP_SERIAL_LINE_MAX, lines, sizeof(lines));
        ASSERT_OK(len);
        static const char noise[] = "*** Booting Zephyr OS ***\r\n";
        ASSERT_EQ(write(master, noise, sizeof(noise) - 1), (ssize_t) sizeof(noise) - 1);
        lines[4] ^= 0x01; /* a base64 character of the first line */
        ASSERT_EQ(write(master, lines, (size_t) len), len);
        lines[4] ^= 0x01;
        ASSERT_EQ(write(master, lines, (size_t) len), len);
        test_client_clear(&p);
        p.pieces = 0;
        for (int i = 0; i < 100 && p.pieces == 0; i++)
                ASSERT_OK(sd_event_run(e, 10000));
        ASSERT_EQ(p.pieces, 1);
        ASSERT_EQ(p.rx_len, 40);
        ASSERT_MEMEQ(p.rx, frame, 40);
        p.t->get_stats(p.link, &st);
        ASSERT_EQ(st.lost, 1);
        ASSERT_EQ(st.rx_packets, 1);
        ASSERT_EQ(st.tx_packets, accepted + 1);
        ASSERT_TRUE(!p.closed);
        test_client_close(&p);
}

/* ---- main ---- */

static struct test_smpsim main_sim;

static void test_setup(void) {
        ctx = test_context_new();
}
static void test_teardown(void) {
        ctx = smp_context_unref(ctx);
}

static void test_sim_start(void) {
        test_smpsim_start(&main_sim, &(struct test_smpsim_options) { .count = 3, .udp = true, .udp_free_above = 8, .serial = true }, NULL);
}
static void test_udp_echo_sim(void) {
        test_udp_echo(&main_sim);
}
static void test_udp_discovery_sim(void) {
        test_udp_discovery(&main_sim);
}
static void test_serial_address_sim(void) {
        test_serial_address(&main_sim);
}
static void test_serial_echo_sim(void) {
        test_serial_echo(&main_sim);
}
static void test_sim_stop(void) {
        test_smpsim_stop(&main_sim);
}

TEST_MAIN(TEST(test_setup), TEST(test_loader), TEST(test_loader_dlerror), TEST(test_register_and_list),
          TEST(test_udp_address), TEST(test_udp_refused), TEST(test_serial_backpressure),
          TEST(test_serial_tty_settings), TEST(test_sim_start), TEST(test_udp_echo_sim), TEST(test_udp_discovery_sim),
          TEST(test_serial_address_sim), TEST(test_serial_echo_sim), TEST(test_sim_stop), TEST(test_serial_hangup),
          TEST(test_teardown))
