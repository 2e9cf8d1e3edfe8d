/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MCUboot image parsing, hash check and signature verification.  The keys
 * are the public halves of tests/data/key-ecdsa-p256.pem and
 * key-ed25519.pem, so seeds made from tests/data/imgtool-*.bin reach the
 * KEYHASH match and the signature check itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "smpgw/mcuboot-image.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key_ecdsa_p256[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHE89vkbTQVVWk/tyUoI0an3qRGbA\n"
        "4ev2j/lbHjl13R8bK4k3hI0cdpUEj9PzPOMmZJxAVEysuHZUw8ToRA+nPA==\n"
        "-----END PUBLIC KEY-----\n";
static const char key_ed25519[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAmJINK24+lH6rvWK0ODEtMqY2+ri3bg+tu/UBruW6dT4=\n"
        "-----END PUBLIC KEY-----\n";

static struct mcuboot_key *keys[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mcuboot_image *img = NULL;
        struct mcuboot_error error;
        volatile size_t sink = 0;

        if (!keys[0] &&
            (mcuboot_key_load_mem(key_ecdsa_p256, sizeof(key_ecdsa_p256) - 1, "p256", &keys[0]) < 0 ||
             mcuboot_key_load_mem(key_ed25519, sizeof(key_ed25519) - 1, "ed25519", &keys[1]) < 0))
                abort();

        /* Inputs that look like DER or PEM also go to the key loader.  Only
         * those: OpenSSL's decoders take milliseconds per call, and images
         * start with 0x3d. */
        if (size > 0 && (data[0] == 0x30 || data[0] == '-')) {
                struct mcuboot_key *k = NULL;
                if (mcuboot_key_load_mem(data, size, "fuzz", &k) == 0)
                        mcuboot_key_free(k);
        }

        if (mcuboot_image_parse(data, size, &img, &error) < 0)
                return 0;

        /* Touch every byte the parser hands out, so ASan checks the bounds. */
        for (size_t i = 0; i < img->n_tlvs; i++)
                for (size_t j = 0; j < img->tlvs[i].len; j++)
                        sink += img->tlvs[i].value[j];

        struct mcuboot_sig_result *res = NULL;
        size_t n = 0;
        if (mcuboot_image_verify(img, keys, ELEMENTSOF(keys), &res, &n) >= 0) {
                for (size_t i = 0; i < n; i++)
                        sink += res[i].status + res[i].sig_tlv->len;
                free(res);
        }
        mcuboot_image_free(img);
        (void) sink;
        return 0;
}
