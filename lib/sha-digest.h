/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SHA-256/384/512 digests for lib/, smpgwd and the tools, through nettle.
 * Internal and header-only like util.h: not installed, not in the ABI.
 *
 * Not OpenSSL: OpenSSL 3's first digest (SHA256(), EVP_Digest()) loads
 * its default provider and builds its algorithm tables, about 1.9 MiB
 * that smpgwd then keeps for good, and smpgwd hashes a bearer token at
 * start and every image it stores or uploads.  nettle is mapped into
 * smpgwd anyway (GnuTLS, under libmicrohttpd) and its digests work on a
 * context on the stack.  OpenSSL stays where it is needed: MCUboot
 * signatures and keys (mcuboot-verify.c, mcuboot-build.c).
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <nettle/sha2.h>

/* The SHA-256 of the len bytes at data into ret. */
static inline void sha256_of(const void *data, size_t len, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        sha256_update(&ctx, len, data);
        sha256_digest(&ctx, SHA256_DIGEST_SIZE, ret);
}

/* The SHA-2 digest of that length (SHA256_DIGEST_SIZE, SHA384_DIGEST_SIZE
 * or SHA512_DIGEST_SIZE bytes) of the len bytes at data into ret, which
 * holds digest_len bytes; -EINVAL for any other length. */
static inline int sha2_of(size_t digest_len, const void *data, size_t len, uint8_t *ret) {
        struct sha512_ctx ctx;

        switch (digest_len) {
        case SHA256_DIGEST_SIZE:
                sha256_of(data, len, ret);
                return 0;
        case SHA384_DIGEST_SIZE:
                sha384_init(&ctx);
                sha384_update(&ctx, len, data);
                sha384_digest(&ctx, SHA384_DIGEST_SIZE, ret);
                return 0;
        case SHA512_DIGEST_SIZE:
                sha512_init(&ctx);
                sha512_update(&ctx, len, data);
                sha512_digest(&ctx, SHA512_DIGEST_SIZE, ret);
                return 0;
        default:
                return -EINVAL;
        }
}
