/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broken transport plugins for test-transports' loader checks, one module
 * per BAD_KIND:
 *   1  smpgw-transport-badabi.so:  a descriptor from a future ABI
 *   2  smpgw-transport-badname.so: a descriptor naming another scheme
 *   3  smpgw-transport-nosym.so:   no descriptor at all
 */
#include <errno.h>

#include <smpgw/smp-transport.h>

static int bad_open(sd_event *event, const char *address, const struct smp_link_callbacks *cb,
                    void *userdata, struct smp_link **ret) {
        return -ENOSYS;
}
static void bad_close(struct smp_link *link) {
}
static int bad_send(struct smp_link *link, const uint8_t *frame, size_t len) {
        return -ENOSYS;
}
static void bad_get_info(struct smp_link *link, struct smp_link_info *ret) {
}
static void bad_get_stats(struct smp_link *link, struct smp_link_stats *ret) {
}

#if BAD_KIND == 1 || BAD_KIND == 2
const struct smp_transport smpgw_transport_plugin = {
#if BAD_KIND == 1
        .abi_version = SMP_TRANSPORT_ABI_VERSION + 1,
        .name = "badabi",
#else
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .name = "udp",
#endif
        .open = bad_open,
        .close = bad_close,
        .send = bad_send,
        .get_info = bad_get_info,
        .get_stats = bad_get_stats,
};
#else
const struct smp_transport not_the_symbol = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .name = "nosym",
        .open = bad_open,
        .close = bad_close,
        .send = bad_send,
        .get_info = bad_get_info,
        .get_stats = bad_get_stats,
};
#endif
