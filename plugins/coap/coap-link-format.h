/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The coap transport's reading of a CoAP link-format body (RFC 6690), the
 * payload of a multicast discovery reply: bytes from any host on the
 * link.  Internal to the plugin; its own file so that
 * tests/fuzz/fuzz-coap-link-format compiles it without libcoap.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Links looked at in one reply before giving up on it. */
#define COAP_LINK_FORMAT_LINKS_MAX 64u

/* Whether the body p[0..n) (not NUL-terminated) has a link to /omgr whose
 * rt lists the wanted type (any /omgr link when rt is "").  Bounded by n
 * and COAP_LINK_FORMAT_LINKS_MAX; anything malformed ends the scan with
 * what was seen so far. */
bool coap_link_format_lists_omgr(const char *p, size_t n, const char *rt);
