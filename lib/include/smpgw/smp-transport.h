/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transport plugin interface.
 *
 * A transport moves SMP frames between the gateway and a device.  It is
 * named by the scheme of a connection string:
 *
 *   udp:HOST:PORT             raw SMP over UDP (Zephyr smp_udp.c)
 *   coap:HOST:PORT            SMP over CoAP, newtmgr's OIC variant
 *   serial:/dev/PATH[,baud=N] SMP console framing over a tty
 *   ble:ADDR[,adapter=hciN]   SMP GATT service through BlueZ
 *
 * (IPv6 hosts go in brackets: udp:[::1]:1337.)  Each transport lives in
 * plugins/<name>/ and is built as a shared module exporting one symbol,
 * `smpgw_transport_plugin`, of type struct smp_transport.  Like SQLite's
 * sqlite3_vfs the struct starts with a version, so fields can be added at
 * the end without breaking plugins built against an older header.
 *
 * Everything runs on the caller's sd-event loop: plugins never block and
 * never start threads.  Errors are negative errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMP_TRANSPORT_ABI_VERSION 1u
#define SMP_TRANSPORT_SYMBOL "smpgw_transport_plugin"
/* Connection strings longer than this are refused. */
#define SMP_CONN_MAX 256u

struct smp_link;       /* a plugin's open link */
struct smp_discovery;  /* a plugin's running discovery */

struct smp_link_callbacks {
        /* Received bytes.  Packet transports (udp, coap, and serial,
         * which undoes its console framing itself) deliver one whole
         * packet per call, which may hold several SMP frames; stream
         * transports (ble) deliver pieces, which the session reassembles
         * by the SMP header's length (see smp_link_info.stream). */
        void (*receive)(const uint8_t *data, size_t len, void *userdata);
        /* The link is gone (hang-up, disconnect, unrecoverable error);
         * err is a negative errno.  The link must still be closed. */
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
        const char *name;            /* the connection string scheme */
        const char *description;

        /* Opens a link.  address is the connection string after
         * "<name>:".  The link may report closed() at any time after this
         * returns; it reports nothing before. */
        int (*open)(sd_event *event, const char *address, const struct smp_link_callbacks *cb,
                    void *userdata, struct smp_link **ret);
        /* Closes and frees; safe from within callbacks of the same link. */
        void (*close)(struct smp_link *link);
        /* Sends one SMP frame (or several concatenated, for datagram
         * transports, when they fit one packet).  -EAGAIN: try again
         * after writable(); -EMSGSIZE: larger than the link carries. */
        int (*send)(struct smp_link *link, const uint8_t *frame, size_t len);
        void (*get_info)(struct smp_link *link, struct smp_link_info *ret);
        void (*get_stats)(struct smp_link *link, struct smp_link_stats *ret);

        /* Discovery, optional (NULL when the transport cannot discover).
         * args is transport-specific (e.g. an address range to probe). */
        int (*discover_start)(sd_event *event, const char *args, smp_discovered_fn found,
                              void *userdata, struct smp_discovery **ret);
        void (*discover_stop)(struct smp_discovery *discovery);
};

/* ---- loading plugins by name (lib/smp-plugin.c) ---- */

/* Splits "udp:127.0.0.1:1337" into the scheme ("udp", copied into scheme)
 * and a pointer to the address part within conn.  -EINVAL when there is
 * no scheme or it is not [a-z0-9]+, -ENAMETOOLONG past SMP_CONN_MAX. */
int smp_conn_split(const char *conn, char *scheme, size_t scheme_size, const char **ret_address);

/* Finds the transport for a scheme: dlopen()s
 * <plugin dir>/smpgw-transport-<scheme>.so once and checks its ABI
 * version.  The plugin directory is $SMPGW_PLUGIN_DIR when set, else the
 * one compiled in.  -ENOENT: no such plugin (a build without its
 * dependency); -EPROTO: wrong ABI version or symbol missing. */
int smp_transport_find(const char *scheme, const struct smp_transport **ret);

/* Registers a transport compiled into the program (tests, or a static
 * build); found before plugins on disk. */
int smp_transport_register(const struct smp_transport *transport);

/* Lists the transports registered in-process and the plugins present in
 * the plugin directories (names, sorted, each once; a listed plugin may
 * still fail to load); returns the count or a negative errno.  *ret is
 * a NULL-terminated array to free with smp_strv_free(). */
int smp_transport_list(char ***ret);
void smp_strv_free(char **strv);

#ifdef __cplusplus
}
#endif
