/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounded CBOR for SMP bodies: a writer into caller buffers and a reader for
 * untrusted input, both on top of libcbor's allocation-free primitives
 * (cbor_encode_* and cbor_stream_decode).
 *
 * Writer: the first overflow sets -ENOBUFS and sticks, so a body is encoded
 * with a run of put calls and one check at the end.  Containers are written
 * with a known count (canonical, what the client sends) or, when the writer
 * is switched to indefinite style, as 0xBF/0x9F ... 0xFF the way Zephyr's
 * zcbor does without CONFIG_ZCBOR_CANONICAL (what the device simulator
 * sends).  Encoders always close containers with smp_cbor_put_end(), which
 * writes the break only in indefinite style.
 *
 * Reader: smp_cbor_parse() decodes one body into a flat array of items in
 * document order.  Each container records its child count and every item
 * the index of its next sibling, so unknown subtrees are skipped in O(1).
 * Limits, all enforced before anything is stored:
 *   - the body is exactly one map: another top-level type, trailing bytes
 *     after the map or a map running past the given length is an error;
 *   - at most SMP_CBOR_MAX_DEPTH nested maps/arrays (the body map counts);
 *   - at most max_items items (the caller's array; never more than one
 *     item per body byte, so an array of `len` items can never overflow);
 *   - definite and indefinite-length maps and arrays are both accepted
 *     (zcbor emits indefinite ones by default, see doc/ and the tests);
 *   - indefinite-length byte/text strings (0x5F/0x7F) are rejected: zcbor
 *     never emits them (it re-encodes string headers as definite), and
 *     accepting them would need copying to give callers one slice;
 *   - tags are rejected (SMP never uses them); floats, null and undefined
 *     are accepted as items and can be skipped like anything else.
 * Text is not checked for valid UTF-8.  Slices point into the body, which
 * must outlive the document and everything decoded from it.
 *
 * Why indefinite-length containers matter: zcbor's list_map_start_encode()
 * (NordicSemiconductor/zcbor src/zcbor_encode.c) writes the head byte
 * major|31 (0x9F/0xBF) and list_map_end_encode() a 0xFF break unless
 * ZCBOR_CANONICAL is defined; only then does it back-patch a definite
 * count.  In Zephyr that define comes from CONFIG_ZCBOR_CANONICAL
 * (modules/zcbor/Kconfig: "Enabling this will prevent zcbor from creating
 * lists and maps with indefinite-length arrays"), a bool with no default,
 * and subsys/mgmt/mcumgr/Kconfig selects ZCBOR but not ZCBOR_CANONICAL.  So
 * a default mcumgr build answers e.g. {"r": "hi"} as BF 61 72 62 68 69 FF.
 * Strings are always definite in zcbor (string heads are re-encoded with
 * their final length), hence the refusal of indefinite strings above.
 * Duplicate keys: Zephyr's zcbor_map_decode_bulk() rejects a known key
 * seen twice; smp_cbor_map_find() does the same.
 *
 * Errors are negative errno: -EBADMSG for malformed or wrongly typed input,
 * -ENOENT for an absent key, -ERANGE for a number that does not fit the
 * requested C type, -E2BIG for too many items.  When a struct
 * smp_cbor_error is given it receives a sentence naming the field, e.g.
 * "field 'off': expected unsigned integer, got text string".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a text or byte string.  Decoded slices borrow the body; a slice
 * with ptr == NULL means "absent" in optional request/response fields. */
struct smp_cbor_slice {
        const uint8_t *ptr;
        size_t len;
};

#define SMP_CBOR_SLICE_LIT(s) ((struct smp_cbor_slice) { (const uint8_t *) ("" s), sizeof(s) - 1 })

static inline struct smp_cbor_slice smp_cbor_slice_make(const void *ptr, size_t len) {
        return (struct smp_cbor_slice) { (const uint8_t *) ptr, len };
}

static inline bool smp_cbor_slice_present(struct smp_cbor_slice s) {
        return s.ptr != NULL;
}

/* A NUL-terminated string as a slice; NULL gives an absent slice. */
struct smp_cbor_slice smp_cbor_slice_str(const char *s);

/* Whether the slice holds exactly the bytes of text (an absent slice never
 * matches). */
bool smp_cbor_slice_eq(struct smp_cbor_slice s, const char *text);

/* Copies a slice into buf as a NUL-terminated string.  Returns the length,
 * -ENAMETOOLONG when it does not fit, -EBADMSG when the slice contains a
 * NUL byte (it could not be used as a C string faithfully). */
int smp_cbor_slice_copy(struct smp_cbor_slice s, char *buf, size_t size);

/* ------------------------------------------------------------------ */
/* Writer                                                              */

struct smp_cbor_writer {
        uint8_t *buf;
        size_t cap;
        size_t len;
        int err;          /* 0, or the first error (-ENOBUFS); sticks */
        bool indefinite;  /* maps/arrays as 0xBF/0x9F ... 0xFF (zcbor style) */
};

void smp_cbor_writer_init(struct smp_cbor_writer *w, uint8_t *buf, size_t cap);

/* Every put returns w->err after the call, so callers may check each one or
 * only the last. */
int smp_cbor_put_map(struct smp_cbor_writer *w, size_t n_pairs);
int smp_cbor_put_array(struct smp_cbor_writer *w, size_t n_items);
/* Closes the innermost map or array: 0xFF in indefinite style, nothing in
 * definite style (the count was in the head). */
int smp_cbor_put_end(struct smp_cbor_writer *w);
int smp_cbor_put_uint(struct smp_cbor_writer *w, uint64_t value);
int smp_cbor_put_int(struct smp_cbor_writer *w, int64_t value);
int smp_cbor_put_bool(struct smp_cbor_writer *w, bool value);
int smp_cbor_put_null(struct smp_cbor_writer *w);
int smp_cbor_put_text(struct smp_cbor_writer *w, const char *text);
int smp_cbor_put_text_slice(struct smp_cbor_writer *w, struct smp_cbor_slice text);
int smp_cbor_put_bytes(struct smp_cbor_writer *w, const void *data, size_t len);

/* Returns the number of bytes written, or the sticky error. */
int smp_cbor_writer_finish(const struct smp_cbor_writer *w);

/* Writes {} (the body of most read requests and of reset responses).
 * Returns w->err. */
int smp_cbor_put_empty_map(struct smp_cbor_writer *w);

/* Exact sizes, for chunk computations.  The head of an unsigned integer,
 * string length or container count is 1, 2, 3, 5 or 9 bytes for values
 * < 24, < 256, < 65536, < 2^32 and larger. */
size_t smp_cbor_head_size(uint64_t value);
static inline size_t smp_cbor_uint_size(uint64_t value) {
        return smp_cbor_head_size(value);
}
static inline size_t smp_cbor_text_size(size_t len) {
        return smp_cbor_head_size(len) + len;
}
static inline size_t smp_cbor_bytes_size(size_t len) {
        return smp_cbor_head_size(len) + len;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

#define SMP_CBOR_MAX_DEPTH 8
/* Items the typed decoders allow per body (smp_cbor_parse_alloc():
 * 32 bytes for each item a body holds, 128 KiB for this many). */
#define SMP_CBOR_MAX_ITEMS 4096

enum smp_cbor_type {
        SMP_CBOR_UINT = 1,
        SMP_CBOR_NEGINT,     /* v.u = n, the value is -1 - n */
        SMP_CBOR_BYTES,      /* v.s */
        SMP_CBOR_TEXT,       /* v.s, not checked for UTF-8 */
        SMP_CBOR_ARRAY,      /* count = elements */
        SMP_CBOR_MAP,        /* count = pairs; keys and values alternate */
        SMP_CBOR_BOOL,       /* v.b */
        SMP_CBOR_NULL,
        SMP_CBOR_UNDEFINED,
        SMP_CBOR_FLOAT,      /* v.f */
};

struct smp_cbor_item {
        uint8_t type;        /* enum smp_cbor_type */
        uint8_t depth;       /* number of enclosing containers; body map = 0 */
        uint16_t reserved;
        uint32_t offset;     /* byte offset of the item's head in the body */
        uint32_t next;       /* index of the first item after this subtree */
        uint32_t count;      /* map pairs / array elements */
        union {
                uint64_t u;
                bool b;
                double f;
                struct smp_cbor_slice s;
        } v;
};

struct smp_cbor_error {
        int code;            /* the negative errno returned */
        size_t offset;       /* byte offset in the body the error refers to */
        char message[192];
};

/* A parsed body.  Item 0 is the body map.  Borrows body and items. */
struct smp_cbor_doc {
        const uint8_t *body;
        size_t len;
        const struct smp_cbor_item *items;
        size_t n_items;
        struct smp_cbor_error *error;  /* borrowed, may be NULL; getters
                                        * write their failures here */
};

#define SMP_CBOR_ROOT 0u

/* Parses a body into items[0..max_items).  error (may be NULL) is written
 * only on failure, and later getter failures on this document go there
 * too.  Returns 0, -EBADMSG (malformed, truncated, trailing bytes, not a
 * map, too deep, unsupported item), -E2BIG (more than max_items items),
 * -EINVAL (bad arguments). */
int smp_cbor_parse(const uint8_t *body, size_t len,
                   struct smp_cbor_item *items, size_t max_items,
                   struct smp_cbor_error *error, struct smp_cbor_doc *ret);

const char *smp_cbor_type_name(int type);

/* Records a failure on the document's error (if any) and returns code. */
int smp_cbor_doc_fail(const struct smp_cbor_doc *doc, int code, size_t offset,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Finds key (a text key) in the map at index map.  Non-text keys never
 * match.  Returns 0 with the value's index, -ENOENT when absent (quietly:
 * no message is recorded), -EBADMSG
 * when the key occurs more than once (as Zephyr's zcbor_map_decode_bulk()
 * does: a known key twice is an error; unknown duplicates are not looked
 * at), -EINVAL when map is not a map. */
int smp_cbor_map_find(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                      uint32_t *ret_index);

/* Typed access to one item; field names the item in error messages
 * ("off", "images[].hash").  -EBADMSG on a wrong type, -ERANGE when the
 * number does not fit. */
int smp_cbor_item_uint(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                       uint64_t *ret);
int smp_cbor_item_u32(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                      uint32_t *ret);
int smp_cbor_item_int(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                      int64_t *ret);
int smp_cbor_item_bool(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                       bool *ret);
int smp_cbor_item_text(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                       struct smp_cbor_slice *ret);
int smp_cbor_item_bytes(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                        struct smp_cbor_slice *ret);
int smp_cbor_item_map(const struct smp_cbor_doc *doc, uint32_t index, const char *field);
int smp_cbor_item_array(const struct smp_cbor_doc *doc, uint32_t index, const char *field);

/* Find + typed access in one call: -ENOENT (with a "missing" message) when
 * the key is absent. */
int smp_cbor_map_get_uint(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          uint64_t *ret);
int smp_cbor_map_get_u32(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                         uint32_t *ret);
int smp_cbor_map_get_int(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                         int64_t *ret);
int smp_cbor_map_get_bool(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          bool *ret);
int smp_cbor_map_get_text(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          struct smp_cbor_slice *ret);
int smp_cbor_map_get_bytes(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                           struct smp_cbor_slice *ret);
/* ret is the index of the map/array value. */
int smp_cbor_map_get_map(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                         uint32_t *ret);
int smp_cbor_map_get_array(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                           uint32_t *ret);

/* Optional fields: return 1 with *ret written when present and well
 * typed, 0 when absent (*ret untouched), negative like the getters. */
int smp_cbor_map_opt_uint(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          uint64_t *ret);
int smp_cbor_map_opt_u32(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                         uint32_t *ret);
int smp_cbor_map_opt_int(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                         int64_t *ret);
int smp_cbor_map_opt_bool(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          bool *ret);
int smp_cbor_map_opt_text(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                          struct smp_cbor_slice *ret);
int smp_cbor_map_opt_bytes(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                           struct smp_cbor_slice *ret);

/* Iteration over the children of a map or array:
 *     struct smp_cbor_iter it;
 *     smp_cbor_iter_init(doc, map, &it);
 *     while (smp_cbor_iter_next_pair(doc, &it, &k, &v)) ...
 * Arrays use smp_cbor_iter_next(). */
struct smp_cbor_iter {
        uint32_t pos;
        uint32_t left;
};

void smp_cbor_iter_init(const struct smp_cbor_doc *doc, uint32_t container, struct smp_cbor_iter *it);
bool smp_cbor_iter_next(const struct smp_cbor_doc *doc, struct smp_cbor_iter *it, uint32_t *ret_index);
bool smp_cbor_iter_next_pair(const struct smp_cbor_doc *doc, struct smp_cbor_iter *it,
                             uint32_t *ret_key, uint32_t *ret_value);

/* Convenience for the typed decoders: parses a body of up to
 * MIN(len, SMP_CBOR_MAX_ITEMS) items (at least 1; -E2BIG beyond) into an
 * array of exactly the items it holds, 32 bytes each (room for 64 on the
 * stack first, on the heap and doubled while the body holds more).
 * *ret_items takes ownership of the array (free() it after the last use
 * of the document); written only on success. */
int smp_cbor_parse_alloc(const uint8_t *body, size_t len, struct smp_cbor_error *error,
                         struct smp_cbor_item **ret_items, struct smp_cbor_doc *ret);

#ifdef __cplusplus
}
#endif
