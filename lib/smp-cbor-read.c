/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bounded CBOR reader for untrusted SMP bodies (limits: see smp-cbor.h).
 *
 * libcbor's cbor_stream_decode() decodes exactly one head (or scalar, or
 * definite string) per call and tracks no nesting.  Its callbacks only
 * describe that one token into a small struct; all structure checks (depth,
 * counts, breaks, item limit, top-level map, trailing bytes) happen in the
 * loop of smp_cbor_parse() with a fixed-size stack of open containers.
 */
#include <cbor.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-cbor.h"
#include "util.h"

/* Items smp_cbor_parse_alloc() makes room for at first, on the stack
 * (2 KiB of them); SMP bodies rarely hold more. */
#define SMP_CBOR_ITEMS_FIRST 64u

/* libcbor 0.9.0 changed the string/array/map callback lengths from size_t
 * to uint64_t (CHANGELOG.md); Debian 12 has 0.8.0, Debian 13 0.10.2. */
#if CBOR_MAJOR_VERSION > 0 || CBOR_MINOR_VERSION >= 9
typedef uint64_t cbor_cb_len_t;
#else
typedef size_t cbor_cb_len_t;
#endif

enum token_kind {
        TOKEN_NONE,
        TOKEN_UINT,
        TOKEN_NEGINT,
        TOKEN_BYTES,
        TOKEN_TEXT,
        TOKEN_ARRAY,
        TOKEN_MAP,
        TOKEN_INDEF_ARRAY,
        TOKEN_INDEF_MAP,
        TOKEN_BREAK,
        TOKEN_BOOL,
        TOKEN_NULL,
        TOKEN_UNDEFINED,
        TOKEN_FLOAT,
        TOKEN_TAG,
        TOKEN_INDEF_BYTES,
        TOKEN_INDEF_TEXT,
};

struct token {
        enum token_kind kind;
        uint64_t u;       /* integer value, or container count */
        double f;
        bool b;
        const uint8_t *ptr;
        uint64_t len;
};

static void on_uint8(void *ctx, uint8_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_UINT, .u = v };
}
static void on_uint16(void *ctx, uint16_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_UINT, .u = v };
}
static void on_uint32(void *ctx, uint32_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_UINT, .u = v };
}
static void on_uint64(void *ctx, uint64_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_UINT, .u = v };
}
static void on_negint8(void *ctx, uint8_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_NEGINT, .u = v };
}
static void on_negint16(void *ctx, uint16_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_NEGINT, .u = v };
}
static void on_negint32(void *ctx, uint32_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_NEGINT, .u = v };
}
static void on_negint64(void *ctx, uint64_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_NEGINT, .u = v };
}
static void on_bytes(void *ctx, cbor_data data, cbor_cb_len_t len) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_BYTES, .ptr = data, .len = len };
}
static void on_text(void *ctx, cbor_data data, cbor_cb_len_t len) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_TEXT, .ptr = data, .len = len };
}
static void on_indef_bytes(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_INDEF_BYTES };
}
static void on_indef_text(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_INDEF_TEXT };
}
static void on_array(void *ctx, cbor_cb_len_t n) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_ARRAY, .u = n };
}
static void on_indef_array(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_INDEF_ARRAY };
}
static void on_map(void *ctx, cbor_cb_len_t n) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_MAP, .u = n };
}
static void on_indef_map(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_INDEF_MAP };
}
static void on_tag(void *ctx, uint64_t v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_TAG, .u = v };
}
static void on_float(void *ctx, float v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_FLOAT, .f = v };
}
static void on_double(void *ctx, double v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_FLOAT, .f = v };
}
static void on_null(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_NULL };
}
static void on_undefined(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_UNDEFINED };
}
static void on_bool(void *ctx, bool v) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_BOOL, .b = v };
}
static void on_break(void *ctx) {
        *(struct token *) ctx = (struct token) { .kind = TOKEN_BREAK };
}

/* Every slot is set: libcbor calls callbacks without NULL checks.  Note the
 * field names: in libcbor `byte_string`/`string` are the definite strings
 * and `byte_string_start`/`string_start` the indefinite ones. */
static const struct cbor_callbacks token_callbacks = {
        .uint8 = on_uint8,
        .uint16 = on_uint16,
        .uint32 = on_uint32,
        .uint64 = on_uint64,
        .negint8 = on_negint8,
        .negint16 = on_negint16,
        .negint32 = on_negint32,
        .negint64 = on_negint64,
        .byte_string = on_bytes,
        .byte_string_start = on_indef_bytes,
        .string = on_text,
        .string_start = on_indef_text,
        .array_start = on_array,
        .indef_array_start = on_indef_array,
        .map_start = on_map,
        .indef_map_start = on_indef_map,
        .tag = on_tag,
        .float2 = on_float,
        .float4 = on_float,
        .float8 = on_double,
        .undefined = on_undefined,
        .null = on_null,
        .boolean = on_bool,
        .indef_break = on_break,
};

const char *smp_cbor_type_name(int type) {
        switch (type) {
        case SMP_CBOR_UINT:
                return "unsigned integer";
        case SMP_CBOR_NEGINT:
                return "negative integer";
        case SMP_CBOR_BYTES:
                return "byte string";
        case SMP_CBOR_TEXT:
                return "text string";
        case SMP_CBOR_ARRAY:
                return "array";
        case SMP_CBOR_MAP:
                return "map";
        case SMP_CBOR_BOOL:
                return "boolean";
        case SMP_CBOR_NULL:
                return "null";
        case SMP_CBOR_UNDEFINED:
                return "undefined";
        case SMP_CBOR_FLOAT:
                return "floating-point number";
        default:
                return "unknown item";
        }
}

_printf_(4, 0)
static void error_vset(struct smp_cbor_error *error, int code, size_t offset, const char *fmt,
                       va_list ap) {
        if (!error)
                return;
        error->code = code;
        error->offset = offset;
        vsnprintf(error->message, sizeof(error->message), fmt, ap);
}

_printf_(4, 5)
static int parse_fail(struct smp_cbor_error *error, int code, size_t offset, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        error_vset(error, code, offset, fmt, ap);
        va_end(ap);
        return code;
}

int smp_cbor_doc_fail(const struct smp_cbor_doc *doc, int code, size_t offset, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        error_vset(doc ? doc->error : NULL, code, offset, fmt, ap);
        va_end(ap);
        return code;
}

static enum smp_cbor_type token_item_type(enum token_kind kind) {
        switch (kind) {
        case TOKEN_UINT:
                return SMP_CBOR_UINT;
        case TOKEN_NEGINT:
                return SMP_CBOR_NEGINT;
        case TOKEN_BYTES:
                return SMP_CBOR_BYTES;
        case TOKEN_TEXT:
                return SMP_CBOR_TEXT;
        case TOKEN_ARRAY:
        case TOKEN_INDEF_ARRAY:
                return SMP_CBOR_ARRAY;
        case TOKEN_MAP:
        case TOKEN_INDEF_MAP:
                return SMP_CBOR_MAP;
        case TOKEN_BOOL:
                return SMP_CBOR_BOOL;
        case TOKEN_NULL:
                return SMP_CBOR_NULL;
        case TOKEN_UNDEFINED:
                return SMP_CBOR_UNDEFINED;
        case TOKEN_FLOAT:
                return SMP_CBOR_FLOAT;
        default:
                return 0;
        }
}

/* The argument of the complete CBOR head at p (RFC 8949, section 3): a
 * string's length, a container's count. */
static uint64_t head_argument(const uint8_t *p) {
        uint8_t info = p[0] & 0x1f;
        unsigned size = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : info == 27 ? 8 : 0;
        uint64_t v = 0;

        if (size == 0)
                return info;
        for (unsigned i = 1; i <= size; i++)
                v = v << 8 | p[i];
        return v;
}

struct open_container {
        uint32_t index;      /* item index of the container */
        uint64_t remaining;  /* definite: child items still expected */
        uint32_t children;   /* child items seen so far */
        bool indefinite;
};

/* Where a parse stores its items: room for `room` of them at `items`,
 * and -E2BIG past `max`.  With `heap` set, a parse that runs out of room
 * below max moves the items to the heap, into twice the room, as often as
 * it needs (*heap then owns them, and items points there). */
struct item_room {
        struct smp_cbor_item *items;
        size_t room;
        size_t max;
        struct smp_cbor_item **heap;
};

static int room_grow(struct item_room *r, size_t n) {
        size_t room = MIN(r->max, 2 * r->room);
        struct smp_cbor_item *p;

        if (*r->heap)
                p = realloc(*r->heap, room * sizeof(*p));
        else {
                p = malloc(room * sizeof(*p));
                if (p)
                        memcpy(p, r->items, n * sizeof(*p));
        }
        if (!p)
                return -ENOMEM;
        *r->heap = r->items = p;
        r->room = room;
        return 0;
}

static int parse_items(const uint8_t *body, size_t len, struct item_room *room, struct smp_cbor_error *error,
                       size_t *ret_n) {
        struct open_container stack[SMP_CBOR_MAX_DEPTH];
        size_t depth = 0, n = 0, pos = 0;

        if (len == 0)
                return parse_fail(error, -EBADMSG, 0, "body is empty, expected a CBOR map");

        for (;;) {
                struct token tok = { .kind = TOKEN_NONE };
                size_t item_offset = pos;

                if (pos >= len)
                        return parse_fail(error, -EBADMSG, pos,
                                          "body truncated: %zu map/array level(s) still open at its end (byte %zu)",
                                          depth, len);

                struct cbor_decoder_result res = cbor_stream_decode(body + pos, len - pos,
                                                                    &token_callbacks, &tok);
                if (res.status == CBOR_DECODER_NEDATA)
                        return parse_fail(error, -EBADMSG, pos,
                                          "body truncated: the item at byte %zu runs past its end (%zu bytes)",
                                          pos, len);
                if (res.status != CBOR_DECODER_FINISHED || res.read == 0 || res.read > len - pos ||
                    tok.kind == TOKEN_NONE)
                        return parse_fail(error, -EBADMSG, pos,
                                          "malformed CBOR: invalid initial byte 0x%02x at byte %zu",
                                          body[pos], pos);
                /* libcbor before 0.9 hands lengths and counts over as
                 * size_t: on a 32-bit system one of 2^32 or more arrives cut
                 * to its low 32 bits (2^32 + 1 as 1), and the bytes after it
                 * would be read as the items that follow.  No such length
                 * fits a body (at most UINT32_MAX bytes): compare with the
                 * head's own argument. */
                if (tok.kind == TOKEN_BYTES || tok.kind == TOKEN_TEXT ||
                    tok.kind == TOKEN_ARRAY || tok.kind == TOKEN_MAP) {
                        uint64_t announced = head_argument(body + item_offset);
                        uint64_t decoded = tok.kind == TOKEN_BYTES || tok.kind == TOKEN_TEXT ? tok.len : tok.u;
                        if (announced != decoded)
                                return parse_fail(error, -EBADMSG, item_offset,
                                                  "body truncated: %s at byte %zu announces %" PRIu64 " bytes or entries, only %zu bytes follow",
                                                  smp_cbor_type_name(token_item_type(tok.kind)), item_offset,
                                                  announced, len - pos);
                }
                pos += res.read;

                switch (tok.kind) {
                case TOKEN_TAG:
                        return parse_fail(error, -EBADMSG, item_offset,
                                          "CBOR tag %" PRIu64 " at byte %zu is not supported", tok.u, item_offset);
                case TOKEN_INDEF_BYTES:
                case TOKEN_INDEF_TEXT:
                        return parse_fail(error, -EBADMSG, item_offset,
                                          "indefinite-length %s string at byte %zu is not supported",
                                          tok.kind == TOKEN_INDEF_TEXT ? "text" : "byte", item_offset);
                case TOKEN_BREAK: {
                        if (depth == 0 || !stack[depth - 1].indefinite)
                                return parse_fail(error, -EBADMSG, item_offset,
                                                  "unexpected break (0xff) at byte %zu outside an indefinite-length map/array",
                                                  item_offset);
                        struct open_container *c = &stack[depth - 1];
                        struct smp_cbor_item *it = &room->items[c->index];
                        if (it->type == SMP_CBOR_MAP && c->children % 2 != 0)
                                return parse_fail(error, -EBADMSG, item_offset,
                                                  "map ends at byte %zu after a key without a value",
                                                  item_offset);
                        it->count = it->type == SMP_CBOR_MAP ? c->children / 2 : c->children;
                        it->next = (uint32_t) n;
                        depth--;
                        break;
                }
                default: {
                        enum smp_cbor_type type = token_item_type(tok.kind);
                        bool container = type == SMP_CBOR_MAP || type == SMP_CBOR_ARRAY;
                        bool indefinite = tok.kind == TOKEN_INDEF_MAP || tok.kind == TOKEN_INDEF_ARRAY;

                        if (type == 0)
                                return parse_fail(error, -EBADMSG, item_offset,
                                                  "malformed CBOR at byte %zu", item_offset);
                        if (n == 0 && type != SMP_CBOR_MAP)
                                return parse_fail(error, -EBADMSG, 0, "body must be a CBOR map, got %s",
                                                  smp_cbor_type_name(type));
                        if (n >= room->max)
                                return parse_fail(error, -E2BIG, item_offset,
                                                  "too many items: more than %zu at byte %zu", room->max, item_offset);
                        if (container && depth >= SMP_CBOR_MAX_DEPTH)
                                return parse_fail(error, -EBADMSG, item_offset,
                                                  "maps/arrays nested deeper than %d levels at byte %zu",
                                                  SMP_CBOR_MAX_DEPTH, item_offset);

                        if (n >= room->room && room_grow(room, n) < 0)
                                return parse_fail(error, -ENOMEM, item_offset, "out of memory");
                        struct smp_cbor_item *it = &room->items[n];
                        *it = (struct smp_cbor_item) {
                                .type = (uint8_t) type,
                                .depth = (uint8_t) depth,
                                .offset = (uint32_t) item_offset,
                        };
                        switch (type) {
                        case SMP_CBOR_UINT:
                        case SMP_CBOR_NEGINT:
                                it->v.u = tok.u;
                                break;
                        case SMP_CBOR_BYTES:
                        case SMP_CBOR_TEXT:
                                /* libcbor claimed these bytes inside the body already. */
                                it->v.s = smp_cbor_slice_make(tok.ptr, (size_t) tok.len);
                                break;
                        case SMP_CBOR_BOOL:
                                it->v.b = tok.b;
                                break;
                        case SMP_CBOR_FLOAT:
                                it->v.f = tok.f;
                                break;
                        default:
                                break;
                        }

                        if (depth > 0) {
                                stack[depth - 1].children++;
                                if (!stack[depth - 1].indefinite)
                                        stack[depth - 1].remaining--;
                        }
                        n++;

                        if (!container) {
                                it->next = (uint32_t) n;
                                break;
                        }
                        uint64_t children = 0;
                        if (!indefinite) {
                                /* Every child takes at least one byte: a count larger
                                 * than what is left is truncation, caught before the
                                 * count is doubled or trusted. */
                                if (tok.u > len - pos || (type == SMP_CBOR_MAP && tok.u > (len - pos) / 2))
                                        return parse_fail(error, -EBADMSG, item_offset,
                                                          "body truncated: %s at byte %zu announces %" PRIu64 " entries, only %zu bytes follow",
                                                          smp_cbor_type_name(type), item_offset, tok.u, len - pos);
                                it->count = (uint32_t) tok.u;
                                children = type == SMP_CBOR_MAP ? 2 * tok.u : tok.u;
                                if (children == 0) {
                                        it->next = (uint32_t) n;
                                        break;
                                }
                        }
                        stack[depth++] = (struct open_container) {
                                .index = (uint32_t) (n - 1),
                                .remaining = children,
                                .indefinite = indefinite,
                        };
                        break;
                }
                }

                /* Close every definite container whose last child just ended. */
                while (depth > 0 && !stack[depth - 1].indefinite && stack[depth - 1].remaining == 0) {
                        room->items[stack[depth - 1].index].next = (uint32_t) n;
                        depth--;
                }
                if (depth == 0)
                        break;
        }

        if (pos != len)
                return parse_fail(error, -EBADMSG, pos,
                                  "trailing bytes: the body map ends at byte %zu of %zu", pos, len);
        *ret_n = n;
        return 0;
}

int smp_cbor_parse(const uint8_t *body, size_t len, struct smp_cbor_item *items, size_t max_items,
                   struct smp_cbor_error *error, struct smp_cbor_doc *ret) {
        struct item_room room = { .items = items, .room = max_items, .max = max_items };
        size_t n;
        int r;

        if ((!body && len > 0) || !items || max_items == 0 || !ret)
                return parse_fail(error, -EINVAL, 0, "invalid arguments");
        /* Item offsets and indices are 32-bit; SMP bodies are < 64 KiB. */
        if (len > UINT32_MAX || max_items > UINT32_MAX)
                return parse_fail(error, -EINVAL, 0, "body of %zu bytes is too large", len);
        r = parse_items(body, len, &room, error, &n);
        if (r < 0)
                return r;
        *ret = (struct smp_cbor_doc) {
                .body = body,
                .len = len,
                .items = items,
                .n_items = n,
                .error = error,
        };
        return 0;
}

int smp_cbor_parse_alloc(const uint8_t *body, size_t len, struct smp_cbor_error *error,
                         struct smp_cbor_item **ret_items, struct smp_cbor_doc *ret) {
        struct smp_cbor_item first[SMP_CBOR_ITEMS_FIRST];
        _cleanup_free_ struct smp_cbor_item *heap = NULL;
        size_t max = MAX(MIN(len, (size_t) SMP_CBOR_MAX_ITEMS), (size_t) 1);
        struct item_room room = {
                .items = first,
                .room = MIN(max, (size_t) SMP_CBOR_ITEMS_FIRST),
                .max = max,
                .heap = &heap,
        };
        size_t n;
        int r;

        if (!ret_items || !ret || (!body && len > 0))
                return parse_fail(error, -EINVAL, 0, "invalid arguments");
        if (len > UINT32_MAX)
                return parse_fail(error, -EINVAL, 0, "body of %zu bytes is too large", len);
        /* A body of len bytes holds at most len items, but most hold a
         * handful (an upload chunk of 2 KiB is six): one parse, into room
         * for SMP_CBOR_ITEMS_FIRST items on the stack first, moved to the
         * heap and doubled while the body holds more.  What a decode
         * allocates follows the items the body holds (at most twice them
         * while parsing), never the most it might: room grown to
         * MIN(len, SMP_CBOR_MAX_ITEMS) took 128 KiB for any body of more
         * than 512 items in 4 KiB.  The caller keeps an array of exactly
         * the items: a reply of three items takes 96 bytes.  The parse
         * writes each item whole before anything reads it, so no array
         * needs zeroing. */
        r = parse_items(body, len, &room, error, &n);
        if (r < 0)
                return r;
        if (!heap) {
                heap = malloc(n * sizeof(*heap));
                if (!heap)
                        return parse_fail(error, -ENOMEM, 0, "out of memory");
                memcpy(heap, first, n * sizeof(*heap));
        } else if (room.room > n) {
                /* Give back the room the last doubling did not use. */
                struct smp_cbor_item *fit = realloc(heap, n * sizeof(*heap));
                if (fit)
                        heap = fit;
        }
        *ret = (struct smp_cbor_doc) {
                .body = body,
                .len = len,
                .items = heap,
                .n_items = n,
                .error = error, /* the getters report to the caller's error */
        };
        *ret_items = TAKE_PTR(heap);
        return 0;
}

static const struct smp_cbor_item *doc_item(const struct smp_cbor_doc *doc, uint32_t index) {
        if (!doc || index >= doc->n_items)
                return NULL;
        return &doc->items[index];
}

void smp_cbor_iter_init(const struct smp_cbor_doc *doc, uint32_t container, struct smp_cbor_iter *it) {
        const struct smp_cbor_item *c = doc_item(doc, container);

        *it = (struct smp_cbor_iter) { 0 };
        if (!c || (c->type != SMP_CBOR_MAP && c->type != SMP_CBOR_ARRAY))
                return;
        it->pos = container + 1;
        it->left = c->type == SMP_CBOR_MAP ? 2 * c->count : c->count;
}

bool smp_cbor_iter_next(const struct smp_cbor_doc *doc, struct smp_cbor_iter *it, uint32_t *ret_index) {
        const struct smp_cbor_item *i;

        if (it->left == 0 || !(i = doc_item(doc, it->pos)))
                return false;
        *ret_index = it->pos;
        it->pos = i->next;
        it->left--;
        return true;
}

bool smp_cbor_iter_next_pair(const struct smp_cbor_doc *doc, struct smp_cbor_iter *it,
                             uint32_t *ret_key, uint32_t *ret_value) {
        uint32_t k, v;

        if (it->left < 2)
                return false;
        if (!smp_cbor_iter_next(doc, it, &k) || !smp_cbor_iter_next(doc, it, &v))
                return false;
        *ret_key = k;
        *ret_value = v;
        return true;
}

int smp_cbor_map_find(const struct smp_cbor_doc *doc, uint32_t map, const char *key, uint32_t *ret_index) {
        const struct smp_cbor_item *m = doc_item(doc, map);
        struct smp_cbor_iter it;
        uint32_t k, v, found = 0;
        bool have = false;

        if (!m || m->type != SMP_CBOR_MAP || !key)
                return smp_cbor_doc_fail(doc, -EINVAL, m ? m->offset : 0,
                                         "looking up '%s' in something that is not a map",
                                         key ? key : "(null)");

        smp_cbor_iter_init(doc, map, &it);
        while (smp_cbor_iter_next_pair(doc, &it, &k, &v)) {
                const struct smp_cbor_item *ki = &doc->items[k];
                if (ki->type != SMP_CBOR_TEXT || !smp_cbor_slice_eq(ki->v.s, key))
                        continue;
                if (have)
                        return smp_cbor_doc_fail(doc, -EBADMSG, ki->offset,
                                                 "field '%s' appears more than once (byte %" PRIu32 ")",
                                                 key, ki->offset);
                have = true;
                found = v;
        }
        /* Quiet: absence is normal for optional fields; the required-field
         * getters below add the "missing" message. */
        if (!have)
                return -ENOENT;
        *ret_index = found;
        return 0;
}

static int map_find_required(const struct smp_cbor_doc *doc, uint32_t map, const char *key,
                             uint32_t *ret_index) {
        int r = smp_cbor_map_find(doc, map, key, ret_index);

        if (r == -ENOENT)
                return smp_cbor_doc_fail(doc, r, doc->items[map].offset, "field '%s' is missing", key);
        return r;
}

static int type_fail(const struct smp_cbor_doc *doc, const struct smp_cbor_item *i, const char *field,
                     const char *expected) {
        return smp_cbor_doc_fail(doc, -EBADMSG, i->offset, "field '%s': expected %s, got %s",
                                 field ? field : "?", expected, smp_cbor_type_name(i->type));
}

static const struct smp_cbor_item *typed_item(const struct smp_cbor_doc *doc, uint32_t index,
                                              const char *field, int *ret_r) {
        const struct smp_cbor_item *i = doc_item(doc, index);

        if (!i)
                *ret_r = smp_cbor_doc_fail(doc, -EINVAL, 0, "field '%s': no such item", field ? field : "?");
        return i;
}

int smp_cbor_item_uint(const struct smp_cbor_doc *doc, uint32_t index, const char *field, uint64_t *ret) {
        int r = 0;
        const struct smp_cbor_item *i = typed_item(doc, index, field, &r);

        if (!i)
                return r;
        if (i->type != SMP_CBOR_UINT)
                return type_fail(doc, i, field, "unsigned integer");
        *ret = i->v.u;
        return 0;
}

int smp_cbor_item_u32(const struct smp_cbor_doc *doc, uint32_t index, const char *field, uint32_t *ret) {
        uint64_t v;
        int r = smp_cbor_item_uint(doc, index, field, &v);

        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return smp_cbor_doc_fail(doc, -ERANGE, doc->items[index].offset,
                                         "field '%s': %" PRIu64 " does not fit in 32 bits", field ? field : "?", v);
        *ret = (uint32_t) v;
        return 0;
}

int smp_cbor_item_int(const struct smp_cbor_doc *doc, uint32_t index, const char *field, int64_t *ret) {
        int r = 0;
        const struct smp_cbor_item *i = typed_item(doc, index, field, &r);

        if (!i)
                return r;
        if (i->type != SMP_CBOR_UINT && i->type != SMP_CBOR_NEGINT)
                return type_fail(doc, i, field, "integer");
        if (i->v.u > INT64_MAX)
                return smp_cbor_doc_fail(doc, -ERANGE, i->offset, "field '%s': integer out of 64-bit range",
                                         field ? field : "?");
        *ret = i->type == SMP_CBOR_UINT ? (int64_t) i->v.u : -1 - (int64_t) i->v.u;
        return 0;
}

int smp_cbor_item_bool(const struct smp_cbor_doc *doc, uint32_t index, const char *field, bool *ret) {
        int r = 0;
        const struct smp_cbor_item *i = typed_item(doc, index, field, &r);

        if (!i)
                return r;
        if (i->type != SMP_CBOR_BOOL)
                return type_fail(doc, i, field, "boolean");
        *ret = i->v.b;
        return 0;
}

static int item_string(const struct smp_cbor_doc *doc, uint32_t index, const char *field, int type,
                       struct smp_cbor_slice *ret) {
        int r = 0;
        const struct smp_cbor_item *i = typed_item(doc, index, field, &r);

        if (!i)
                return r;
        if (i->type != type)
                return type_fail(doc, i, field, smp_cbor_type_name(type));
        *ret = i->v.s;
        return 0;
}

int smp_cbor_item_text(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                       struct smp_cbor_slice *ret) {
        return item_string(doc, index, field, SMP_CBOR_TEXT, ret);
}

int smp_cbor_item_bytes(const struct smp_cbor_doc *doc, uint32_t index, const char *field,
                        struct smp_cbor_slice *ret) {
        return item_string(doc, index, field, SMP_CBOR_BYTES, ret);
}

static int item_container(const struct smp_cbor_doc *doc, uint32_t index, const char *field, int type) {
        int r = 0;
        const struct smp_cbor_item *i = typed_item(doc, index, field, &r);

        if (!i)
                return r;
        if (i->type != type)
                return type_fail(doc, i, field, smp_cbor_type_name(type));
        return 0;
}

int smp_cbor_item_map(const struct smp_cbor_doc *doc, uint32_t index, const char *field) {
        return item_container(doc, index, field, SMP_CBOR_MAP);
}

int smp_cbor_item_array(const struct smp_cbor_doc *doc, uint32_t index, const char *field) {
        return item_container(doc, index, field, SMP_CBOR_ARRAY);
}

#define DEFINE_MAP_GETTER(name, item_fn, type)                                                   \
        int smp_cbor_map_get_##name(const struct smp_cbor_doc *doc, uint32_t map, const char *key, \
                                    type *ret) {                                                 \
                uint32_t idx;                                                                    \
                int r = map_find_required(doc, map, key, &idx);                                  \
                if (r < 0)                                                                       \
                        return r;                                                                \
                return item_fn(doc, idx, key, ret);                                              \
        }

DEFINE_MAP_GETTER(uint, smp_cbor_item_uint, uint64_t)
DEFINE_MAP_GETTER(u32, smp_cbor_item_u32, uint32_t)
DEFINE_MAP_GETTER(int, smp_cbor_item_int, int64_t)
DEFINE_MAP_GETTER(bool, smp_cbor_item_bool, bool)
DEFINE_MAP_GETTER(text, smp_cbor_item_text, struct smp_cbor_slice)
DEFINE_MAP_GETTER(bytes, smp_cbor_item_bytes, struct smp_cbor_slice)

int smp_cbor_map_get_map(const struct smp_cbor_doc *doc, uint32_t map, const char *key, uint32_t *ret) {
        uint32_t idx;
        int r = map_find_required(doc, map, key, &idx);

        if (r < 0)
                return r;
        r = smp_cbor_item_map(doc, idx, key);
        if (r < 0)
                return r;
        *ret = idx;
        return 0;
}

int smp_cbor_map_get_array(const struct smp_cbor_doc *doc, uint32_t map, const char *key, uint32_t *ret) {
        uint32_t idx;
        int r = map_find_required(doc, map, key, &idx);

        if (r < 0)
                return r;
        r = smp_cbor_item_array(doc, idx, key);
        if (r < 0)
                return r;
        *ret = idx;
        return 0;
}

#define DEFINE_MAP_OPT_GETTER(name, item_fn, type)                                               \
        int smp_cbor_map_opt_##name(const struct smp_cbor_doc *doc, uint32_t map, const char *key, \
                                    type *ret) {                                                 \
                uint32_t idx;                                                                    \
                int r = smp_cbor_map_find(doc, map, key, &idx);                                  \
                if (r == -ENOENT)                                                                \
                        return 0;                                                                \
                if (r < 0)                                                                       \
                        return r;                                                                \
                r = item_fn(doc, idx, key, ret);                                                 \
                return r < 0 ? r : 1;                                                            \
        }

DEFINE_MAP_OPT_GETTER(uint, smp_cbor_item_uint, uint64_t)
DEFINE_MAP_OPT_GETTER(u32, smp_cbor_item_u32, uint32_t)
DEFINE_MAP_OPT_GETTER(int, smp_cbor_item_int, int64_t)
DEFINE_MAP_OPT_GETTER(bool, smp_cbor_item_bool, bool)
DEFINE_MAP_OPT_GETTER(text, smp_cbor_item_text, struct smp_cbor_slice)
DEFINE_MAP_OPT_GETTER(bytes, smp_cbor_item_bytes, struct smp_cbor_slice)
