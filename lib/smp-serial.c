/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Serial console framing for SMP: base64 lines with start/continuation
 * markers, a length prefix and a CRC16 trailer.  Base64 is nettle's on
 * the way out; on the way in each 4-character group is decoded here,
 * where the group's padding is checked anyway.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>

#include "smpgw/smp-serial.h"
#include "util.h"

#define MARKER_START_1 0x06
#define MARKER_START_2 0x09
#define MARKER_CONT_1 0x04
#define MARKER_CONT_2 0x14
#define MARKER_LEN 2
/* Smallest length field: an 8-byte SMP header plus the 2-byte CRC. */
#define PACKET_LEN_MIN (8u + 2u)

static size_t base64_chars_per_line(size_t line_max) {
        /* marker (2) + newline (1), rest rounded down to whole groups */
        if (line_max < MARKER_LEN + 1 + 4)
                return 0;
        return ((line_max - MARKER_LEN - 1) / 4) * 4;
}

size_t smp_serial_encoded_size(size_t frame_len, size_t line_max) {
        if (line_max == 0)
                line_max = SMP_SERIAL_LINE_MAX;
        size_t chars = base64_chars_per_line(line_max);
        if (chars == 0 || frame_len > SMP_SERIAL_FRAME_MAX)
                return 0;

        size_t raw_len = 2 + frame_len + 2;
        size_t b64_len = 4 * ((raw_len + 2) / 3);
        size_t lines = (b64_len + chars - 1) / chars;
        return b64_len + lines * (MARKER_LEN + 1);
}

int smp_serial_encode(const uint8_t *frame, size_t frame_len, size_t line_max,
                      uint8_t *out, size_t out_size) {
        if (line_max == 0)
                line_max = SMP_SERIAL_LINE_MAX;
        if (frame_len > SMP_SERIAL_FRAME_MAX)
                return -EMSGSIZE;
        size_t chars = base64_chars_per_line(line_max);
        if (chars == 0)
                return -EINVAL;
        size_t need = smp_serial_encoded_size(frame_len, line_max);
        if (need > out_size)
                return -ENOBUFS;
        if (need > INT32_MAX)
                return -EMSGSIZE;

        size_t raw_len = 2 + frame_len + 2;
        _cleanup_free_ uint8_t *raw = malloc(raw_len);
        if (!raw)
                return -ENOMEM;
        unaligned_write_be16(raw, (uint16_t) (frame_len + 2));
        memcpy(raw + 2, frame, frame_len);
        unaligned_write_be16(raw + 2 + frame_len, smp_crc16_xmodem(0, frame, frame_len));

        /* Each line carries a whole number of 3-byte groups, so base64 of
         * each slice equals the matching slice of the whole packet's base64
         * and only the last line has padding. */
        size_t raw_per_line = chars / 4 * 3;
        size_t pos = 0, o = 0;
        for (bool first = true; pos < raw_len; first = false) {
                size_t n = MIN(raw_per_line, raw_len - pos);
                out[o++] = first ? MARKER_START_1 : MARKER_CONT_1;
                out[o++] = first ? MARKER_START_2 : MARKER_CONT_2;
                base64_encode_raw((char *) out + o, n, raw + pos);
                o += BASE64_ENCODE_RAW_LENGTH(n);
                out[o++] = '\n';
                pos += n;
        }
        return (int) o;
}

const char *smp_serial_drop_to_string(enum smp_serial_drop why) {
        switch (why) {
        case SMP_SERIAL_DROP_BAD_BASE64:
                return "character outside the base64 alphabet";
        case SMP_SERIAL_DROP_BAD_LENGTH:
                return "length field too small for an SMP header and CRC";
        case SMP_SERIAL_DROP_TOO_LARGE:
                return "length field larger than the receive limit";
        case SMP_SERIAL_DROP_BAD_CRC:
                return "CRC16 mismatch";
        case SMP_SERIAL_DROP_OVERRUN:
                return "more data than the length field announced";
        case SMP_SERIAL_DROP_INTERRUPTED:
                return "new packet started before the previous one was complete";
        case SMP_SERIAL_DROP_LINE_TOO_LONG:
                return "SMP line longer than the receive limit";
        }
        return "unknown";
}

struct smp_serial_decoder {
        struct smp_serial_callbacks cb;
        void *userdata;
        size_t max_frame;

        /* the line being received */
        uint8_t line[SMP_SERIAL_RX_LINE_MAX];
        size_t line_len;
        bool line_overflow;

        /* the packet being reassembled: length field, frame, CRC */
        bool in_packet;
        char group[4];
        size_t group_len;
        size_t pkt_len;
        uint8_t pkt[]; /* 2 + max_frame + 2 */
};

int smp_serial_decoder_new(size_t max_frame, const struct smp_serial_callbacks *cb,
                           void *userdata, struct smp_serial_decoder **ret) {
        if (max_frame < 8 || max_frame > SMP_SERIAL_FRAME_MAX || !cb || !cb->packet)
                return -EINVAL;

        struct smp_serial_decoder *d = calloc(1, sizeof(*d) + max_frame + 4);
        if (!d)
                return -ENOMEM;
        d->cb = *cb;
        d->userdata = userdata;
        d->max_frame = max_frame;
        *ret = d;
        return 0;
}

struct smp_serial_decoder *smp_serial_decoder_free(struct smp_serial_decoder *d) {
        free(d);
        return NULL;
}

static void packet_reset(struct smp_serial_decoder *d) {
        d->in_packet = false;
        d->group_len = 0;
        d->pkt_len = 0;
}

void smp_serial_decoder_reset(struct smp_serial_decoder *d) {
        packet_reset(d);
        d->line_len = 0;
        d->line_overflow = false;
}

static void packet_drop(struct smp_serial_decoder *d, enum smp_serial_drop why) {
        packet_reset(d);
        if (d->cb.dropped)
                d->cb.dropped(why, d->userdata);
}

static bool is_base64_char(uint8_t c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/' || c == '=';
}

/* The 6 bits of one character that is_base64_char() accepted; '=' is 0. */
static uint32_t base64_sextet(char c) {
        if (c >= 'A' && c <= 'Z')
                return (uint32_t) (c - 'A');
        if (c >= 'a' && c <= 'z')
                return (uint32_t) (c - 'a' + 26);
        if (c >= '0' && c <= '9')
                return (uint32_t) (c - '0' + 52);
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return 0;
}

/* Decodes one 4-character group.  Returns the number of bytes (1-3) or
 * -EBADMSG for misplaced padding. */
static int decode_group(const char g[4], uint8_t out[3]) {
        int pad = 0;
        if (g[3] == '=')
                pad = g[2] == '=' ? 2 : 1;
        if (g[0] == '=' || g[1] == '=' || (g[2] == '=' && g[3] != '='))
                return -EBADMSG;

        /* Bits a padded group leaves over are ignored, as they always
         * were (OpenSSL's EVP_DecodeBlock() did so before). */
        uint32_t bits =
                base64_sextet(g[0]) << 18 | base64_sextet(g[1]) << 12 | base64_sextet(g[2]) << 6 | base64_sextet(g[3]);
        out[0] = (uint8_t) (bits >> 16);
        out[1] = (uint8_t) (bits >> 8);
        out[2] = (uint8_t) bits;
        return 3 - pad;
}

/* Called when a full packet may be buffered; emits it if so. */
static void packet_check_complete(struct smp_serial_decoder *d) {
        if (d->pkt_len < 2)
                return;
        size_t want = 2 + (size_t) unaligned_read_be16(d->pkt);
        if (d->pkt_len < want)
                return;

        const uint8_t *frame = d->pkt + 2;
        size_t frame_len = want - 2 - 2;
        /* The CRC over frame and CRC together is zero for a good packet. */
        if (smp_crc16_xmodem(0, frame, frame_len + 2) != 0) {
                packet_drop(d, SMP_SERIAL_DROP_BAD_CRC);
                return;
        }
        packet_reset(d);
        d->cb.packet(frame, frame_len, d->userdata);
}

static void packet_append(struct smp_serial_decoder *d, const uint8_t *bytes, size_t n) {
        if (d->pkt_len >= 2) {
                size_t want = 2 + (size_t) unaligned_read_be16(d->pkt);
                if (d->pkt_len + n > want) {
                        packet_drop(d, SMP_SERIAL_DROP_OVERRUN);
                        return;
                }
        }
        memcpy(d->pkt + d->pkt_len, bytes, n);
        d->pkt_len += n;

        if (d->pkt_len >= 2 && d->pkt_len - n < 2) {
                /* the length field just became complete: validate it */
                size_t len = unaligned_read_be16(d->pkt);
                if (len < PACKET_LEN_MIN) {
                        packet_drop(d, SMP_SERIAL_DROP_BAD_LENGTH);
                        return;
                }
                if (len - 2 > d->max_frame) {
                        packet_drop(d, SMP_SERIAL_DROP_TOO_LARGE);
                        return;
                }
                if (d->pkt_len > 2 + len) {
                        packet_drop(d, SMP_SERIAL_DROP_OVERRUN);
                        return;
                }
        }
        packet_check_complete(d);
}

static void packet_feed_base64(struct smp_serial_decoder *d, const uint8_t *text, size_t len) {
        for (size_t i = 0; i < len && d->in_packet; i++) {
                if (!is_base64_char(text[i])) {
                        packet_drop(d, SMP_SERIAL_DROP_BAD_BASE64);
                        return;
                }
                d->group[d->group_len++] = (char) text[i];
                if (d->group_len < 4)
                        continue;
                d->group_len = 0;

                uint8_t bytes[3];
                int n = decode_group(d->group, bytes);
                if (n < 0) {
                        packet_drop(d, SMP_SERIAL_DROP_BAD_BASE64);
                        return;
                }
                packet_append(d, bytes, (size_t) n);
        }
}

/* Finds the first SMP marker in a line; base64 text never contains 0x06
 * or 0x04, so a marker cannot be mistaken inside packet data. */
static const uint8_t *find_marker(const uint8_t *line, size_t len, bool *ret_start) {
        for (size_t i = 0; i + 1 < len; i++) {
                if (line[i] == MARKER_START_1 && line[i + 1] == MARKER_START_2) {
                        *ret_start = true;
                        return line + i;
                }
                if (line[i] == MARKER_CONT_1 && line[i + 1] == MARKER_CONT_2) {
                        *ret_start = false;
                        return line + i;
                }
        }
        return NULL;
}

static void console_text(struct smp_serial_decoder *d, const uint8_t *text, size_t len) {
        if (d->cb.console && len > 0)
                d->cb.console((const char *) text, len, d->userdata);
}

static void process_line(struct smp_serial_decoder *d) {
        size_t len = d->line_len;
        bool overflow = d->line_overflow;
        d->line_len = 0;
        d->line_overflow = false;

        while (len > 0 && d->line[len - 1] == '\r')
                len--;

        bool start;
        const uint8_t *marker = find_marker(d->line, len, &start);
        if (!marker) {
                console_text(d, d->line, len);
                return;
        }

        /* Console output that did not end its line before the packet. */
        console_text(d, d->line, (size_t) (marker - d->line));

        if (overflow) {
                if (d->in_packet || start)
                        packet_drop(d, SMP_SERIAL_DROP_LINE_TOO_LONG);
                return;
        }

        if (start) {
                if (d->in_packet)
                        packet_drop(d, SMP_SERIAL_DROP_INTERRUPTED);
                packet_reset(d);
                d->in_packet = true;
        } else if (!d->in_packet)
                return; /* continuation of a packet we never saw start */

        const uint8_t *text = marker + MARKER_LEN;
        packet_feed_base64(d, text, (size_t) (d->line + len - text));
}

void smp_serial_decoder_feed(struct smp_serial_decoder *d, const uint8_t *data, size_t len) {
        for (size_t i = 0; i < len; i++) {
                if (data[i] == '\n') {
                        process_line(d);
                        continue;
                }
                if (d->line_len < sizeof(d->line))
                        d->line[d->line_len++] = data[i];
                else
                        d->line_overflow = true;
        }
}
