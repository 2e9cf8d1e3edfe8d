/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broken transport plugins for test-transports' loader checks, one module
 * per BAD_KIND:
 *   1  smpgw-transport-badabi.so:  a descriptor from a future ABI (3)
 *   2  smpgw-transport-badname.so: a descriptor naming another scheme
 *   3  smpgw-transport-nosym.so:   no descriptor at all
 *   4  smpgw-transport-badsize.so: ABI version 2, but a descriptor that
 *                                  says it is 16 bytes
 *   5  smpgw-transport-badv1.so:   a descriptor of ABI version 1 (its
 *                                  layout: version, name, functions)
 */
#include <errno.h>

#include <smpgw/smp-transport.h>

__attribute__((unused)) static int bad_open(struct smp_transport_instance *instance, sd_event *event, const struct smp_conn *conn,
                    const struct smp_link_callbacks *cb, void *userdata, struct smp_link **ret) {
        return -ENOSYS;
}
__attribute__((unused)) static void bad_close(struct smp_link *link) {
}
__attribute__((unused)) static int bad_send(struct smp_link *link, const uint8_t *frame, size_t len) {
        return -ENOSYS;
}
__attribute__((unused)) static void bad_get_info(struct smp_link *link, struct smp_link_info *ret) {
}
__attribute__((unused)) static void bad_get_stats(struct smp_link *link, struct smp_link_stats *ret) {
}
__attribute__((unused)) static int bad_instance_new(const struct smp_host *host, struct smp_transport_instance **ret) {
        return -ENOSYS;
}
__attribute__((unused)) static void bad_instance_free(struct smp_transport_instance *instance) {
}
__attribute__((unused)) static const struct smp_conn_syntax bad_syntax = { .address = SMP_CONN_ADDRESS_INET };

#define BAD_FUNCTIONS                                  \
        .conn_syntax = &bad_syntax,                    \
        .instance_new = bad_instance_new,              \
        .instance_free = bad_instance_free,            \
        .open = bad_open,                              \
        .close = bad_close,                            \
        .send = bad_send,                              \
        .get_info = bad_get_info,                      \
        .get_stats = bad_get_stats

#if BAD_KIND == 1
const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION + 1,
        .struct_size = sizeof(struct smp_transport),
        .name = "badabi",
        BAD_FUNCTIONS,
};
#elif BAD_KIND == 2
const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "udp",
        BAD_FUNCTIONS,
};
#elif BAD_KIND == 3
const struct smp_transport not_the_symbol = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = sizeof(struct smp_transport),
        .name = "nosym",
        BAD_FUNCTIONS,
};
#elif BAD_KIND == 4
const struct smp_transport smpgw_transport_plugin = {
        .abi_version = SMP_TRANSPORT_ABI_VERSION,
        .struct_size = 16,
        .name = "badsize",
        BAD_FUNCTIONS,
};
#else
/* What a plugin built against the version 1 header exported. */
const struct {
        uint32_t abi_version;
        const char *name;
        const char *description;
        void (*functions[7])(void);
} smpgw_transport_plugin = {
        .abi_version = 1,
        .name = "badv1",
};
#endif
