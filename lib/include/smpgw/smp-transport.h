/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transport plugin interface, ABI version 2.
 *
 * A transport moves SMP frames between the gateway and a device.  It is
 * named by the scheme of a connection string (smp-conn.h, doc/connection-strings.md):
 *
 *   udp:HOST:PORT[,mtu=N]            raw SMP over UDP (Zephyr smp_udp.c)
 *   coap:HOST[:PORT][,mtu=N]         SMP over CoAP, newtmgr's OIC variant
 *   serial:/dev/PATH[,baud=N]        SMP console framing over a tty
 *   ble:AA:BB:CC:DD:EE:FF[,adapter=hciN,...]   SMP GATT service through BlueZ
 *
 * Each transport lives in plugins/<name>/ and is built as a shared module
 * exporting one symbol, `smpgw_transport_plugin`, of type struct
 * smp_transport (or is compiled into the program and handed to
 * smp_context_add_transport()).  Like SQLite's sqlite3_vfs the descriptor
 * starts with a version and its own size: abi_version changes when the
 * interface changes incompatibly, and fields added later go at the end,
 * read by the host only when struct_size says the plugin has them.  A
 * plugin of another abi_version, or one whose descriptor is smaller than
 * version 2's, is refused (with a sentence saying so).
 *
 * The host (libsmpgw's context, smp-context.h) creates one instance of a
 * transport per context and hands it a struct smp_host: its logging, so
 * plugins need no environment variables and never write to stderr.  All
 * of a plugin's state lives in its instance, links and discoveries: no
 * global variables.
 *
 * Connection strings are parsed and validated by libsmpgw against the
 * transport's declared syntax (conn_syntax) before open() is called: a
 * plugin never sees a string that does not fit its grammar.
 *
 * Everything runs on the caller's sd-event loop: plugins never block and
 * never start threads.  Errors are negative errno.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include <smpgw/smp-conn.h>
#include <smpgw/smp-parse.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMP_TRANSPORT_ABI_VERSION 2u
#define SMP_TRANSPORT_SYMBOL "smpgw_transport_plugin"

/* Log levels: the syslog priorities (LOG_ERR ... LOG_DEBUG). */
#define SMP_LOG_ERR 3
#define SMP_LOG_WARNING 4
#define SMP_LOG_NOTICE 5
#define SMP_LOG_INFO 6
#define SMP_LOG_DEBUG 7

struct smp_link;                  /* a plugin's open link */
struct smp_transport_discovery;   /* a plugin's running discovery */
struct smp_transport_instance;    /* a plugin's state in one context */

/* What the host lends a transport instance; valid until instance_free().
 * Fields may be added at the end: check struct_size before using one
 * that came later than the plugin's header. */
struct smp_host {
        uint32_t abi_version;      /* SMP_TRANSPORT_ABI_VERSION */
        uint32_t struct_size;      /* sizeof(struct smp_host) of the host */
        /* Logs one message (no trailing newline needed) at an SMP_LOG_*
         * level; the host adds the transport's name.  Never NULL. */
        void (*logv)(const struct smp_host *host, int level, const char *fmt, va_list ap);
        /* Whether a message at level would go anywhere, to skip costly
         * formatting.  Never NULL. */
        bool (*log_enabled)(const struct smp_host *host, int level);
};

__attribute__((format(printf, 3, 4))) static inline void smp_host_log(const struct smp_host *host, int level,
                                                                       const char *fmt, ...) {
        va_list ap;
        if (!host->log_enabled(host, level))
                return;
        va_start(ap, fmt);
        host->logv(host, level, fmt, ap);
        va_end(ap);
}

struct smp_link_callbacks {
        /* Received bytes.  Packet transports (udp, coap, and serial,
         * which undoes its console framing itself) deliver one whole
         * packet per call, which may hold several SMP frames; stream
         * transports (ble) deliver pieces, which the session reassembles
         * by the SMP header's length (see smp_link_info.stream). */
        void (*receive)(const uint8_t *data, size_t len, void *userdata);
        /* The link is gone (hang-up, disconnect, unrecoverable error);
         * err is a negative errno.  The link must still be closed.
         * -EUSERS means "the adapter has no free link": the local
         * adapter (get_adapter()) refused the connection for lack of
         * resources (a BLE controller at its link limit); no other
         * failure is reported with it (doc/plugins.md). */
        void (*closed)(int err, void *userdata);
        /* send() returned -EAGAIN earlier and may now succeed.  May be NULL. */
        void (*writable)(void *userdata);
};

struct smp_link_info {
        /* Largest SMP frame one send() carries as one transport packet
         * (UDP: the datagram limit; BLE: ATT MTU - 3; serial: unlimited
         * by the link, bounded by the device's buffer instead). */
        size_t mtu;
        /* The transport can carry a frame larger than mtu by splitting it
         * (CoAP block-wise, BLE with device-side reassembly); the device's
         * buffer is then the only bound. */
        bool fragments;
        /* receive() delivers pieces of a byte stream, not packets. */
        bool stream;
        /* Bytes of transport overhead per packet beyond the SMP frame, so
         * rate figures can be compared with the link's raw limit. */
        size_t overhead;
        /* Bytes of the device's SMP buffer (mcumgr buf_size) the transport
         * spends beyond the frame: serial keeps length and CRC in it (4). */
        size_t buffer_overhead;
        /* With fragments: the pieces reach the device as separate
         * packets that only its own reassembly puts together (BLE: each
         * ATT write; Zephyr's CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY, off
         * by default, else each write is taken as one whole SMP packet).
         * Clear when the transport reassembles itself (CoAP block-wise,
         * serial lines), which every device copes with.  Added to ABI
         * version 2 later: the host zeroes the struct before get_info(),
         * so a plugin built without it says false. */
        bool fragments_need_device;
        /* The device reads the frame as text lines into a few small line
         * buffers and handles one request at a time on some firmware
         * (a console: Zephyr's UART and shell transports keep 2 lines,
         * MCUboot's serial recovery 8 and has no params command), so
         * requests are not pipelined to a device that did not tell its
         * buffers.  Added to ABI version 2 later, as above. */
        bool device_line_buffers;
};

struct smp_link_stats {
        uint64_t tx_packets, rx_packets;
        uint64_t tx_bytes, rx_bytes;
        /* Packets the transport knows were lost or damaged: CoAP
         * retransmissions, serial CRC/base64 drops, ... */
        uint64_t lost;
};

/* A device found by discovery. */
struct smp_discovered {
        const char *conn;      /* connection string to open it with */
        const char *name;      /* may be NULL */
        const char *address;   /* transport address, e.g. the BLE address */
        const char *address_type; /* "public"/"random" for BLE, else NULL */
        const char *adapter;   /* BLE adapter, else NULL */
        bool has_rssi;
        int16_t rssi;
};

/* Called once per device found.  A discovery that ends by itself (udp's
 * range probe, a BLE scan given a duration) then calls it once with
 * found == NULL; one that runs until stopped never does.  Either way the
 * discovery must still be stopped, which is safe from within the call. */
typedef void (*smp_discovered_fn)(const struct smp_discovered *found, void *userdata);

struct smp_transport {
        uint32_t abi_version;        /* SMP_TRANSPORT_ABI_VERSION */
        uint32_t struct_size;        /* sizeof(struct smp_transport) */
        const char *name;            /* the connection string scheme: [a-z0-9]+ */
        const char *description;
        /* The address and options open() takes; libsmpgw parses and
         * checks connection strings against it.  Never NULL. */
        const struct smp_conn_syntax *conn_syntax;

        /* The transport's state for one context.  host is borrowed and
         * outlives the instance.  Every link and discovery of an instance
         * is closed before instance_free() is called. */
        int (*instance_new)(const struct smp_host *host, struct smp_transport_instance **ret);
        void (*instance_free)(struct smp_transport_instance *instance);

        /* Opens a link to conn (borrowed; a link keeps what it needs).
         * The link may report closed() at any time after this returns; it
         * reports nothing before. */
        int (*open)(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret);
        /* Closes and frees; safe from within callbacks of the same link. */
        void (*close)(struct smp_link *link);
        /* Sends one SMP frame (or several concatenated, for datagram
         * transports, when they fit one packet).  -EAGAIN: try again
         * after writable(); -EMSGSIZE: larger than the link carries. */
        int (*send)(struct smp_link *link, const uint8_t *frame, size_t len);
        void (*get_info)(struct smp_link *link, struct smp_link_info *ret);
        void (*get_stats)(struct smp_link *link, struct smp_link_stats *ret);

        /* Discovery, optional (both NULL when the transport cannot
         * discover).  args is transport-specific (e.g. an address range to
         * probe); -EINVAL when it is not understood. */
        int (*discover_start)(struct smp_transport_instance *instance, sd_event *event, const char *args,
                              smp_discovered_fn found, void *userdata, struct smp_transport_discovery **ret);
        void (*discover_stop)(struct smp_transport_discovery *discovery);

        /* Added to version 2 later: read only when struct_size covers
         * them (SMP_TRANSPORT_HAS()). */

        /* The local adapter the link goes through, by name ("hci0" for
         * ble), so a failure such as -EUSERS can be put down to it; NULL
         * while the link does not know it yet.  Valid until close(), and
         * may be called from within the link's callbacks, closed()
         * included.  May be NULL (the transport has no such notion). */
        const char *(*get_adapter)(struct smp_link *link);
};

/* The size of a version 2 descriptor: a plugin's struct_size must be at
 * least this. */
#define SMP_TRANSPORT_SIZE_V2 (offsetof(struct smp_transport, discover_stop) + sizeof(void (*)(void)))

/* Whether descriptor t has a field added after SMP_TRANSPORT_SIZE_V2 and
 * it is set: SMP_TRANSPORT_HAS(t, get_adapter). */
#define SMP_TRANSPORT_HAS(t, field)                                                                    \
        ((t)->struct_size >= offsetof(struct smp_transport, field) + sizeof((t)->field) && (t)->field != NULL)

#ifdef __cplusplus
}
#endif
