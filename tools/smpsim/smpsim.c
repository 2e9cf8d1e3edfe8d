/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpsim: a fleet of simulated Zephyr devices running the SMP server with
 * MCUboot, over UDP, CoAP and serial ptys, with link emulation and faults.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "sim-ble.h"
#include "sim-coap.h"
#include "sim-control.h"
#include "sim-mesh.h"
#include "sim-serial.h"
#include "sim-udp.h"
#include "sim.h"
#include "smpgw/smp-parse.h"
#include "util.h"

/* Largest image file --image takes: well above any MCU slot. */
#define IMAGE_FILE_MAX (16u * 1024u * 1024u)
#define FAULTS_MAX 64
#define OVERRIDES_MAX 256

struct override {
        long dev;
        char *value;
};

struct options {
        const char *udp, *coap, *serial_dir, *state_dir, *image, *control;
        bool coap_multicast;
        const char *coap_group;    /* NULL: the default group */
        struct sim_ble_config ble;
        const char *ble_faults[FAULTS_MAX];
        unsigned count;
        struct sim_device_params params;
        struct sim_link_params link;
        const char *faults[FAULTS_MAX];
        unsigned n_faults;
        struct override images[OVERRIDES_MAX], versions[OVERRIDES_MAX], boards[OVERRIDES_MAX];
        unsigned n_images, n_versions, n_boards;
        uint32_t no_os_info[OVERRIDES_MAX]; /* --no-os-info=N */
        unsigned n_no_os_info;
        uint64_t seed;
        int verbosity;
        /* Bluetooth Mesh Distributors */
        bool mesh_all;                        /* --mesh-distributor without a device */
        long mesh_devs[OVERRIDES_MAX];
        unsigned n_mesh_devs;
        bool mesh_option;                     /* some other --mesh-* was given */
        struct sim_mesh_config mesh;
        const char *mesh_faults[FAULTS_MAX];
        unsigned n_mesh_faults;
        const char *mesh_versions[OVERRIDES_MAX];
        unsigned n_mesh_versions;
};

void sim_log(struct sim *sim, int level, const char *fmt, ...) {
        if (level > sim->verbosity)
                return;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        fprintf(stderr, "smpsim[%ld.%03ld] ", (long) ts.tv_sec, ts.tv_nsec / 1000000);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

uint64_t sim_now_us(struct sim *sim) {
        uint64_t now;
        if (sd_event_now(sim->event, CLOCK_MONOTONIC, &now) < 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
        }
        return now;
}

sd_event *sim_event_loop(struct sim *sim) {
        return sim->event;
}

struct sim_device *sim_device_by_index(struct sim *sim, long index) {
        if (index < 0 || (unsigned long) index >= sim->n_devices)
                return NULL;
        return &sim->devices[index];
}

void sim_transport_send(struct sim_device *d, const struct sim_route *route, const uint8_t *pkt, size_t len) {
        switch (route->kind) {
        case SIM_TRANSPORT_UDP:
                sim_udp_send(d, route, pkt, len);
                break;
        case SIM_TRANSPORT_SERIAL:
                sim_serial_send(d, pkt, len);
                break;
        case SIM_TRANSPORT_COAP:
                sim_coap_send(d, route, pkt, len);
                break;
        case SIM_TRANSPORT_BLE:
                sim_ble_send(d, route, pkt, len);
                break;
        }
}

void sim_transport_upload_reached(struct sim_device *d, const struct sim_route *route, uint64_t off) {
        if (route->kind == SIM_TRANSPORT_BLE)
                sim_ble_upload_reached(d, route, off);
}

void sim_transport_device_down(struct sim_device *d) {
        sim_ble_device_down(d);
        /* not a transport, but the same moment: the device's RAM is gone */
        sim_mesh_device_down(d->mesh);
}

void sim_transport_device_up(struct sim_device *d) {
        sim_ble_device_up(d);
}

static void help(void) {
        printf("Usage: smpsim [OPTIONS]\n"
               "A fleet of simulated SMP (mcumgr) devices with MCUboot slots.\n\n"
               "Endpoints (at least one):\n"
               "  --udp ADDR:PORT         raw SMP over UDP; device i listens on PORT+i\n"
               "  --coap ADDR:PORT        SMP over CoAP (newtmgr OIC, PUT /omgr); device i on PORT+i\n"
               "  --coap-multicast[=GROUP]  every CoAP device answers GET /.well-known/core sent to\n"
               "                          GROUP (ADDR[:PORT]; default 224.0.1.187:5683, ff05::fd for IPv6)\n"
               "  --serial DIR            one pty per device, symlinked as DIR/smpsim-NNNN\n"
               "  --ble BUS               a fake org.bluez (BlueZ 5.66 D-Bus API) on BUS: system, session\n"
               "                          or a D-Bus address; device i is dev_C0_DE_00_00_HH_LL\n"
               "BLE (with --ble):\n"
               "  --ble-adapters N        adapters hci0..hci(N-1) (1..%u, default 1)\n"
               "  --ble-mtu N             ATT MTU after the exchange (23..517, default 247)\n"
               "  --ble-connect-ms N      Connect() to Connected (default 30)\n"
               "  --ble-resolve-ms N      Connected to ServicesResolved (default 100)\n"
               "  --ble-supervision-ms N  a reset device's link is lost after this (default 420)\n"
               "  --ble-connect-timeout-ms N  connecting to a silent device fails after this (default 5000)\n"
               "  --ble-temporary-ms N    unconnected devices vanish this long after discovery (default 30000)\n"
               "  --ble-conn-interval-ms N  pace notifications per connection event (default 0: off)\n"
               "  --ble-notify-per-event N  notifications per connection event (default 4)\n"
               "  --ble-max-links N       connected devices each adapter's controller holds; a Connect()\n"
               "                          beyond them is refused (1..%u or unlimited, default unlimited)\n"
               "  --ble-fault [dev=N:]connect-fail[=N] | resolve-late=MS | resolved-early | reply-at-resolved | unseen |\n"
               "          disconnect-at=BYTES | acquire-write=notpermitted|failed |\n"
               "          acquire-notify=notpermitted|failed|stuck|silent\n"
               "Devices:\n"
               "  --count N               number of devices (1..%u, default 1)\n"
               "  --smp-version 1|2       2: current Zephyr (default); 1: firmware that knows only v1\n"
               "  --image FILE            MCUboot image every device runs (default: one smpsim builds,\n"
               "                          version 1.0.0)\n"
               "  --dev-image N:FILE      image device N runs\n"
               "  --dev-smp-version N:V   SMP version of device N\n"
               "  --board NAME            hardware platform in OS info answers (CONFIG_BOARD,\n"
               "                          default " SIM_BOARD_DEFAULT ")\n"
               "  --dev-board N:NAME      board of device N\n"
               "  --no-os-info[=N]        device N (repeatable), or every device, has no OS info\n"
               "                          command: NOT_SUPPORTED, as Mynewt or Zephyr without it\n"
               "  --state-dir DIR         keep slots and trailers in DIR/dev-NNNN, resume from them\n"
               "  --slot-size BYTES       size of each slot (default 524288)\n"
               "  --buf-size N            SMP buffer size advertised and enforced (default 2048)\n"
               "  --buf-count N           SMP buffer count advertised and enforced (default 4)\n"
               "  --swap-ms N             time MCUboot takes to swap (default 500)\n"
               "  --boot-ms N             time any reboot takes (default 100)\n"
               "  --reset-ms N            delay from reset answer to reboot (default 250)\n"
               "  --flash-rate B          flash write bytes/s (default 0: instant)\n"
               "  --erase-rate B          slot erase bytes/s at an upload's first chunk (default 0)\n"
               "  --frugal                omit false flags and splitStatus from image lists\n"
               "  --no-params             no MCUmgr params command (NOT_SUPPORTED)\n"
               "  --no-reassembly         BLE: each write is one whole SMP packet (Zephyr's default)\n"
               "  --two-images            a second updatable image (\"image\": 1), held in memory\n"
               "  --write-align N         answer chunks but the last at a multiple of N (MCUboot serial recovery)\n"
               "  --no-image-check        no \"match\" in the last upload answer\n"
               "Link (each direction, per device; B takes k/M/G suffixes):\n"
               "  --bandwidth B           payload bytes/s (default 0: unlimited)\n"
               "  --latency MS            one-way latency (default 0)\n"
               "  --jitter MS             extra random latency 0..MS (default 0)\n"
               "  --loss P                packet loss probability (default 0)\n"
               "  --mtu N                 largest packet; larger ones are lost (default 0: none)\n"
               "Faults (repeatable; prefix dev=N: for one device):\n"
               "  --fault revert | reject | reset-busy | drop-at=BYTES[,MS] | silent-at=BYTES |\n"
               "          reboot-at=BYTES[,keep] | lose-answer-at=BYTES | drop=P | silent=P | slow=MS |\n"
               "          dup=P | corrupt=P\n"
               "Bluetooth Mesh Distributor (SMP shell management, doc/smpsim.md):\n"
               "  --mesh-distributor[=N]  device N (repeatable), or every device, is also a Distributor\n"
               "  --mesh-targets N        target nodes behind each Distributor (0..%u, default 4)\n"
               "  --mesh-addr-base ADDR   their unicast addresses from ADDR (default 0x0100)\n"
               "  --mesh-target-version [dev=N:][target=ADDR:]VERSION  firmware they run (default 1.0.0)\n"
               "  --mesh-zephyr 3.4|later shell output of Zephyr v3.4 or of v3.5 and later (default)\n"
               "  --mesh-legacy-rc        shell answers carry \"rc\" instead of \"ret\"\n"
               "  --mesh-rate B           BLOB transfer bytes/s (default 300)\n"
               "  --mesh-time-scale F     simulated seconds per second (default 1)\n"
               "  --mesh-shell-buf N      CONFIG_SHELL_CMD_BUFF_SIZE (default 256)\n"
               "  --mesh-shell-out N      CONFIG_SHELL_BACKEND_DUMMY_BUF_SIZE (default 1000)\n"
               "  --mesh-targets-max N    receivers a distribution takes (1..%u, default 8)\n"
               "  --mesh-slot-cnt N       DFU slots (1..%u, default 1)\n"
               "  --mesh-fault [dev=N:]target=ADDR|all:lost-at=PCT | verify-fail | apply-fail |\n"
               "          old-firmware | unprovisioned\n"
               "  --mesh-metadata-check   targets check the firmware metadata as NCS's target sample\n"
               "  --mesh-comp-hash U32    the targets' composition data hash (default 0)\n"
               "Other:\n"
               "  --control PATH          control socket (see doc/smpsim.md)\n"
               "  --seed N                seed for loss, jitter and fault randomness\n"
               "  -v, --verbose           more logging on stderr (repeat)\n"
               "  -h, --help\n\n"
               "Prints \"ready\" on standard output once every endpoint listens.\n",
               SIM_BLE_ADAPTERS_MAX, SIM_BLE_MAX_LINKS_MAX, SIM_DEVICES_MAX, SIM_MESH_NODES_MAX, SIM_MESH_RECEIVERS_MAX,
               SIM_MESH_SLOTS_MAX);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t v;
        if (smp_parse_uint(s, min, max, &v) < 0)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* CONFIG_BOARD: one word (os_mgmt puts fields between single spaces). */
static bool board_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n >= SIM_BOARD_SIZE)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= ' ' || s[i] > '~')
                        return false;
        return true;
}

static int parse_override(const char *arg, struct override *o) {
        const char *colon = strchr(arg, ':');
        uint32_t dev;
        char num[16];
        if (!colon || (size_t) (colon - arg) >= sizeof(num))
                return -EINVAL;
        memcpy(num, arg, (size_t) (colon - arg));
        num[colon - arg] = 0;
        if (parse_u32(num, 0, SIM_DEVICES_MAX - 1, &dev) < 0 || !colon[1])
                return -EINVAL;
        o->dev = dev;
        o->value = (char *) colon + 1;
        return 0;
}

static int parse_options(int argc, char **argv, struct options *o) {
        enum {
                OPT_UDP = 0x100,
                OPT_COAP,
                OPT_SERIAL,
                OPT_COUNT,
                OPT_SMP_VERSION,
                OPT_IMAGE,
                OPT_DEV_IMAGE,
                OPT_DEV_SMP_VERSION,
                OPT_STATE_DIR,
                OPT_SLOT_SIZE,
                OPT_BUF_SIZE,
                OPT_BUF_COUNT,
                OPT_SWAP_MS,
                OPT_BOOT_MS,
                OPT_RESET_MS,
                OPT_FLASH_RATE,
                OPT_ERASE_RATE,
                OPT_FRUGAL,
                OPT_NO_PARAMS,
                OPT_NO_REASSEMBLY,
                OPT_TWO_IMAGES,
                OPT_WRITE_ALIGN,
                OPT_NO_IMAGE_CHECK,
                OPT_BANDWIDTH,
                OPT_LATENCY,
                OPT_JITTER,
                OPT_LOSS,
                OPT_MTU,
                OPT_FAULT,
                OPT_CONTROL,
                OPT_SEED,
                OPT_BLE,
                OPT_BLE_ADAPTERS,
                OPT_BLE_MTU,
                OPT_BLE_CONNECT_MS,
                OPT_BLE_RESOLVE_MS,
                OPT_BLE_SUPERVISION_MS,
                OPT_BLE_CONNECT_TIMEOUT_MS,
                OPT_BLE_TEMPORARY_MS,
                OPT_BLE_CONN_INTERVAL_MS,
                OPT_BLE_NOTIFY_PER_EVENT,
                OPT_BLE_FAULT,
                OPT_COAP_MULTICAST,
                OPT_BLE_MAX_LINKS,
                OPT_MESH_DISTRIBUTOR,
                OPT_MESH_TARGETS,
                OPT_MESH_ADDR_BASE,
                OPT_MESH_TARGET_VERSION,
                OPT_MESH_ZEPHYR,
                OPT_MESH_LEGACY_RC,
                OPT_MESH_RATE,
                OPT_MESH_TIME_SCALE,
                OPT_MESH_SHELL_BUF,
                OPT_MESH_SHELL_OUT,
                OPT_MESH_TARGETS_MAX,
                OPT_MESH_SLOT_CNT,
                OPT_MESH_FAULT,
                OPT_MESH_METADATA_CHECK,
                OPT_MESH_COMP_HASH,
                OPT_BOARD,
                OPT_DEV_BOARD,
                OPT_NO_OS_INFO,
        };
        static const struct option longopts[] = {
                { "udp", required_argument, NULL, OPT_UDP },
                { "coap", required_argument, NULL, OPT_COAP },
                { "coap-multicast", optional_argument, NULL, OPT_COAP_MULTICAST },
                { "serial", required_argument, NULL, OPT_SERIAL },
                { "count", required_argument, NULL, OPT_COUNT },
                { "smp-version", required_argument, NULL, OPT_SMP_VERSION },
                { "image", required_argument, NULL, OPT_IMAGE },
                { "dev-image", required_argument, NULL, OPT_DEV_IMAGE },
                { "dev-smp-version", required_argument, NULL, OPT_DEV_SMP_VERSION },
                { "board", required_argument, NULL, OPT_BOARD },
                { "dev-board", required_argument, NULL, OPT_DEV_BOARD },
                { "no-os-info", optional_argument, NULL, OPT_NO_OS_INFO },
                { "state-dir", required_argument, NULL, OPT_STATE_DIR },
                { "slot-size", required_argument, NULL, OPT_SLOT_SIZE },
                { "buf-size", required_argument, NULL, OPT_BUF_SIZE },
                { "buf-count", required_argument, NULL, OPT_BUF_COUNT },
                { "swap-ms", required_argument, NULL, OPT_SWAP_MS },
                { "boot-ms", required_argument, NULL, OPT_BOOT_MS },
                { "reset-ms", required_argument, NULL, OPT_RESET_MS },
                { "flash-rate", required_argument, NULL, OPT_FLASH_RATE },
                { "erase-rate", required_argument, NULL, OPT_ERASE_RATE },
                { "frugal", no_argument, NULL, OPT_FRUGAL },
                { "no-params", no_argument, NULL, OPT_NO_PARAMS },
                { "no-reassembly", no_argument, NULL, OPT_NO_REASSEMBLY },
                { "two-images", no_argument, NULL, OPT_TWO_IMAGES },
                { "write-align", required_argument, NULL, OPT_WRITE_ALIGN },
                { "no-image-check", no_argument, NULL, OPT_NO_IMAGE_CHECK },
                { "bandwidth", required_argument, NULL, OPT_BANDWIDTH },
                { "latency", required_argument, NULL, OPT_LATENCY },
                { "jitter", required_argument, NULL, OPT_JITTER },
                { "loss", required_argument, NULL, OPT_LOSS },
                { "mtu", required_argument, NULL, OPT_MTU },
                { "fault", required_argument, NULL, OPT_FAULT },
                { "control", required_argument, NULL, OPT_CONTROL },
                { "seed", required_argument, NULL, OPT_SEED },
                { "ble", required_argument, NULL, OPT_BLE },
                { "ble-adapters", required_argument, NULL, OPT_BLE_ADAPTERS },
                { "ble-mtu", required_argument, NULL, OPT_BLE_MTU },
                { "ble-connect-ms", required_argument, NULL, OPT_BLE_CONNECT_MS },
                { "ble-resolve-ms", required_argument, NULL, OPT_BLE_RESOLVE_MS },
                { "ble-supervision-ms", required_argument, NULL, OPT_BLE_SUPERVISION_MS },
                { "ble-connect-timeout-ms", required_argument, NULL, OPT_BLE_CONNECT_TIMEOUT_MS },
                { "ble-temporary-ms", required_argument, NULL, OPT_BLE_TEMPORARY_MS },
                { "ble-conn-interval-ms", required_argument, NULL, OPT_BLE_CONN_INTERVAL_MS },
                { "ble-notify-per-event", required_argument, NULL, OPT_BLE_NOTIFY_PER_EVENT },
                { "ble-fault", required_argument, NULL, OPT_BLE_FAULT },
                { "ble-max-links", required_argument, NULL, OPT_BLE_MAX_LINKS },
                { "mesh-distributor", optional_argument, NULL, OPT_MESH_DISTRIBUTOR },
                { "mesh-targets", required_argument, NULL, OPT_MESH_TARGETS },
                { "mesh-addr-base", required_argument, NULL, OPT_MESH_ADDR_BASE },
                { "mesh-target-version", required_argument, NULL, OPT_MESH_TARGET_VERSION },
                { "mesh-zephyr", required_argument, NULL, OPT_MESH_ZEPHYR },
                { "mesh-legacy-rc", no_argument, NULL, OPT_MESH_LEGACY_RC },
                { "mesh-rate", required_argument, NULL, OPT_MESH_RATE },
                { "mesh-time-scale", required_argument, NULL, OPT_MESH_TIME_SCALE },
                { "mesh-shell-buf", required_argument, NULL, OPT_MESH_SHELL_BUF },
                { "mesh-shell-out", required_argument, NULL, OPT_MESH_SHELL_OUT },
                { "mesh-targets-max", required_argument, NULL, OPT_MESH_TARGETS_MAX },
                { "mesh-slot-cnt", required_argument, NULL, OPT_MESH_SLOT_CNT },
                { "mesh-fault", required_argument, NULL, OPT_MESH_FAULT },
                { "mesh-metadata-check", no_argument, NULL, OPT_MESH_METADATA_CHECK },
                { "mesh-comp-hash", required_argument, NULL, OPT_MESH_COMP_HASH },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        *o = (struct options) {
                .count = 1,
                .params = {
                        .smp_version = 2,
                        .buf_size = 2048,
                        .buf_count = 4,
                        .swap_ms = 500,
                        .boot_ms = 100,
                        .reset_delay_ms = 250,
                        .slot_size = 512 * 1024,
                        .image_check = true,
                },
                .seed = 1,
                .ble = {
                        .adapters = 1,
                        .mtu = 247,
                        .connect_ms = 30,
                        .resolve_ms = 100,
                        .supervision_ms = 420,
                        .connect_timeout_ms = 5000,
                        .temporary_ms = 30000,
                        .notify_per_event = 4,
                },
        };
        uint32_t v;

        sim_mesh_config_init(&o->mesh);
        while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) >= 0) {
                const char *err = NULL;
                struct sim_device scratch = { .params = o->params, .link = o->link };
                switch (c) {
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                case 'v':
                        o->verbosity++;
                        break;
                case OPT_UDP:
                        o->udp = optarg;
                        break;
                case OPT_COAP:
                        o->coap = optarg;
                        break;
                case OPT_COAP_MULTICAST:
                        o->coap_multicast = true;
                        o->coap_group = optarg;
                        break;
                case OPT_SERIAL:
                        o->serial_dir = optarg;
                        break;
                case OPT_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case OPT_IMAGE:
                        o->image = optarg;
                        break;
                case OPT_CONTROL:
                        o->control = optarg;
                        break;
                case OPT_BLE:
                        o->ble.bus = optarg;
                        break;
                case OPT_BLE_ADAPTERS:
                        if (parse_u32(optarg, 1, SIM_BLE_ADAPTERS_MAX, &o->ble.adapters) < 0)
                                err = "--ble-adapters takes 1..16";
                        break;
                case OPT_BLE_MTU:
                        if (parse_u32(optarg, 23, 517, &v) < 0)
                                err = "--ble-mtu takes 23..517";
                        o->ble.mtu = (uint16_t) v;
                        break;
                case OPT_BLE_CONNECT_MS:
                case OPT_BLE_RESOLVE_MS:
                case OPT_BLE_SUPERVISION_MS:
                case OPT_BLE_CONNECT_TIMEOUT_MS:
                case OPT_BLE_TEMPORARY_MS:
                case OPT_BLE_CONN_INTERVAL_MS: {
                        uint32_t *target = c == OPT_BLE_CONNECT_MS         ? &o->ble.connect_ms :
                                           c == OPT_BLE_RESOLVE_MS         ? &o->ble.resolve_ms :
                                           c == OPT_BLE_SUPERVISION_MS     ? &o->ble.supervision_ms :
                                           c == OPT_BLE_CONNECT_TIMEOUT_MS ? &o->ble.connect_timeout_ms :
                                           c == OPT_BLE_TEMPORARY_MS       ? &o->ble.temporary_ms :
                                                                             &o->ble.conn_interval_ms;
                        if (parse_u32(optarg, 0, 3600000, target) < 0)
                                err = "expected milliseconds (0..3600000)";
                        break;
                }
                case OPT_BLE_NOTIFY_PER_EVENT:
                        if (parse_u32(optarg, 1, 1000, &o->ble.notify_per_event) < 0)
                                err = "--ble-notify-per-event takes 1..1000";
                        break;
                case OPT_BLE_MAX_LINKS:
                        if (sim_ble_max_links_parse(optarg, &o->ble.max_links) < 0)
                                err = "--ble-max-links takes 1..10000 or unlimited";
                        break;
                case OPT_BLE_FAULT: {
                        long dev;
                        if (o->ble.n_faults >= FAULTS_MAX)
                                err = "too many --ble-fault options";
                        else if (sim_ble_fault_parse(optarg, &dev, &err) == 0)
                                o->ble_faults[o->ble.n_faults++] = optarg;
                        break;
                }
                case OPT_MESH_DISTRIBUTOR: {
                        const char *dev = optarg && strncmp(optarg, "dev=", 4) == 0 ? optarg + 4 : optarg;
                        if (!dev)
                                o->mesh_all = true;
                        else if (o->n_mesh_devs >= OVERRIDES_MAX || parse_u32(dev, 0, SIM_DEVICES_MAX - 1, &v) < 0)
                                err = "--mesh-distributor takes no value, N or dev=N";
                        else
                                o->mesh_devs[o->n_mesh_devs++] = v;
                        break;
                }
                case OPT_MESH_TARGETS:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 0, SIM_MESH_NODES_MAX, &o->mesh.n_targets) < 0)
                                err = "--mesh-targets takes 0..4096";
                        break;
                case OPT_MESH_ADDR_BASE: {
                        char *end;
                        o->mesh_option = true;
                        errno = 0;
                        unsigned long a = strtoul(optarg, &end, 0);
                        if (errno || *end || !*optarg || a < 1 || a > 0x7fff)
                                err = "--mesh-addr-base takes a unicast address (1..0x7fff)";
                        o->mesh.addr_base = (uint16_t) a;
                        break;
                }
                case OPT_MESH_TARGET_VERSION: {
                        long dev;
                        o->mesh_option = true;
                        if (o->n_mesh_versions >= OVERRIDES_MAX)
                                err = "too many --mesh-target-version options";
                        else if (sim_mesh_version_parse(optarg, &dev, &err) == 0)
                                o->mesh_versions[o->n_mesh_versions++] = optarg;
                        break;
                }
                case OPT_MESH_ZEPHYR:
                        o->mesh_option = true;
                        if (streq(optarg, "3.4"))
                                o->mesh.zephyr = SIM_MESH_ZEPHYR_3_4;
                        else if (streq(optarg, "later"))
                                o->mesh.zephyr = SIM_MESH_ZEPHYR_LATER;
                        else
                                err = "--mesh-zephyr takes 3.4 or later";
                        break;
                case OPT_MESH_LEGACY_RC:
                        o->mesh_option = true;
                        o->mesh.legacy_rc = true;
                        break;
                case OPT_MESH_RATE: {
                        uint64_t rate;
                        o->mesh_option = true;
                        if (sim_parse_rate(optarg, &rate) < 0 || rate == 0)
                                err = "--mesh-rate takes bytes per second (k/M/G suffixes allowed), not 0";
                        o->mesh.rate = rate;
                        break;
                }
                case OPT_MESH_TIME_SCALE: {
                        char *end;
                        o->mesh_option = true;
                        double f = strtod(optarg, &end);
                        if (!*optarg || *end || !(f > 0) || f > 1e6)
                                err = "--mesh-time-scale takes a positive number up to 1000000";
                        o->mesh.time_scale = f;
                        break;
                }
                case OPT_MESH_SHELL_BUF:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 16, 65535, &o->mesh.shell_buf) < 0)
                                err = "--mesh-shell-buf takes 16..65535";
                        break;
                case OPT_MESH_SHELL_OUT:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 16, 65535, &o->mesh.shell_out) < 0)
                                err = "--mesh-shell-out takes 16..65535";
                        break;
                case OPT_MESH_TARGETS_MAX:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 1, SIM_MESH_RECEIVERS_MAX, &o->mesh.targets_max) < 0)
                                err = "--mesh-targets-max takes 1..1024";
                        break;
                case OPT_MESH_SLOT_CNT:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 1, SIM_MESH_SLOTS_MAX, &o->mesh.slot_cnt) < 0)
                                err = "--mesh-slot-cnt takes 1..8";
                        break;
                case OPT_MESH_METADATA_CHECK:
                        o->mesh_option = true;
                        o->mesh.metadata_check = true;
                        break;
                case OPT_MESH_COMP_HASH:
                        o->mesh_option = true;
                        if (parse_u32(optarg, 0, UINT32_MAX, &o->mesh.comp_hash) < 0)
                                err = "--mesh-comp-hash takes a decimal number 0..4294967295";
                        break;
                case OPT_MESH_FAULT: {
                        long dev;
                        o->mesh_option = true;
                        if (o->n_mesh_faults >= FAULTS_MAX)
                                err = "too many --mesh-fault options";
                        else if (sim_mesh_fault_parse(optarg, &dev, &err) == 0)
                                o->mesh_faults[o->n_mesh_faults++] = optarg;
                        break;
                }
                case OPT_COUNT:
                        if (parse_u32(optarg, 1, SIM_DEVICES_MAX, &o->count) < 0)
                                err = "--count takes 1..10000";
                        break;
                case OPT_SLOT_SIZE:
                        if (parse_u32(optarg, 1024, 256u * 1024 * 1024, &o->params.slot_size) < 0)
                                err = "--slot-size takes 1024..268435456";
                        break;
                case OPT_RESET_MS:
                        if (parse_u32(optarg, 0, 600000, &o->params.reset_delay_ms) < 0)
                                err = "--reset-ms takes 0..600000";
                        break;
                case OPT_SEED: {
                        char *end;
                        o->seed = strtoull(optarg, &end, 0);
                        if (*end || !*optarg)
                                err = "--seed takes a number";
                        break;
                }
                case OPT_FRUGAL:
                        o->params.frugal_list = true;
                        break;
                case OPT_NO_PARAMS:
                        o->params.no_params = true;
                        break;
                case OPT_NO_REASSEMBLY:
                        o->params.no_reassembly = true;
                        break;
                case OPT_TWO_IMAGES:
                        o->params.two_images = true;
                        break;
                case OPT_WRITE_ALIGN:
                        if (parse_u32(optarg, 1, 4096, &o->params.write_align) < 0)
                                err = "--write-align takes 1..4096";
                        break;
                case OPT_NO_IMAGE_CHECK:
                        o->params.image_check = false;
                        break;
                case OPT_DEV_IMAGE:
                        if (o->n_images >= OVERRIDES_MAX || parse_override(optarg, &o->images[o->n_images++]) < 0)
                                err = "--dev-image takes N:FILE";
                        break;
                case OPT_DEV_SMP_VERSION:
                        if (o->n_versions >= OVERRIDES_MAX || parse_override(optarg, &o->versions[o->n_versions++]) < 0 ||
                            (!streq(o->versions[o->n_versions - 1].value, "1") &&
                             !streq(o->versions[o->n_versions - 1].value, "2")))
                                err = "--dev-smp-version takes N:1 or N:2";
                        break;
                case OPT_BOARD:
                        if (!board_valid(optarg))
                                err = "--board takes a name of 1..64 printable characters without spaces";
                        else
                                snprintf(o->params.board, sizeof(o->params.board), "%s", optarg);
                        break;
                case OPT_DEV_BOARD:
                        if (o->n_boards >= OVERRIDES_MAX || parse_override(optarg, &o->boards[o->n_boards++]) < 0 ||
                            !board_valid(o->boards[o->n_boards - 1].value))
                                err = "--dev-board takes N:NAME (1..64 printable characters without spaces)";
                        break;
                case OPT_NO_OS_INFO:
                        if (!optarg)
                                o->params.no_os_info = true;
                        else if (o->n_no_os_info >= OVERRIDES_MAX ||
                                 parse_u32(optarg, 0, SIM_DEVICES_MAX - 1, &o->no_os_info[o->n_no_os_info++]) < 0)
                                err = "--no-os-info takes a device index";
                        break;
                case OPT_FAULT: {
                        long dev;
                        if (o->n_faults >= FAULTS_MAX)
                                err = "too many --fault options";
                        else if (sim_fault_parse(optarg, &dev, &err) == 0)
                                o->faults[o->n_faults++] = optarg;
                        break;
                }
                case OPT_SMP_VERSION:
                case OPT_BANDWIDTH:
                case OPT_LATENCY:
                case OPT_JITTER:
                case OPT_LOSS:
                case OPT_MTU:
                case OPT_BUF_SIZE:
                case OPT_BUF_COUNT:
                case OPT_SWAP_MS:
                case OPT_BOOT_MS:
                case OPT_FLASH_RATE:
                case OPT_ERASE_RATE: {
                        /* the control socket's setter parses these */
                        const char *key = longopts[0].name;
                        for (const struct option *lo = longopts; lo->name; lo++)
                                if (lo->val == c)
                                        key = lo->name;
                        if (sim_device_set(&scratch, key, optarg, &err) == 0) {
                                o->params = scratch.params;
                                o->link = scratch.link;
                        }
                        break;
                }
                default:
                        return -EINVAL;
                }
                if (err) {
                        fprintf(stderr, "smpsim: %s: %s\n", optarg ? optarg : "", err);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "smpsim: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        o->ble.faults = o->ble_faults;
        if (!o->udp && !o->coap && !o->serial_dir && !o->ble.bus) {
                fprintf(stderr, "smpsim: give at least one of --udp, --coap, --serial, --ble\n");
                return -EINVAL;
        }
        if (o->coap_multicast && !o->coap) {
                fprintf(stderr, "smpsim: --coap-multicast needs --coap\n");
                return -EINVAL;
        }
        if (o->mesh_option && !o->mesh_all && o->n_mesh_devs == 0) {
                fprintf(stderr, "smpsim: --mesh-* options need --mesh-distributor\n");
                return -EINVAL;
        }
        for (unsigned k = 0; k < o->n_mesh_devs; k++)
                if ((unsigned long) o->mesh_devs[k] >= o->count) {
                        fprintf(stderr, "smpsim: --mesh-distributor=%ld: there are %u devices\n", o->mesh_devs[k],
                                o->count);
                        return -EINVAL;
                }
        return 0;
}

/* Makes the devices chosen by --mesh-distributor Distributors, with the
 * --mesh-target-version and --mesh-fault settings meant for them. */
static int mesh_setup(struct sim *sim, const struct options *o) {
        const char *err;
        long dev;
        int r;

        for (unsigned i = 0; i < sim->n_devices; i++) {
                bool chosen = o->mesh_all;
                for (unsigned k = 0; k < o->n_mesh_devs; k++)
                        chosen |= o->mesh_devs[k] == (long) i;
                if (!chosen)
                        continue;
                r = sim_mesh_new(&sim->devices[i], &o->mesh, &sim->devices[i].mesh);
                if (r < 0) {
                        fprintf(stderr, "smpsim: device %u: Distributor: %s\n", i,
                                r == -EINVAL ? "the targets' addresses run past 0x7fff" : strerror(-r));
                        return r;
                }
        }
        const char *const *lists[] = { o->mesh_versions, o->mesh_faults };
        const unsigned counts[] = { o->n_mesh_versions, o->n_mesh_faults };
        for (unsigned l = 0; l < 2; l++)
                for (unsigned k = 0; k < counts[l]; k++) {
                        const char *spec = lists[l][k];
                        if (l == 0)
                                (void) sim_mesh_version_parse(spec, &dev, &err);
                        else
                                (void) sim_mesh_fault_parse(spec, &dev, &err);
                        if (dev >= 0 && (!sim_device_by_index(sim, dev) || !sim_device_by_index(sim, dev)->mesh)) {
                                fprintf(stderr, "smpsim: %s: device %ld is not a Distributor\n", spec, dev);
                                return -EINVAL;
                        }
                        for (unsigned i = 0; i < sim->n_devices; i++) {
                                struct sim_mesh *m = sim->devices[i].mesh;
                                if (!m || (dev >= 0 && dev != (long) i))
                                        continue;
                                r = l == 0 ? sim_mesh_version_apply(m, spec, &err) : sim_mesh_fault_apply(m, spec, &err);
                                if (r < 0) {
                                        fprintf(stderr, "smpsim: %s: %s\n", spec, err);
                                        return r;
                                }
                        }
                }
        return 0;
}

static int load_image(const char *path, uint32_t slot_size, struct sim_blob **ret) {
        struct sim_blob *b;
        int r = sim_blob_load_file(path, MIN((size_t) IMAGE_FILE_MAX, (size_t) slot_size), &b);
        if (r < 0)
                return r;
        if (!sim_image_valid(b->data, b->len)) {
                sim_blob_unref(b);
                return -EBADMSG;
        }
        *ret = b;
        return 0;
}

static void raise_fd_limit(unsigned needed) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur >= needed + 64)
                return;
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
}

static int run(int argc, char **argv) {
        struct options o;
        struct sim sim = { .control_fd = -1 };
        int r;

        r = parse_options(argc, argv, &o);
        if (r < 0)
                return r;
        sim.verbosity = o.verbosity;

        r = sd_event_default(&sim.event);
        if (r < 0)
                return r;
        (void) sd_event_add_signal(sim.event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        (void) sd_event_add_signal(sim.event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        signal(SIGPIPE, SIG_IGN);
        raise_fd_limit(o.count * 3);

        if (o.image) {
                r = load_image(o.image, o.params.slot_size, &sim.default_image);
                if (r < 0) {
                        fprintf(stderr, "smpsim: --image %s: %s\n", o.image,
                                r == -EBADMSG ? "not a valid MCUboot image" : strerror(-r));
                        goto out;
                }
        } else {
                r = sim_image_build_default(&sim.default_image);
                if (r < 0) {
                        fprintf(stderr, "smpsim: building the default image failed: %s\n", strerror(-r));
                        goto out;
                }
        }
        if (o.state_dir && mkdir(o.state_dir, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                fprintf(stderr, "smpsim: --state-dir %s: %m\n", o.state_dir);
                goto out;
        }

        sim.devices = calloc(o.count, sizeof(*sim.devices));
        if (!sim.devices) {
                r = -ENOMEM;
                goto out;
        }
        for (unsigned i = 0; i < o.count; i++) {
                struct sim_device *d = &sim.devices[i];
                _cleanup_(sim_blob_unrefp) struct sim_blob *image = sim_blob_ref(sim.default_image);

                d->params = o.params;
                d->link = o.link;
                for (unsigned k = 0; k < o.n_versions; k++)
                        if (o.versions[k].dev == (long) i)
                                d->params.smp_version = o.versions[k].value[0] - '0';
                for (unsigned k = 0; k < o.n_boards; k++)
                        if (o.boards[k].dev == (long) i)
                                snprintf(d->params.board, sizeof(d->params.board), "%s", o.boards[k].value);
                for (unsigned k = 0; k < o.n_no_os_info; k++)
                        if (o.no_os_info[k] == i)
                                d->params.no_os_info = true;
                for (unsigned k = 0; k < o.n_images; k++)
                        if (o.images[k].dev == (long) i) {
                                sim_blob_unref(image);
                                image = NULL;
                                r = load_image(o.images[k].value, o.params.slot_size, &image);
                                if (r < 0) {
                                        fprintf(stderr, "smpsim: --dev-image %s: %s\n", o.images[k].value,
                                                r == -EBADMSG ? "not a valid MCUboot image" : strerror(-r));
                                        goto out;
                                }
                        }
                r = sim_device_init(d, &sim, i, image, o.state_dir);
                sim.n_devices = i + 1;
                if (r < 0) {
                        fprintf(stderr, "smpsim: device %u: %s\n", i, strerror(-r));
                        goto out;
                }
                d->rng ^= o.seed * 0x9E3779B97F4A7C15ULL;
                for (unsigned k = 0; k < o.n_faults; k++) {
                        long dev;
                        const char *err;
                        (void) sim_fault_parse(o.faults[k], &dev, &err);
                        if (dev < 0 || dev == (long) i)
                                (void) sim_fault_apply(o.faults[k], &d->faults, &err);
                }
        }

        r = mesh_setup(&sim, &o);
        if (r < 0)
                goto out;

        if (o.udp) {
                struct sockaddr_storage base;
                socklen_t len;
                if (sim_parse_endpoint(o.udp, &base, &len) < 0) {
                        fprintf(stderr, "smpsim: --udp %s: expected ADDR:PORT\n", o.udp);
                        r = -EINVAL;
                        goto out;
                }
                uint16_t port0 = ntohs(base.ss_family == AF_INET ? ((struct sockaddr_in *) &base)->sin_port
                                                                  : ((struct sockaddr_in6 *) &base)->sin6_port);
                if ((unsigned) port0 + o.count - 1 > 65535 || port0 == 0) {
                        fprintf(stderr, "smpsim: --udp: ports %u..%u out of range\n", port0, port0 + o.count - 1);
                        r = -EINVAL;
                        goto out;
                }
                for (unsigned i = 0; i < o.count; i++) {
                        r = sim_udp_open(&sim, &sim.devices[i], &base, len, (uint16_t) (port0 + i));
                        if (r < 0) {
                                fprintf(stderr, "smpsim: udp port %u: %s\n", port0 + i, strerror(-r));
                                goto out;
                        }
                }
                fprintf(stderr, "smpsim: %u device(s) on udp %s (ports %u..%u)\n", o.count, o.udp, port0,
                        port0 + o.count - 1);
        }
        if (o.coap) {
                r = sim_coap_open(&sim, o.coap);
                if (r < 0) {
                        fprintf(stderr, "smpsim: --coap %s: %s\n", o.coap, strerror(-r));
                        goto out;
                }
                if (o.coap_multicast) {
                        r = sim_coap_multicast(&sim, o.coap_group);
                        if (r < 0) {
                                fprintf(stderr, "smpsim: --coap-multicast%s%s: %s\n", o.coap_group ? "=" : "",
                                        o.coap_group ?: "", strerror(-r));
                                goto out;
                        }
                }
        }
        if (o.serial_dir) {
                if (mkdir(o.serial_dir, 0755) < 0 && errno != EEXIST) {
                        r = -errno;
                        fprintf(stderr, "smpsim: --serial %s: %m\n", o.serial_dir);
                        goto out;
                }
                for (unsigned i = 0; i < o.count; i++) {
                        r = sim_serial_open(&sim, &sim.devices[i], o.serial_dir);
                        if (r < 0) {
                                fprintf(stderr, "smpsim: serial for device %u: %s\n", i, strerror(-r));
                                goto out;
                        }
                }
                fprintf(stderr, "smpsim: %u device(s) on ptys %s/smpsim-NNNN\n", o.count, o.serial_dir);
        }
        if (o.ble.bus) {
                r = sim_ble_open(&sim, &o.ble);
                if (r < 0) {
                        fprintf(stderr, "smpsim: --ble %s: %s\n", o.ble.bus, strerror(-r));
                        goto out;
                }
        }
        if (o.control) {
                r = sim_control_open(&sim, o.control);
                if (r < 0) {
                        fprintf(stderr, "smpsim: --control %s: %s\n", o.control, strerror(-r));
                        goto out;
                }
        }

        printf("ready\n");
        fflush(stdout);
        r = sd_event_loop(sim.event);

out:
        sim_control_close(&sim);
        sim_ble_close(&sim);
        sim_coap_close(&sim);
        for (unsigned i = 0; i < sim.n_devices; i++) {
                sim_udp_close(&sim.devices[i]);
                sim_serial_close(&sim.devices[i]);
                sim.devices[i].mesh = sim_mesh_free(sim.devices[i].mesh);
                sim_device_done(&sim.devices[i]);
        }
        free(sim.devices);
        sim_blob_unref(sim.default_image);
        sd_event_unref(sim.event);
        return r;
}

int main(int argc, char **argv) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
