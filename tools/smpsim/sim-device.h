/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One simulated device: its flash and MCUboot state, its SMP server
 * state, its link to the gateway and its faults.  Every packet passes
 * through a per-device timeline of events (arrival over the emulated
 * link, processing in order, answer over the emulated link), driven by
 * one sd-event timer per device.
 *
 * The model has no sockets.  It runs inside a host that defines struct
 * sim (the model only passes the pointer on) and the functions marked
 * "host" below: smpsim.c (sim.h) puts the devices behind UDP, CoAP,
 * serial ptys and a fake org.bluez; tests/lib/sim-transport.c puts them
 * behind an in-process libsmpgw transport.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "sim-fault.h"
#include "sim-link.h"
#include "sim-mcuboot.h"

struct sim;
struct sim_device;
struct sim_mesh;

enum sim_transport_kind {
        SIM_TRANSPORT_UDP,
        SIM_TRANSPORT_COAP,
        SIM_TRANSPORT_SERIAL,
        SIM_TRANSPORT_BLE,
};

/* Where an answer goes: the transport and peer a request came from. */
struct sim_route {
        enum sim_transport_kind kind;
        struct sockaddr_storage addr;
        socklen_t addrlen;
        uint64_t cookie; /* transport-private (CoAP: the pending request; BLE: the connection) */
};

#define SIM_BOARD_SIZE 65u /* a board name of 64 bytes and its NUL */
#define SIM_BOARD_DEFAULT "smpsim/nrf52840"

/* Per-device settings, from the command line or the control socket. */
struct sim_device_params {
        int smp_version;          /* 1: legacy firmware, 2: current Zephyr */
        uint32_t buf_size;        /* CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE */
        uint32_t buf_count;       /* CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT */
        uint32_t swap_ms;         /* time MCUboot takes to swap at boot */
        uint32_t boot_ms;         /* time any reboot takes */
        uint32_t reset_delay_ms;  /* answer-to-reboot delay (CONFIG_MCUMGR_GRP_OS_RESET_MS) */
        uint64_t flash_rate;      /* bytes/s written to flash; 0 = instant */
        uint64_t erase_rate;      /* bytes/s erased at the first chunk; 0 = instant */
        uint32_t slot_size;
        bool frugal_list;         /* CONFIG_MCUMGR_GRP_IMG_FRUGAL_LIST */
        bool image_check;         /* CONFIG_IMG_ENABLE_IMAGE_CHECK: "match" in the last answer */
        char board[SIM_BOARD_SIZE]; /* CONFIG_BOARD in OS info ("i"); "": SIM_BOARD_DEFAULT */
        bool no_os_info;            /* no OS info command (Mynewt, !CONFIG_MCUMGR_GRP_OS_INFO): NOT_SUPPORTED */
        /* no MCUmgr params command (!CONFIG_MCUMGR_GRP_OS_MCUMGR_PARAMS): NOT_SUPPORTED */
        bool no_params;
        /* !CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY: each BLE write is one
         * whole SMP packet (Zephyr's default) */
        bool no_reassembly;
        /* CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER 2: a second image
         * (nRF5340's network core) in flash_image1, listed as "image": 1
         * and uploaded to with "image": 1.  Held in memory only. */
        bool two_images;
        /* > 1: as MCUboot's serial recovery (boot_serial.c bs_upload()),
         * a chunk that is not the last is written only up to a multiple
         * of this flash write alignment and answered with that offset;
         * the rest is to be sent again.  0, 1: whole chunks (img_mgmt). */
        uint32_t write_align;
};

/* The upload in progress (Zephyr's g_img_mgmt_state, RAM only). */
struct sim_upload {
        bool active;
        uint32_t image; /* the "image" of the first chunk */
        size_t off;
        size_t size;
        uint8_t sha[32];
        size_t sha_len;
};

struct sim_stats {
        uint64_t rx_packets, tx_packets;
        uint64_t rx_bytes, tx_bytes;
        uint64_t dropped_loss, dropped_mtu, dropped_netbuf, dropped_too_big, dropped_fault;
        uint64_t refused_netbuf; /* answered ENOMEM: no netbuf left for the answer */
        uint64_t upload_bytes;
        uint64_t resets;
};

struct sim_event;

struct sim_device {
        struct sim *sim;
        unsigned index;
        char name[32];
        char state_dir[4096];     /* "" when not persisted */

        struct sim_device_params params;
        struct sim_link_params link;
        struct sim_faults faults;
        uint64_t rng;

        struct sim_flash flash;
        struct sim_flash flash_image1; /* params.two_images: image 1's slots */
        struct sim_upload upload;
        struct sim_stats stats;
        uint32_t boot_count;
        enum sim_boot_result last_boot;
        bool silent;              /* hung by a fault until reset from the control socket */
        uint64_t down_until_us;   /* link down (drop-at) */
        bool rebooting;
        uint64_t booted_at_us;
        int64_t clock_offset_s;   /* date-time set over SMP, against the host clock */

        /* timeline */
        struct sim_event *events;  /* sorted by time */
        sd_event_source *timer;
        struct sim_link_dir uplink, downlink;

        /* SMP receive queue: packets holding a netbuf, in order */
        struct sim_event *rx_head, **rx_tail;
        unsigned rx_count;
        bool busy;

        /* transport endpoints */
        int udp_fd;
        sd_event_source *udp_source;
        void *serial;             /* struct sim_serial */
        void *coap;               /* transport-private */
        uint16_t port;

        struct sim_mesh *mesh;    /* a Bluetooth Mesh Distributor too (sim-mesh.h), or NULL */
};

/* Creates the device's state (flash with the given primary image, or the
 * state loaded from state_dir when there is one). */
int sim_device_init(struct sim_device *d, struct sim *sim, unsigned index,
                    struct sim_blob *default_image, const char *state_root);
void sim_device_done(struct sim_device *d);

/* A packet from a transport (one datagram, or one deframed serial packet). */
void sim_device_receive(struct sim_device *d, const struct sim_route *route,
                        const uint8_t *pkt, size_t len);

/* A packet a transport reassembled from pieces it already charged to the
 * uplink (BLE writes, see sim_link_arrival()): it reaches the device at
 * at_us instead of after its own transfer time. */
void sim_device_receive_at(struct sim_device *d, const struct sim_route *route,
                           const uint8_t *pkt, size_t len, uint64_t at_us);

/* Whether a request that came by route (kind and cookie) is still on its
 * way in, queued, being processed, or its answer on its way out: false
 * once the device dropped it (a fault, loss, no netbuf, a reboot) or its
 * answer was handed to the transport. */
bool sim_device_holds_request(const struct sim_device *d, const struct sim_route *route);

/* Reboots now (control socket "reset", or a fault). */
void sim_device_reboot(struct sim_device *d, const char *why);

/* Host: sends bytes to the route's peer. */
void sim_transport_send(struct sim_device *d, const struct sim_route *route,
                        const uint8_t *pkt, size_t len);

/* Host: an upload chunk that came by route was written, and the upload
 * reached `off` (link faults tied to the upload's progress: BLE's
 * disconnect-at).  Its answer goes out later, through the same route. */
void sim_transport_upload_reached(struct sim_device *d, const struct sim_route *route, uint64_t off);

/* Host: the device went down (reset) or came back (booted), for
 * link-oriented transports (BLE drops the connection and stops
 * advertising while the device is down). */
void sim_transport_device_down(struct sim_device *d);
void sim_transport_device_up(struct sim_device *d);

/* Host: the time of the event loop (CLOCK_MONOTONIC, µs). */
uint64_t sim_now_us(struct sim *sim);

/* Host: logging at a verbosity level (0 errors, 1 info, 2 each packet). */
void sim_log(struct sim *sim, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define dev_log(d, level, fmt, ...) sim_log((d)->sim, level, "dev%u: " fmt, (d)->index, ##__VA_ARGS__)

/* Host: the sd-event loop devices schedule on. */
sd_event *sim_event_loop(struct sim *sim);
