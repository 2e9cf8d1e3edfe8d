/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection strings (lib/smp-conn.c) through a context with this build's
 * transport plugins, found the way any program of the build tree finds
 * them (no $SMPGW_PLUGIN_DIR: the build tree's plugins/ directory):
 *   - every string refused, each with the sentence naming the part that
 *     is wrong (the strings smpgwd used to store as devices among them);
 *   - canonical forms: one string for every way of writing a device;
 *   - what plugins read: host, family, port, scope, path, address, options;
 *   - a transport's declared options (number, word, indexed, allowed
 *     values) and its own check, with a transport added to the context.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "config.h"
#include "smpgw/smp-context.h"
#include "test-util.h"

static struct smp_context *ctx;

/* Asserts conn is refused with -EINVAL and a sentence containing want. */
static void refused(const char *conn, const char *want) {
        struct smp_conn *c = NULL;
        char *why = NULL;
        int r = smp_context_parse_conn(ctx, conn, &c, &why);
        if (r != -EINVAL || !why || !strstr(why, want)) {
                fprintf(stderr, "'%s': %d '%s', wanted -EINVAL and '%s'\n", conn, r, why ? why : "(none)", want);
                abort();
        }
        /* Sentences quote only printable ASCII. */
        for (const char *p = why; *p; p++)
                ASSERT_TRUE(*p >= 0x20 && *p < 0x7f);
        ASSERT_TRUE(!c);
        free(why);
}

/* Asserts conn parses to the canonical form want. */
static struct smp_conn *canonical(const char *conn, const char *want) {
        struct smp_conn *c = NULL;
        char *why = NULL;
        int r = smp_context_parse_conn(ctx, conn, &c, &why);
        if (r < 0 || !streq(smp_conn_get_string(c), want)) {
                fprintf(stderr, "'%s': %d '%s' '%s', wanted '%s'\n", conn, r, why ? why : "",
                        r >= 0 ? smp_conn_get_string(c) : "", want);
                abort();
        }
        return c;
}

/* libsmpgw reads no environment: whatever $SMPGW_PLUGIN_DIR says, a new
 * context searches the default path. */
static void test_setup(void) {
        ASSERT_OK(smp_context_new(&ctx));
        ASSERT_STREQ(smp_context_get_plugin_path(ctx), SMPGW_BUILD_PLUGIN_DIR ":" SMPGW_PLUGIN_DIR);
}

/* The strings of issue 10, and their kin. */
static void test_refused(void) {
        /* udp and coap: HOST:PORT */
        refused("udp:127.0.0.1", "no port after '127.0.0.1' (udp:HOST:PORT)");
        refused("udp:127.0.0.1:", "no port after '127.0.0.1:'");
        refused("udp:example.com:1337", "host 'example.com' is not an IPv4 address, an IPv6 address in brackets or "
                                        "localhost (host names are not resolved)");
        refused("coap:gateway.local:5683", "host 'gateway.local' is not an IPv4 address");
        refused("udp:127.0.0.1:0", "port '0' is out of range (1 to 65535)");
        refused("udp:127.0.0.1:65536", "port '65536' is out of range (1 to 65535)");
        refused("udp:127.0.0.1:99999", "port '99999' is out of range");
        refused("udp:127.0.0.1:99999999999999999999", "port '99999999999999999999' is out of range");
        refused("udp:127.0.0.1:12x", "unexpected 'x' after the port 12");
        refused("udp:127.0.0.1:x", "port 'x' is not a number");
        refused("udp:256.1.1.1:5", "host '256.1.1.1' is not an IPv4 address");
        refused("udp:127.0.0.1:1337:1", "unexpected ':1' after the port 1337");
        refused("udp:::1:1337", "'::1:1337' looks like an IPv6 address: IPv6 addresses go in brackets");
        refused("coap:[::1:5683", "'[::1:5683' lacks the ']' that closes an IPv6 address");
        refused("coap:[]:5683", "'' in brackets is not an IPv6 address");
        refused("udp:[::1]1337", "unexpected '1337' after '[::1]'");
        refused("udp:[::1]", "no port after '[::1]'");
        refused("udp:[fe80::1]:1337", "link-local address 'fe80::1' needs its interface");
        refused("udp:[2001:db8::1%eth0]:1337", "an interface ('%eth0') goes only with a link-local");
        refused("udp:[fe80::1%e/th0]:1337", "'e/th0' after '%' in '[fe80::1%e/th0]' is not an interface name");
        refused("udp:", "no address after 'udp:'");
        refused("coap::5683", "no host before ':'");
        /* options */
        refused("udp:127.0.0.1:1337,mtu=abc", "mtu='abc': 'abc' is not a number");
        refused("udp:127.0.0.1:1337,mtu=7", "mtu=7 is out of range (8 to 65527)");
        refused("udp:127.0.0.1:1337,mtu=65508", "mtu=65508 is more than an IPv4 datagram carries (65507)");
        refused("udp:127.0.0.1:1337,foo=1", "unknown option 'foo' (udp takes mtu)");
        refused("udp:127.0.0.1:1337,mtu", "option 'mtu' has no value (mtu=VALUE)");
        refused("udp:127.0.0.1:1337,mtu=", "mtu='': '' is not a number");
        refused("udp:127.0.0.1:1337,", "an empty option after ','");
        refused("udp:127.0.0.1:1337,mtu=512,mtu=600", "option 'mtu' is given twice");
        refused("coap:127.0.0.1,mtu=100000", "mtu=100000 is out of range (128 to 1472)");
        refused("serial:/dev/ttyACM0,baud=12345", "baud=12345 is not one of 50 75 110");
        refused("serial:/dev/ttyACM0,parity=none", "unknown option 'parity' (serial takes baud)");
        /* bytes that are not printable ASCII: never two devices for one */
        refused("udp:127.0.0.1:1337 ", "a space at the end: connection strings are printable ASCII without "
                                       "spaces");
        refused("udp:127.0.0.1:1337\n", "a newline at the end");
        refused(" udp:127.0.0.1:1337", "a space at the start");
        refused("udp:127.0.0.1:1337\t", "a tab at the end");
        refused("udp:127.0.0.1:1337\xe2\x80\xae", "byte 0xe2 (beyond ASCII) at offset 18");
        refused("udp:127.0.0.1:13\x01" "37", "control character 0x01 at offset 16");
        refused("udp:127.0.0.1:1337\x7f", "control character 0x7f at the end");
        /* ble: six hex octets */
        refused("ble:zz:zz:zz", "'zz:zz:zz' is not a Bluetooth address (six hex octets: AA:BB:CC:DD:EE:FF)");
        refused("ble:C0:DE:00:00:00", "'C0:DE:00:00:00' is not a Bluetooth address");
        refused("ble:C0-DE-00-00-00-00", "is not a Bluetooth address");
        refused("ble:C0:DE:00:00:00:00,adapter=hc0", "adapter='hc0' is not hciN (such as hci0)");
        refused("ble:C0:DE:00:00:00:00,mode=fast", "mode='fast' is not one of acquire, notify");
        refused("ble:C0:DE:00:00:00:00,connect-timeout=0", "connect-timeout=0 is out of range (1 to 600000)");
        /* serial: /dev/PATH, no .. */
        refused("serial:/etc/passwd", "'/etc/passwd' is not under /dev/ (serial:/dev/PATH)");
        refused("serial:../../x", "'../../x' is not an absolute path under /dev/");
        refused("serial:/dev/../etc/passwd", "'/dev/../etc/passwd' has a '..' component");
        refused("serial:/dev/./ttyACM0", "has a '.' component");
        refused("serial:/dev//ttyACM0", "'/dev//ttyACM0' has an empty path component");
        refused("serial:/dev/", "'/dev/' has an empty path component");
        refused("serial:/dev/tty\"x", "'\"' in '/dev/tty\"x' is not allowed in a device path");
        /* the scheme */
        refused("", "the connection string is empty");
        refused("udp", "'udp' has no scheme (SCHEME:ADDRESS");
        refused(":1337", "no scheme before ':'");
        refused("UDP:1.2.3.4:1", "scheme 'UDP' is not a transport name (lower-case letters and digits)");
        refused("a/b:1", "scheme 'a/b' is not a transport name");
        char long_conn[SMP_CONN_MAX + 8];
        memset(long_conn, 'a', sizeof(long_conn) - 1);
        long_conn[sizeof(long_conn) - 1] = 0;
        long_conn[3] = ':';
        refused(long_conn, "longer than 256 bytes");
}

static void test_no_transport(void) {
        struct smp_conn *c;
        char *why = NULL;

        ASSERT_EQ(smp_context_parse_conn(ctx, "nosuch:1.2.3.4:5", &c, &why), -ENOENT);
        ASSERT_TRUE(why && strstr(why, "no transport plugin for 'nosuch:' (smpgw-transport-nosuch.so is in none of: "));
        /* The build tree's plugin directory, since this test runs from it. */
        ASSERT_TRUE(strstr(why, SMPGW_BUILD_PLUGIN_DIR));
        free(why);
}

static void test_canonical(void) {
        struct smp_conn *c;

        c = canonical("udp:localhost:01337", "udp:127.0.0.1:1337");
        ASSERT_STREQ(smp_conn_get_scheme(c), "udp");
        ASSERT_STREQ(smp_conn_get_address(c), "127.0.0.1:1337");
        ASSERT_STREQ(smp_conn_get_host(c), "127.0.0.1");
        ASSERT_EQ(smp_conn_get_family(c), AF_INET);
        ASSERT_EQ(smp_conn_get_port(c), 1337);
        ASSERT_TRUE(smp_conn_get_path(c) == NULL && smp_conn_get_bdaddr(c) == NULL);
        ASSERT_TRUE(smp_conn_get_option(c, "mtu") == NULL);
        struct sockaddr_storage ss;
        socklen_t len;
        ASSERT_OK(smp_conn_get_sockaddr(c, &ss, &len));
        ASSERT_EQ(len, sizeof(struct sockaddr_in));
        ASSERT_EQ(ntohs(((struct sockaddr_in *) &ss)->sin_port), 1337);
        ASSERT_TRUE(smp_conn_get_transport(c) && streq(smp_conn_get_transport(c)->name, "udp"));
        smp_conn_unref(c);

        smp_conn_unref(canonical("udp:127.0.0.1:1337,mtu=0512", "udp:127.0.0.1:1337,mtu=512"));
        smp_conn_unref(canonical("udp:[0:0::1]:9", "udp:[::1]:9"));
        smp_conn_unref(canonical("udp:[::FFFF:127.0.0.1]:9", "udp:127.0.0.1:9"));
        smp_conn_unref(canonical("udp:[2001:DB8:0::1]:9,mtu=65527", "udp:[2001:db8::1]:9,mtu=65527"));
        /* coap's default port is written out: one device, one string. */
        smp_conn_unref(canonical("coap:127.0.0.1", "coap:127.0.0.1:5683"));
        smp_conn_unref(canonical("coap:[::1]", "coap:[::1]:5683"));
        smp_conn_unref(canonical("coap:localhost:5683,mtu=512", "coap:127.0.0.1:5683,mtu=512"));

        c = canonical("coap:[fe80::1%lo]:5683", "coap:[fe80::1%lo]:5683");
        ASSERT_STREQ(smp_conn_get_host(c), "fe80::1");
        ASSERT_STREQ(smp_conn_get_scope(c), "lo");
        ASSERT_EQ(smp_conn_get_family(c), AF_INET6);
        ASSERT_OK(smp_conn_get_sockaddr(c, &ss, &len));
        ASSERT_TRUE(((struct sockaddr_in6 *) &ss)->sin6_scope_id > 0);
        smp_conn_unref(c);
        c = canonical("coap:[fe80::1%nosuchif0]:5683", "coap:[fe80::1%nosuchif0]:5683");
        ASSERT_EQ(smp_conn_get_sockaddr(c, &ss, &len), -ENODEV);
        smp_conn_unref(c);

        c = canonical("serial:/dev/serial/by-id/usb-SEGGER_J-Link_000123-if00,baud=9600",
                      "serial:/dev/serial/by-id/usb-SEGGER_J-Link_000123-if00,baud=9600");
        ASSERT_STREQ(smp_conn_get_path(c), "/dev/serial/by-id/usb-SEGGER_J-Link_000123-if00");
        uint64_t baud;
        ASSERT_TRUE(smp_conn_get_option_uint(c, "baud", &baud));
        ASSERT_EQ(baud, 9600);
        ASSERT_EQ(smp_conn_get_sockaddr(c, &ss, &len), -EAFNOSUPPORT);
        smp_conn_unref(c);

        /* Options in the transport's order, numbers without zeros. */
        c = canonical("ble:c0:de:00:00:00:0a,max-connections=02,mode=notify,adapter=hci01",
                      "ble:C0:DE:00:00:00:0A,adapter=hci1,mode=notify,max-connections=2");
        ASSERT_STREQ(smp_conn_get_bdaddr(c), "C0:DE:00:00:00:0A");
        uint64_t v;
        ASSERT_TRUE(smp_conn_get_option_uint(c, "mode", &v));
        ASSERT_EQ(v, 1); /* "notify" is the second word */
        ASSERT_TRUE(smp_conn_get_option_uint(c, "adapter", &v));
        ASSERT_EQ(v, 1);
        ASSERT_STREQ(smp_conn_get_option(c, "adapter"), "hci1");
        ASSERT_TRUE(!smp_conn_get_option_uint(c, "connect-timeout", &v));
        ASSERT_TRUE(!smp_conn_get_option_uint(c, "nosuch", &v));
        smp_conn_unref(c);
}

/* ---- a transport of the test's own, with every kind of option ---- */

static int t_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                  const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        return -ENOSYS;
}
static void t_close(struct smp_link *l) {
}
static int t_send(struct smp_link *l, const uint8_t *frame, size_t len) {
        return -ENOSYS;
}
static void t_info(struct smp_link *l, struct smp_link_info *ret) {
}
static void t_stats(struct smp_link *l, struct smp_link_stats *ret) {
}
static unsigned instances;
static int t_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        ASSERT_EQ(host->abi_version, SMP_TRANSPORT_ABI_VERSION);
        ASSERT_TRUE(host->struct_size >= sizeof(struct smp_host));
        smp_host_log(host, SMP_LOG_DEBUG, "instance %u", instances);
        instances++;
        *ret = (struct smp_transport_instance *) host;
        return 0;
}
static void t_instance_free(struct smp_transport_instance *i) {
        instances--;
}
static int t_check(const struct smp_conn *conn, char **ret_reason) {
        if (smp_conn_get_port(conn) == 7)
                return asprintf(ret_reason, "port 7 is for echo") < 0 ? -ENOMEM : -EINVAL;
        return 0;
}

static const uint64_t speeds[] = { 10, 100, 1000 };
static const char *const colours[] = { "red", "green", NULL };
static const struct smp_conn_option t_options[] = {
        { .name = "speed", .type = SMP_CONN_OPTION_UINT, .min = 10, .max = 1000, .allowed = speeds, .n_allowed = 3 },
        { .name = "colour", .type = SMP_CONN_OPTION_WORD, .words = colours },
        { .name = "if", .type = SMP_CONN_OPTION_INDEXED, .prefix = "eth", .min = 0, .max = 3 },
};
static const struct smp_conn_syntax t_syntax = {
        .address = SMP_CONN_ADDRESS_INET,
        .default_port = 99,
        .options = t_options,
        .n_options = ELEMENTSOF(t_options),
        .check = t_check,
};
static const struct smp_transport t_transport = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "test0",
        .conn_syntax = &t_syntax,
        .instance_new = t_instance_new,
        .instance_free = t_instance_free,
        .open = t_open,
        .close = t_close,
        .send = t_send,
        .get_info = t_info,
        .get_stats = t_stats,
};

static unsigned log_lines;
static void on_log(int level, const char *source, const char *message, void *userdata) {
        ASSERT_EQ(level, SMP_LOG_DEBUG);
        ASSERT_STREQ(source, "test0");
        ASSERT_STREQ(message, "instance 0");
        log_lines++;
}

static void test_declared_options(void) {
        smp_context_set_log(ctx, SMP_LOG_DEBUG, on_log, NULL);
        ASSERT_OK(smp_context_add_transport(ctx, &t_transport));
        ASSERT_EQ(instances, 1);
        ASSERT_EQ(log_lines, 1);

        smp_conn_unref(canonical("test0:10.0.0.1,if=eth03,colour=green,speed=0100",
                                 "test0:10.0.0.1:99,speed=100,colour=green,if=eth3"));
        refused("test0:10.0.0.1,speed=50", "speed=50 is not one of 10 100 1000");
        refused("test0:10.0.0.1,speed=2000", "speed=2000 is out of range (10 to 1000)");
        refused("test0:10.0.0.1,colour=blue", "colour='blue' is not one of red, green");
        refused("test0:10.0.0.1,if=eth4", "if=eth4: eth4 is out of range (eth0 to eth3)");
        refused("test0:10.0.0.1,if=wlan0", "if='wlan0' is not ethN (such as eth0)");
        refused("test0:10.0.0.1,if=eth", "if='eth' is not ethN");
        refused("test0:10.0.0.1:7", "port 7 is for echo");
        refused("test0:10.0.0.1,size=1", "unknown option 'size' (test0 takes speed, colour, if)");
}

static void test_teardown(void) {
        ctx = smp_context_unref(ctx);
        ASSERT_EQ(instances, 0); /* the transport's state went with the context */
}

TEST_MAIN(TEST(test_setup), TEST(test_refused), TEST(test_no_transport), TEST(test_canonical),
          TEST(test_declared_options), TEST(test_teardown))
