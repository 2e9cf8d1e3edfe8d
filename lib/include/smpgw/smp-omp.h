/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OMP: SMP carried over CoAP the way newtmgr's OIC transport and Mynewt's
 * oicmgr do it (newtmgr nmxact/omp/omp.go, mynewt-core
 * mgmt/oicmgr/src/oicmgr.c).
 *
 * Every request is a CoAP PUT to /omgr (resource type "x.mynewt.nmgr").
 * Its payload is ONE CBOR map: the SMP body's own key/value pairs plus
 * the key "_h", whose value is a byte string holding the 8-byte SMP
 * header.  The response has the same shape: the result fields and "_h"
 * with the response op (request op + 1).  Mynewt builds the response as an
 * indefinite-length map with "_h" as its last pair and leaves the
 * header's length field as it was in the request, so a receiver must not
 * trust that field: smp_omp_decode() recomputes it.
 *
 * These functions only move bytes between the two shapes; they do not
 * look at op, group or id.  The pairs are copied byte for byte; only the
 * map head and the "_h" pair are written or dropped.  Input is never
 * trusted: it is first parsed by smp_cbor_parse() (smp-cbor.h), so the
 * map must satisfy its limits (at most SMP_CBOR_MAX_DEPTH levels and
 * SMP_CBOR_MAX_ITEMS items, no tags, no indefinite-length strings;
 * anything else is -EBADMSG), and the output buffer size is respected.
 * Each call allocates the reader's item array for its duration (-ENOMEM).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An OMP payload is at most this many bytes larger than the SMP body it
 * carries: the "_h" key (3 bytes), the byte string head (1), the 8 header
 * bytes, and one more byte when a definite map's pair count needs a longer
 * head.  So a frame of frame_len bytes needs at most frame_len - 8 + 13
 * bytes of payload. */
#define SMP_OMP_OVERHEAD 13u

/* The key of the header pair. */
#define SMP_OMP_HEADER_KEY "_h"

/* Turns an SMP frame (8-byte header + CBOR map body) into an OMP payload:
 * the body's map with "_h" added as its last pair.  Definite and
 * indefinite-length maps are kept as they are (a definite map's count
 * grows by one); an empty body (length 0) is taken as {}.  frame and out
 * must not overlap.
 *
 * Returns the payload size; -EBADMSG when the frame is shorter than a
 * header, the header's length does not match the body, or the body is
 * not exactly one well-formed CBOR map; -EEXIST when the body already has
 * a top-level "_h" key; -ENOBUFS when out is too small
 * (frame_len - 8 + SMP_OMP_OVERHEAD is always enough). */
int smp_omp_encode(const uint8_t *frame, size_t frame_len, uint8_t *out, size_t out_size);

/* Turns an OMP payload back into an SMP frame: the header is the value of
 * the top-level "_h" key (which must be a definite byte string of exactly
 * 8 bytes, present once), the body is the map without the "_h" pair, in
 * the same definite or indefinite form, and the header's length field is
 * set to the rebuilt body's length.  payload and out must not overlap.
 *
 * Returns the frame size; -EBADMSG when the payload is not exactly one
 * well-formed CBOR map, or "_h" is missing, repeated, not a byte string
 * or not 8 bytes long; -EMSGSIZE when the body would not fit the header's
 * 16-bit length field; -ENOBUFS when out is too small (payload_len is
 * always enough). */
int smp_omp_decode(const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_size);

#ifdef __cplusplus
}
#endif
