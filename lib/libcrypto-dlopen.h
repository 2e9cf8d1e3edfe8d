/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OpenSSL's libcrypto, dlopen()ed on first use rather than linked.
 *
 * libsmpgw needs OpenSSL for MCUboot signatures and keys only
 * (mcuboot-verify.c, mcuboot-build.c); digests and base64 are nettle's.
 * Linked, libcrypto (and its relocations and data, about 1.4 MiB resident
 * in smpgwd) is mapped into every program of libsmpgw, although a gateway
 * without [images] keys never calls it.  So libsmpgw does not link it:
 * the first function that needs a key calls libcrypto_dlopen(), which
 * loads LIBCRYPTO_SONAME and resolves the functions below into sym_*
 * pointers, once per process; a program that links libcrypto itself
 * (to hand mcuboot_key_from_pkey() an EVP_PKEY) gets its own copy back
 * from dlopen(), the same one.
 *
 * The public header still includes <openssl/evp.h> (EVP_PKEY is in the
 * API), and libsmpgw.pc still requires libcrypto: users compile and link
 * as before.  Internal: not installed, not exported (libsmpgw.sym).
 *
 * Every function that makes an EVP_PKEY (and so a struct mcuboot_key)
 * has loaded libcrypto first; code that only ever sees a key may call
 * sym_* without loading it again.
 */
#pragma once

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_MAJOR < 3
#error "libsmpgw loads libcrypto of OpenSSL 3 (libcrypto.so.3)"
#endif

#define LIBCRYPTO_STRINGIFY_(x) #x
#define LIBCRYPTO_STRINGIFY(x) LIBCRYPTO_STRINGIFY_(x)
/* "libcrypto.so.3": the SONAME of the OpenSSL the build compiled against. */
#define LIBCRYPTO_SONAME "libcrypto.so." LIBCRYPTO_STRINGIFY(OPENSSL_SHLIB_VERSION)

/* Every libcrypto function libsmpgw calls, by its real name (not the
 * compatibility macros: EVP_PKEY_base_id is EVP_PKEY_get_base_id,
 * OPENSSL_free is CRYPTO_free). */
#define LIBCRYPTO_FUNCTIONS(X)              \
        X(BIO_free)                         \
        X(BIO_new_mem_buf)                  \
        X(CRYPTO_free)                      \
        X(EVP_DigestSign)                   \
        X(EVP_DigestSignInit)               \
        X(EVP_DigestVerify)                 \
        X(EVP_DigestVerifyInit)             \
        X(EVP_MD_CTX_free)                  \
        X(EVP_MD_CTX_new)                   \
        X(EVP_PKEY_CTX_free)                \
        X(EVP_PKEY_CTX_new)                 \
        X(EVP_PKEY_CTX_set_rsa_mgf1_md)     \
        X(EVP_PKEY_CTX_set_rsa_padding)     \
        X(EVP_PKEY_CTX_set_rsa_pss_saltlen) \
        X(EVP_PKEY_CTX_set_signature_md)    \
        X(EVP_PKEY_free)                    \
        X(EVP_PKEY_get_base_id)             \
        X(EVP_PKEY_get_bits)                \
        X(EVP_PKEY_get_group_name)          \
        X(EVP_PKEY_sign)                    \
        X(EVP_PKEY_sign_init)               \
        X(EVP_PKEY_up_ref)                  \
        X(EVP_PKEY_verify)                  \
        X(EVP_PKEY_verify_init)             \
        X(EVP_sha256)                       \
        X(OBJ_sn2nid)                       \
        X(OBJ_txt2nid)                      \
        X(PEM_read_bio)                     \
        X(d2i_AutoPrivateKey)               \
        X(d2i_PUBKEY)                       \
        X(d2i_PublicKey)                    \
        X(i2d_PUBKEY)                       \
        X(i2d_PublicKey)

#define LIBCRYPTO_DECLARE_SYM(name) extern typeof(name) *sym_##name;
LIBCRYPTO_FUNCTIONS(LIBCRYPTO_DECLARE_SYM)
#undef LIBCRYPTO_DECLARE_SYM

/*
 * Loads libcrypto and resolves every sym_* pointer, the first time; later
 * calls (from any thread) return the first one's result.  Returns 0, or
 * -ELIBACC when the library or one of its functions cannot be found:
 * the public functions pass that on, and their callers name
 * LIBCRYPTO_SONAME (this header is the project's, not installed).
 */
int libcrypto_dlopen(void);
