/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP over a serial console (Zephyr "SMP over console"/UART/USB CDC ACM,
 * MCUboot serial recovery; Zephyr smp_transport.rst, serial_util.c).
 *
 * A packet P = len (BE16) || SMP frame || CRC16 (BE16), where len counts
 * the frame and the CRC, and the CRC is CRC-16/XMODEM (poly 0x1021, init 0)
 * over the frame only.  P is base64-encoded and cut into lines of at most
 * 127 bytes: the first line starts with 06 09, every further line with
 * 04 14, each ends with 0A.  Lines are cut on 4-character boundaries
 * because Zephyr decodes each line separately.
 *
 * Both directions are here: the gateway encodes requests and decodes
 * answers, the simulator decodes requests and encodes answers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Zephyr's MCUMGR_SERIAL_MAX_FRAME: marker + base64 + newline. */
#define SMP_SERIAL_LINE_MAX 127u
/* The 16-bit length field counts frame + CRC. */
#define SMP_SERIAL_FRAME_MAX (0xffffu - 2u)
/* Receive line limit: a console line (text that is not SMP) longer than
 * this is passed on cut to this length; an SMP line longer than this drops
 * its packet. */
#define SMP_SERIAL_RX_LINE_MAX 1024u

/* CRC-16/XMODEM: check value for "123456789" is 0x31C3. */
uint16_t smp_crc16_xmodem(uint16_t crc, const void *data, size_t len);

/* Number of bytes smp_serial_encode() writes for a frame of frame_len
 * bytes with lines of at most line_max bytes (0 means 127).  Returns 0
 * when line_max is below 8 (no room for one base64 group) or frame_len
 * is over SMP_SERIAL_FRAME_MAX. */
size_t smp_serial_encoded_size(size_t frame_len, size_t line_max);

/* Encodes one SMP frame into console lines.  Returns the number of bytes
 * written, -EMSGSIZE when the frame is too large for the length field,
 * -EINVAL for a line_max below 8, -ENOBUFS when out is too small. */
int smp_serial_encode(const uint8_t *frame, size_t frame_len, size_t line_max,
                      uint8_t *out, size_t out_size);

/* The largest SMP frame that fits a device receive buffer of buf_size
 * bytes: the device keeps length, frame and CRC, so 4 bytes less. */
static inline size_t smp_serial_frame_max_for_buf(size_t buf_size) {
        return buf_size > 4 ? buf_size - 4 : 0;
}

/* Why a serial packet was dropped. */
enum smp_serial_drop {
        SMP_SERIAL_DROP_BAD_BASE64,   /* a character outside the base64 alphabet */
        SMP_SERIAL_DROP_BAD_LENGTH,   /* length field below 2 + 8 (CRC + header) */
        SMP_SERIAL_DROP_TOO_LARGE,    /* length above the decoder's limit */
        SMP_SERIAL_DROP_BAD_CRC,      /* CRC mismatch */
        SMP_SERIAL_DROP_OVERRUN,      /* more data than the length announced */
        SMP_SERIAL_DROP_INTERRUPTED,  /* a new start line arrived mid-packet */
        SMP_SERIAL_DROP_LINE_TOO_LONG,
};

const char *smp_serial_drop_to_string(enum smp_serial_drop why);

struct smp_serial_callbacks {
        /* One complete packet, CRC checked and removed: an SMP frame
         * (possibly several concatenated, see smp_packet_next()).  The
         * buffer is valid only during the call. */
        void (*packet)(const uint8_t *frame, size_t len, void *userdata);
        /* A packet was dropped; the decoder is resynchronised. */
        void (*dropped)(enum smp_serial_drop why, void *userdata);
        /* A line of console text that carries no SMP marker (logs, shell
         * output), without its line ending.  May be NULL. */
        void (*console)(const char *text, size_t len, void *userdata);
};

struct smp_serial_decoder;

/* max_frame bounds the SMP frame a packet may carry (memory is allocated
 * for it up front).  Returns -EINVAL for a max_frame below 8 or above
 * SMP_SERIAL_FRAME_MAX. */
int smp_serial_decoder_new(size_t max_frame, const struct smp_serial_callbacks *cb,
                           void *userdata, struct smp_serial_decoder **ret);
struct smp_serial_decoder *smp_serial_decoder_free(struct smp_serial_decoder *d);

/* Forgets any partial line and packet (after a reconnect or timeout). */
void smp_serial_decoder_reset(struct smp_serial_decoder *d);

/* Feeds bytes as they come off the line, in pieces of any size.  Calls the
 * callbacks synchronously.  Never fails: bad input is reported through
 * dropped() and skipped. */
void smp_serial_decoder_feed(struct smp_serial_decoder *d, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif
