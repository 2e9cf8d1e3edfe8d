/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-16/XMODEM (poly 0x1021, init given by the caller, no reflection, no
 * final xor): what Zephyr's crc16_itu_t() computes and what the serial SMP
 * framing carries.  None of our chosen libraries offers it, and the
 * bitwise form is short enough to check by eye.
 */
#include "smpgw/smp-serial.h"

uint16_t smp_crc16_xmodem(uint16_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

        for (size_t i = 0; i < len; i++) {
                crc ^= (uint16_t) (p[i] << 8);
                for (int bit = 0; bit < 8; bit++)
                        crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021) : (uint16_t) (crc << 1);
        }
        return crc;
}
