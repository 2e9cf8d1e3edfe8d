/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parsers of what a Bluetooth Mesh Distributor prints in its shell
 * (Zephyr subsys/bluetooth/mesh/shell/dfd.c and dfu.c; the formats and
 * their variants are listed in mesh-dfu.h).
 *
 * One scanner serves every JSON-like format: it walks the text once,
 * tracks {...} nesting and reports object starts and ends and "key": value
 * pairs to a per-format handler.  It trusts nothing: anything that is not
 * a brace, a quoted string, a colon and a value is skipped; a value the
 * text ends inside is dropped (truncated output must not turn "48" into
 * "4"); objects still open at the end are reported as ended unclosed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smpgw/mesh-dfu.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* Names                                                               */

static const char *const dfd_phase_names[] = {
        "idle", "transfer-active", "transfer-success", "applying-update",
        "completed", "failed", "canceling-update", "transfer-suspended",
};

static const char *const dfd_status_names[] = {
        "success", "insufficient-resources", "wrong-phase", "internal", "firmware-not-found",
        "invalid-appkey-index", "receivers-list-empty", "busy-with-distribution",
        "busy-with-upload", "uri-not-supported", "uri-malformed", "uri-unreachable",
        "new-firmware-not-available", "suspend-failed",
};

static const char *const dfu_phase_names[] = {
        "idle", "transfer-error", "transfer-active", "verify", "verify-ok", "verify-fail",
        "applying", "transfer-canceled", "apply-success", "apply-fail", "unknown",
};

static const char *const dfu_status_names[] = {
        "success", "insufficient-resources", "wrong-phase", "internal", "wrong-image-index",
        "metadata-check-failed", "temporarily-unavailable", "blob-transfer-busy",
};

const char *smp_mesh_dfd_phase_to_string(unsigned phase) {
        return phase < ELEMENTSOF(dfd_phase_names) ? dfd_phase_names[phase] : NULL;
}

const char *smp_mesh_dfd_status_to_string(unsigned status) {
        return status < ELEMENTSOF(dfd_status_names) ? dfd_status_names[status] : NULL;
}

const char *smp_mesh_dfu_phase_to_string(unsigned phase) {
        return phase < ELEMENTSOF(dfu_phase_names) ? dfu_phase_names[phase] : NULL;
}

const char *smp_mesh_dfu_status_to_string(unsigned status) {
        return status < ELEMENTSOF(dfu_status_names) ? dfu_status_names[status] : NULL;
}

/* ------------------------------------------------------------------ */
/* The scanner                                                         */

/* Objects whose keys are remembered; the printed formats nest 3 deep. */
#define SCAN_DEPTH_MAX 4u
/* No key of the formats is longer; a longer one matches nothing. */
#define SCAN_KEY_MAX 32u

enum scan_event {
        SCAN_OBJECT_BEGIN,
        SCAN_VALUE,
        SCAN_OBJECT_END,
};

enum scan_type {
        SCAN_NUMBER,
        SCAN_BOOL,
        SCAN_STRING,
};

struct scan_str {
        const char *ptr;
        size_t len;
};

struct scan_value {
        enum scan_type type;
        bool in_range;         /* SCAN_NUMBER: fits int64_t */
        int64_t number;
        bool boolean;
        struct scan_str string;
};

struct scan {
        unsigned depth;                          /* objects open, tracked or not */
        struct scan_str names[SCAN_DEPTH_MAX];   /* key each tracked object was the
                                                  * value of; len 0: none */
};

/* depth is the object's own depth (1: top level).  For SCAN_VALUE, key
 * and value are set and depth is that of the enclosing object; for
 * SCAN_OBJECT_END, closed says whether its '}' was seen. */
typedef void (*scan_fn)(void *userdata, enum scan_event ev, const struct scan *sc, unsigned depth,
                        struct scan_str key, const struct scan_value *value, bool closed);

static bool str_is(struct scan_str s, const char *lit) {
        size_t n = strlen(lit);
        return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_word_char(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               c == '.';
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static const char *skip_space(const char *p, const char *end) {
        while (p < end && is_space(*p))
                p++;
        return p;
}

/* A quoted string at p (on the opening quote).  Returns the position after
 * the closing quote, NULL when the text ends first; a string broken by a
 * line end is no string (returns the line end, *ok false). */
static const char *scan_string(const char *p, const char *end, struct scan_str *ret, bool *ok) {
        const char *start = ++p;

        while (p < end && *p != '"') {
                if (*p == '\n') {
                        *ok = false;
                        return p;
                }
                p++;
        }
        if (p >= end)
                return NULL;
        *ret = (struct scan_str) { start, (size_t) (p - start) };
        *ok = true;
        return p + 1;
}

/* A number at p: [-](0x<hex>|<decimal>).  Returns the position after it,
 * NULL when the text ends inside it (or right after it: the next digit may
 * have been cut off).  *ok is false for junk such as "12ab" or "0x". */
static const char *scan_number(const char *p, const char *end, struct scan_value *v, bool *ok) {
        bool negative = false, hex = false, overflow = false;
        uint64_t u = 0;
        size_t digits = 0;

        if (*p == '-') {
                negative = true;
                p++;
        }
        if (end - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
                hex = true;
                p += 2;
        }
        for (; p < end; p++, digits++) {
                int d = hex ? hex_digit(*p) : (*p >= '0' && *p <= '9' ? *p - '0' : -1);
                if (d < 0)
                        break;
                unsigned base = hex ? 16u : 10u;
                if (u > (UINT64_MAX - (uint64_t) d) / base)
                        overflow = true;
                else
                        u = u * base + (uint64_t) d;
        }
        if (p >= end)
                return NULL;
        *ok = digits > 0 && !is_word_char(*p);
        while (p < end && is_word_char(*p))
                p++;
        v->type = SCAN_NUMBER;
        v->in_range = !overflow && (negative ? u <= (uint64_t) INT64_MAX + 1 : u <= (uint64_t) INT64_MAX);
        v->number = !v->in_range ? 0 : negative ? (int64_t) (0 - u) : (int64_t) u;
        return p;
}

static void scan_begin(struct scan *sc, struct scan_str name, scan_fn fn, void *userdata) {
        sc->depth++;
        if (sc->depth > SCAN_DEPTH_MAX)
                return;
        sc->names[sc->depth - 1] = name.len <= SCAN_KEY_MAX ? name : (struct scan_str) { NULL, 0 };
        fn(userdata, SCAN_OBJECT_BEGIN, sc, sc->depth, (struct scan_str) { 0 }, NULL, false);
}

static void scan_end(struct scan *sc, bool closed, scan_fn fn, void *userdata) {
        if (sc->depth == 0)
                return;
        if (sc->depth <= SCAN_DEPTH_MAX)
                fn(userdata, SCAN_OBJECT_END, sc, sc->depth, (struct scan_str) { 0 }, NULL, closed);
        sc->depth--;
}

static void scan_text(const char *text, size_t len, scan_fn fn, void *userdata) {
        struct scan sc = { 0 };
        const char *p = text, *end = text + len;

        while (p && p < end) {
                if (*p == '{') {
                        scan_begin(&sc, (struct scan_str) { 0 }, fn, userdata);
                        p++;
                        continue;
                }
                if (*p == '}') {
                        scan_end(&sc, true, fn, userdata);
                        p++;
                        continue;
                }
                if (*p != '"') {
                        p++;
                        continue;
                }

                struct scan_str key;
                bool ok;
                const char *q = scan_string(p, end, &key, &ok);
                if (!q || !ok) {
                        p = q;
                        continue;
                }
                q = skip_space(q, end);
                if (q >= end)
                        break;
                if (*q != ':') {
                        p = q;          /* a string that is no key */
                        continue;
                }
                q = skip_space(q + 1, end);
                if (q >= end)
                        break;
                if (*q == '{') {
                        scan_begin(&sc, key, fn, userdata);
                        p = q + 1;
                        continue;
                }

                struct scan_value v = { 0 };
                if (*q == '"') {
                        p = scan_string(q, end, &v.string, &ok);
                        v.type = SCAN_STRING;
                } else if (*q == '-' || (*q >= '0' && *q <= '9'))
                        p = scan_number(q, end, &v, &ok);
                else if (*q == 't' || *q == 'f') {
                        const char *lit = *q == 't' ? "true" : "false";
                        size_t n = strlen(lit);
                        if ((size_t) (end - q) <= n)
                                break;  /* cut off, or nothing after it */
                        ok = memcmp(q, lit, n) == 0 && !is_word_char(q[n]);
                        v.type = SCAN_BOOL;
                        v.boolean = *q == 't';
                        p = ok ? q + n : q + 1;
                } else {
                        p = q;          /* no value we know: rescan from here */
                        continue;
                }
                if (ok && p && sc.depth >= 1 && sc.depth <= SCAN_DEPTH_MAX && key.len <= SCAN_KEY_MAX)
                        fn(userdata, SCAN_VALUE, &sc, sc.depth, key, &v, false);
        }
        while (sc.depth > 0)
                scan_end(&sc, false, fn, userdata);
}

/* ------------------------------------------------------------------ */
/* Typed fields                                                        */

enum field_kind {
        FIELD_U8,
        FIELD_U16,
        FIELD_U32,
        FIELD_BOOL,        /* true/false, or a number 0/1 (the shell prints %d) */
        FIELD_FWID,        /* a hex string of at most SMP_MESH_FWID_MAXLEN bytes */
};

struct field {
        const char *key;
        enum field_kind kind;
        size_t offset;
        size_t len_offset;  /* FIELD_FWID: where its length goes */
};

/* Stores v into the field at base; false when it does not fit. */
static bool field_store(const struct field *f, const struct scan_value *v, void *base) {
        uint8_t *at = (uint8_t *) base + f->offset;
        uint64_t max;

        switch (f->kind) {
        case FIELD_BOOL:
                if (v->type == SCAN_BOOL) {
                        *(bool *) at = v->boolean;
                        return true;
                }
                if (v->type == SCAN_NUMBER && v->in_range && (v->number == 0 || v->number == 1)) {
                        *(bool *) at = v->number == 1;
                        return true;
                }
                return false;
        case FIELD_FWID: {
                if (v->type != SCAN_STRING)
                        return false;
                int n = smp_mesh_unhex(v->string.ptr, v->string.len, at, SMP_MESH_FWID_MAXLEN);
                if (n < 0)
                        return false;
                *(size_t *) ((uint8_t *) base + f->len_offset) = (size_t) n;
                return true;
        }
        case FIELD_U8:
                max = UINT8_MAX;
                break;
        case FIELD_U16:
                max = UINT16_MAX;
                break;
        case FIELD_U32:
                max = UINT32_MAX;
                break;
        default:
                return false;
        }
        if (v->type != SCAN_NUMBER || !v->in_range || v->number < 0 || (uint64_t) v->number > max)
                return false;
        if (f->kind == FIELD_U8)
                *at = (uint8_t) v->number;
        else if (f->kind == FIELD_U16)
                *(uint16_t *) at = (uint16_t) v->number;
        else
                *(uint32_t *) at = (uint32_t) v->number;
        return true;
}

/* Returns the field's bit when key names one of fields[] and the value
 * fits, 0 otherwise. */
static uint32_t fields_store(const struct field *fields, size_t n, struct scan_str key, const struct scan_value *v,
                             void *base) {
        for (size_t i = 0; i < n; i++)
                if (str_is(key, fields[i].key))
                        return field_store(&fields[i], v, base) ? 1u << i : 0;
        return 0;
}

/* ------------------------------------------------------------------ */
/* One flat object: status lines, capabilities                         */

struct flat {
        const struct field *fields;
        size_t n_fields;
        uint32_t required;     /* bits of fields[] that must be there */
        void *candidate;       /* the object being read */
        void *result;          /* the last complete one */
        size_t size;
        uint32_t seen;         /* bits of the candidate */
        uint32_t result_seen;
        bool found;
};

static void flat_event(void *userdata, enum scan_event ev, const struct scan *sc, unsigned depth,
                       struct scan_str key, const struct scan_value *v, bool closed) {
        struct flat *fl = userdata;

        if (depth != 1)
                return;
        switch (ev) {
        case SCAN_OBJECT_BEGIN:
                memset(fl->candidate, 0, fl->size);
                fl->seen = 0;
                break;
        case SCAN_VALUE:
                fl->seen |= fields_store(fl->fields, fl->n_fields, key, v, fl->candidate);
                break;
        case SCAN_OBJECT_END:
                /* A status line cut off after its required fields still
                 * says what it says; the optional ones are marked. */
                if ((fl->seen & fl->required) == fl->required) {
                        memcpy(fl->result, fl->candidate, fl->size);
                        fl->result_seen = fl->seen;
                        fl->found = true;
                }
                break;
        }
}

/* Parses text for objects with fields[]; *result gets the last one that
 * has every required field.  Returns the bits seen in it, or -EBADMSG. */
static int flat_parse(const char *text, size_t len, const struct field *fields, size_t n_fields, uint32_t required,
                      void *candidate, void *result, size_t size) {
        struct flat fl = {
                .fields = fields,
                .n_fields = n_fields,
                .required = required,
                .candidate = candidate,
                .result = result,
                .size = size,
        };

        memset(result, 0, size);
        if (!text && len > 0)
                return -EINVAL;
        scan_text(text, len, flat_event, &fl);
        if (!fl.found) {
                memset(result, 0, size);
                return -EBADMSG;
        }
        return (int) fl.result_seen;
}

#define FIELD(type, member, kind) { #member, kind, offsetof(type, member), 0 }

int smp_mesh_dfd_state_parse(const char *text, size_t len, struct smp_mesh_dfd_state *ret) {
        static const struct field fields[] = {
                FIELD(struct smp_mesh_dfd_state, status, FIELD_U8),
                FIELD(struct smp_mesh_dfd_state, phase, FIELD_U8),
                FIELD(struct smp_mesh_dfd_state, group, FIELD_U16),
                FIELD(struct smp_mesh_dfd_state, app_idx, FIELD_U16),
                FIELD(struct smp_mesh_dfd_state, ttl, FIELD_U8),
                FIELD(struct smp_mesh_dfd_state, timeout_base, FIELD_U16),
                FIELD(struct smp_mesh_dfd_state, xfer_mode, FIELD_U8),
                FIELD(struct smp_mesh_dfd_state, apply, FIELD_BOOL),
                FIELD(struct smp_mesh_dfd_state, slot_idx, FIELD_U16),
        };
        struct smp_mesh_dfd_state cand;
        int r;

        if (!ret)
                return -EINVAL;
        r = flat_parse(text, len, fields, ELEMENTSOF(fields), 0x3, &cand, ret, sizeof(*ret));
        if (r < 0)
                return r;
        ret->has_params = ((unsigned) r & 0x1fcu) == 0x1fcu;
        return 0;
}

int smp_mesh_receivers_status_parse(const char *text, size_t len, struct smp_mesh_receivers_status *ret) {
        static const struct field fields[] = {
                FIELD(struct smp_mesh_receivers_status, status, FIELD_U8),
                FIELD(struct smp_mesh_receivers_status, target_cnt, FIELD_U16),
        };
        struct smp_mesh_receivers_status cand;
        int r;

        if (!ret)
                return -EINVAL;
        r = flat_parse(text, len, fields, ELEMENTSOF(fields), 0x3, &cand, ret, sizeof(*ret));
        return r < 0 ? r : 0;
}

int smp_mesh_dfd_capabilities_parse(const char *text, size_t len, struct smp_mesh_dfd_capabilities *ret) {
        static const struct field fields[] = {
                FIELD(struct smp_mesh_dfd_capabilities, targets_max, FIELD_U32),
                FIELD(struct smp_mesh_dfd_capabilities, slot_cnt, FIELD_U32),
                FIELD(struct smp_mesh_dfd_capabilities, slot_max_size, FIELD_U32),
                FIELD(struct smp_mesh_dfd_capabilities, slot_space, FIELD_U32),
                FIELD(struct smp_mesh_dfd_capabilities, remaining_space, FIELD_U32),
                FIELD(struct smp_mesh_dfd_capabilities, oob_supported, FIELD_BOOL),
        };
        struct smp_mesh_dfd_capabilities cand;
        int r;

        if (!ret)
                return -EINVAL;
        r = flat_parse(text, len, fields, ELEMENTSOF(fields), 0x7, &cand, ret, sizeof(*ret));
        if (r < 0)
                return r;
        ret->has_slot_space = r & 0x8;
        ret->has_remaining_space = r & 0x10;
        ret->has_oob_supported = r & 0x20;
        return 0;
}

int smp_mesh_fw_status_parse(const char *text, size_t len, struct smp_mesh_fw_status *ret) {
        static const struct field fields[] = {
                FIELD(struct smp_mesh_fw_status, status, FIELD_U8),
                FIELD(struct smp_mesh_fw_status, slot_cnt, FIELD_U16),
                FIELD(struct smp_mesh_fw_status, idx, FIELD_U16),
                { "fwid", FIELD_FWID, offsetof(struct smp_mesh_fw_status, fwid),
                  offsetof(struct smp_mesh_fw_status, fwid_len) },
        };
        struct smp_mesh_fw_status cand;
        int r;

        if (!ret)
                return -EINVAL;
        r = flat_parse(text, len, fields, ELEMENTSOF(fields), 0x7, &cand, ret, sizeof(*ret));
        return r < 0 ? r : 0;
}

/* ------------------------------------------------------------------ */
/* Receivers pages                                                     */

struct page_scan {
        struct smp_mesh_receivers_page *result;
        struct smp_mesh_receivers_page cand;
        bool found;
        bool targets_closed;
        /* the entry being read */
        bool entry_ok;           /* its key is an index */
        struct smp_mesh_target entry;
        uint32_t entry_seen;
};

static const struct field target_fields[] = {
        FIELD(struct smp_mesh_target, blob_addr, FIELD_U16),
        FIELD(struct smp_mesh_target, phase, FIELD_U8),
        FIELD(struct smp_mesh_target, status, FIELD_U8),
        FIELD(struct smp_mesh_target, blob_status, FIELD_U8),
        FIELD(struct smp_mesh_target, progress, FIELD_U8),
        FIELD(struct smp_mesh_target, img_idx, FIELD_U8),
};
#define TARGET_FIELDS_ALL 0x3fu

static bool parse_index(struct scan_str s, uint16_t *ret) {
        uint32_t v = 0;

        if (s.len == 0 || s.len > 5)
                return false;
        for (size_t i = 0; i < s.len; i++) {
                if (s.ptr[i] < '0' || s.ptr[i] > '9')
                        return false;
                v = v * 10 + (uint32_t) (s.ptr[i] - '0');
        }
        if (v > UINT16_MAX)
                return false;
        *ret = (uint16_t) v;
        return true;
}

static void page_event(void *userdata, enum scan_event ev, const struct scan *sc, unsigned depth,
                       struct scan_str key, const struct scan_value *v, bool closed) {
        struct page_scan *ps = userdata;
        struct smp_mesh_receivers_page *c = &ps->cand;
        bool in_targets = depth >= 2 && str_is(sc->names[1], "targets");

        switch (ev) {
        case SCAN_OBJECT_BEGIN:
                if (depth == 1) {
                        memset(c, 0, sizeof(*c));
                        ps->targets_closed = false;
                } else if (depth == 3 && in_targets) {
                        ps->entry = (struct smp_mesh_target) { 0 };
                        ps->entry_seen = 0;
                        ps->entry_ok = parse_index(sc->names[2], &ps->entry.index);
                }
                break;
        case SCAN_VALUE:
                if (depth == 1 && str_is(key, "target_cnt")) {
                        if (v->type == SCAN_NUMBER && v->in_range && v->number >= 0 && v->number <= UINT16_MAX) {
                                c->target_cnt = (uint16_t) v->number;
                                c->has_target_cnt = true;
                        }
                } else if (depth == 3 && in_targets)
                        ps->entry_seen |= fields_store(target_fields, ELEMENTSOF(target_fields), key, v, &ps->entry);
                break;
        case SCAN_OBJECT_END:
                if (depth == 3 && in_targets) {
                        if (closed && ps->entry_ok && ps->entry_seen == TARGET_FIELDS_ALL &&
                            c->n_targets < SMP_MESH_RECEIVERS_PAGE_MAX)
                                c->targets[c->n_targets++] = ps->entry;
                        else
                                c->skipped++;
                } else if (depth == 2 && in_targets)
                        ps->targets_closed = closed;
                else if (depth == 1) {
                        c->complete = closed && ps->targets_closed;
                        if (c->has_target_cnt || c->n_targets > 0 || c->skipped > 0) {
                                memcpy(ps->result, c, sizeof(*c));
                                ps->found = true;
                        }
                }
                break;
        }
}

int smp_mesh_receivers_page_parse(const char *text, size_t len, struct smp_mesh_receivers_page *ret) {
        struct page_scan *ps;

        if (!ret || (!text && len > 0))
                return -EINVAL;
        /* The candidate page is as large as the result: keep it off the
         * stack of callers with small ones. */
        ps = calloc(1, sizeof(*ps));
        if (!ps)
                return -ENOMEM;
        ps->result = ret;
        memset(ret, 0, sizeof(*ret));
        scan_text(text, len, page_event, ps);
        bool found = ps->found;
        free(ps);
        if (!found) {
                memset(ret, 0, sizeof(*ret));
                return -EBADMSG;
        }
        return 0;
}

/* ------------------------------------------------------------------ */
/* Slot messages (plain sentences)                                     */

static const char *find(const char *text, size_t len, const char *what) {
        return memmem(text, len, what, strlen(what));
}

/* An optionally signed decimal at p after optional spaces; false when
 * there is none or it does not fit. */
static bool read_decimal(const char *p, const char *end, bool allow_sign, int64_t *ret) {
        bool negative = false;
        int64_t v = 0;
        size_t digits = 0;

        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        if (allow_sign && p < end && *p == '-') {
                negative = true;
                p++;
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
                if (digits >= 10)
                        return false;
                v = v * 10 + (*p - '0');
        }
        if (digits == 0)
                return false;
        *ret = negative ? -v : v;
        return true;
}

int smp_mesh_slot_add_parse(const char *text, size_t len, struct smp_mesh_slot_add_result *ret) {
        struct smp_mesh_slot_add_result r = { 0 };
        const char *end = text + len, *p;
        int64_t v;
        bool found = false;

        if (!ret || (!text && len > 0))
                return -EINVAL;
        *ret = r;
        if (!text)
                return -EBADMSG;

        p = find(text, len, "Adding slot (size:");
        if (p && read_decimal(p + strlen("Adding slot (size:"), end, false, &v) && v <= UINT32_MAX) {
                r.has_size = true;
                r.size = (uint32_t) v;
        }

        p = find(text, len, "Slot added.");
        if (p) {
                const char *q = p + strlen("Slot added.");
                while (q < end && (*q == ' ' || *q == '\t'))
                        q++;
                /* "Index:" since Zephyr 3.5, "ID:" before */
                size_t word = (size_t) (end - q) >= 6 && strncasecmp(q, "Index:", 6) == 0 ? 6 :
                              (size_t) (end - q) >= 3 && strncasecmp(q, "ID:", 3) == 0    ? 3 : 0;
                if (word && read_decimal(q + word, end, false, &v) && v <= UINT32_MAX) {
                        r.outcome = SMP_MESH_SLOT_ADDED;
                        r.idx = (uint32_t) v;
                        found = true;
                }
        }
        if (!found && (p = find(text, len, "Failed to commit slot:")) &&
            read_decimal(p + strlen("Failed to commit slot:"), end, true, &v) && v >= INT32_MIN && v <= INT32_MAX) {
                r.outcome = SMP_MESH_SLOT_COMMIT_FAILED;
                r.err = (int) v;
                found = true;
        }
        if (!found && find(text, len, "Failed to reserve slot")) {
                r.outcome = SMP_MESH_SLOT_NO_FREE_SLOT;
                found = true;
        }
        if (!found && find(text, len, "Failed.")) {
                r.outcome = SMP_MESH_SLOT_FAILED;
                found = true;
        }
        if (!found)
                return -EBADMSG;
        *ret = r;
        return 0;
}

int smp_mesh_slot_del_parse(const char *text, size_t len, struct smp_mesh_slot_del_result *ret) {
        const char *end = text + len, *p, *q;
        int64_t v;

        if (!ret || (!text && len > 0))
                return -EINVAL;
        *ret = (struct smp_mesh_slot_del_result) { 0 };
        if (!text)
                return -EBADMSG;

        if ((p = find(text, len, "Failed deleting"))) {
                ret->outcome = SMP_MESH_SLOT_DELETE_FAILED;
                q = memmem(p, (size_t) (end - p), "(err:", 5);
                if (q && read_decimal(q + 5, end, true, &v) && v >= INT32_MIN && v <= INT32_MAX)
                        ret->err = (int) v;
                return 0;
        }
        if (find(text, len, "No slot at")) {
                ret->outcome = SMP_MESH_SLOT_NOT_FOUND;
                return 0;
        }
        if (find(text, len, "All slots deleted.") || ((p = find(text, len, "Slot ")) && find(p, (size_t) (end - p),
                                                                                                  " deleted."))) {
                ret->outcome = SMP_MESH_SLOT_DELETED;
                return 0;
        }
        return -EBADMSG;
}
