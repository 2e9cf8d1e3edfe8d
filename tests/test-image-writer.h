/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test helper: writes MCUboot images byte by byte with OpenSSL, without
 * using lib/mcuboot-build.c, so that the writer and the parser under test
 * are not one shared mistake.  It also writes the wrong things on request
 * (duplicate hash TLVs, no KEYHASH, ...) and reports where everything went,
 * so tests can corrupt precise bytes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

enum tiw_key_type {
        TIW_KEY_ECDSA_P256,
        TIW_KEY_ECDSA_P384,
        TIW_KEY_ED25519,
        TIW_KEY_RSA_2048,
};

/* A fresh key pair; aborts on failure.  EVP_PKEY_free() it. */
EVP_PKEY *tiw_key_new(enum tiw_key_type type);

struct tiw_params {
        uint8_t major, minor;
        uint16_t revision;
        uint32_t build;
        uint32_t load_addr;
        uint32_t flags;
        uint16_t hdr_size;       /* 0: 0x200 */
        size_t body_size;
        uint8_t body_seed;       /* body[i] = i * 31 + seed */
        bool sec_cnt;            /* add a protected SEC_CNT TLV */
        uint32_t sec_cnt_value;
        EVP_PKEY *key;           /* sign with this (borrowed); NULL: unsigned */
        bool no_keyhash;         /* sign without a KEYHASH TLV */
        bool no_hash;            /* leave out the hash TLV */
        bool two_sha256;         /* write the SHA256 TLV twice */
};

struct tiw_layout {
        size_t prot_off;         /* protected area info, if any */
        size_t tlv_off;          /* unprotected area info */
        size_t hash_value_off;   /* value of the (first) hash TLV */
        size_t sig_tlv_off;      /* header of the signature TLV, 0 if none */
        size_t sig_value_off;
        size_t sig_len;
        size_t end;              /* == size */
};

/* Builds an image into *ret (free() it); aborts on failure. */
void tiw_build(const struct tiw_params *p, uint8_t **ret, size_t *ret_size,
               struct tiw_layout *ret_layout);
