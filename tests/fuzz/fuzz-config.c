/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* smpgwd.conf: the whole INI reader and every key's value parser, on
 * text no longer than a real file may be.  Whatever it accepts must
 * hold together: list counts match their arrays, every add= is a
 * well-formed connection string within SMP_CONN_MAX, every range
 * parses. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf.h"
#include "discovery-range.h"
#include "log.h"
#include "smpgw/smp-transport.h"

/* daemon/main.c defines these in smpgwd; a fuzzer logs nothing. */
int smpgwd_log_max_level = -1;
bool smpgwd_log_to_journal = false;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_list(char **list, size_t n) {
        for (size_t i = 0; i < n; i++)
                assert(list[i] && list[i][0]);
        assert(n == 0 || !list[n]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct config *c = NULL;

        if (size > CONFIG_FILE_MAX || config_new(&c) < 0)
                return 0;
        if (config_parse(c, "fuzz.conf", (const char *) data, size) >= 0 && config_check(c, "fuzz.conf") >= 0) {
                check_list(c->devices, c->n_devices);
                check_list(c->image_keys, c->n_image_keys);
                check_list(c->discover_udp, c->n_discover_udp);
                check_list(c->discover_coap, c->n_discover_coap);
                check_list(c->ble_adapters, c->n_ble_adapters);
                for (size_t i = 0; i < c->n_devices; i++) {
                        assert(strlen(c->devices[i]) <= SMP_CONN_MAX);
                        assert(strchr(c->devices[i], ':'));
                }
                for (size_t i = 0; i < c->n_discover_udp + c->n_discover_coap; i++) {
                        struct discovery_range range;
                        const char *text = i < c->n_discover_udp ? c->discover_udp[i]
                                                                 : c->discover_coap[i - c->n_discover_udp];
                        assert(discovery_range_parse(text, &range) == 0);
                        assert(range.n_targets >= 1 && range.n_targets <= DISCOVERY_RANGE_TARGETS_MAX);
                }
                assert(!!c->rest_tls_cert == !!c->rest_tls_key);
        }
        config_free(c);
        return 0;
}
