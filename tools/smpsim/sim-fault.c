/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-fault.h"
#include "smpgw/smp-parse.h"
#include "util.h"

void sim_faults_init(struct sim_faults *f) {
        *f = (struct sim_faults) {
                .drop_at = -1,
                .silent_at = -1,
                .reboot_at = -1,
                .lose_answer_at = -1,
                .drop_ms = 2000,
        };
}

static int parse_u64(const char *s, const char *end, uint64_t *ret) {
        return smp_parse_uint_n(s, (size_t) (end - s), 0, UINT64_MAX, ret) < 0 ? -EINVAL : 0;
}

static int parse_prob(const char *s, double *ret) {
        char *e;
        errno = 0;
        double v = strtod(s, &e);
        if (errno != 0 || e == s || *e != 0 || !isfinite(v) || v < 0 || v > 1)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Strips a "dev=N:" prefix. */
static const char *strip_device(const char *spec, long *ret_dev, int *ret_r) {
        *ret_dev = -1;
        *ret_r = 0;
        if (strncmp(spec, "dev=", 4) != 0)
                return spec;
        const char *colon = strchr(spec, ':');
        uint64_t dev;
        if (!colon || parse_u64(spec + 4, colon, &dev) < 0 || dev > 1000000) {
                *ret_r = -EINVAL;
                return NULL;
        }
        *ret_dev = (long) dev;
        return colon + 1;
}

int sim_fault_parse(const char *spec, long *ret_dev, const char **ret_error) {
        struct sim_faults scratch;
        long dev;
        int r;

        const char *rest = strip_device(spec, &dev, &r);
        if (!rest) {
                *ret_error = "bad device prefix, expected dev=N:SPEC";
                return r;
        }
        sim_faults_init(&scratch);
        r = sim_fault_apply(rest, &scratch, ret_error);
        if (r < 0)
                return r;
        *ret_dev = dev;
        return 0;
}

int sim_fault_apply(const char *spec, struct sim_faults *f, const char **ret_error) {
        long dev;
        int r;
        const char *s = strip_device(spec, &dev, &r);
        if (!s) {
                *ret_error = "bad device prefix, expected dev=N:SPEC";
                return r;
        }

        const char *eq = strchr(s, '=');
        size_t name_len = eq ? (size_t) (eq - s) : strlen(s);
        const char *arg = eq ? eq + 1 : NULL;
#define IS(name) (name_len == strlen(name) && strncmp(s, name, name_len) == 0)

        if (IS("revert") && !arg) {
                f->revert = true;
                return 0;
        }
        if (IS("reject") && !arg) {
                f->reject = true;
                return 0;
        }
        if (IS("reset-busy") && !arg) {
                f->reset_busy = true;
                return 0;
        }
        if (!arg) {
                *ret_error = "unknown fault, or it needs a value (see smpsim --help)";
                return -EINVAL;
        }

        if (IS("drop-at") || IS("reboot-at") || IS("silent-at") || IS("lose-answer-at")) {
                const char *comma = strchr(arg, ',');
                const char *end = comma ? comma : arg + strlen(arg);
                uint64_t at;
                if (parse_u64(arg, end, &at) < 0 || at > INT64_MAX) {
                        *ret_error = "expected a byte offset";
                        return -EINVAL;
                }
                if (IS("drop-at")) {
                        uint64_t ms = 2000;
                        if (comma && (parse_u64(comma + 1, comma + 1 + strlen(comma + 1), &ms) < 0 || ms > 3600000)) {
                                *ret_error = "drop-at=BYTES[,MS]: bad duration";
                                return -EINVAL;
                        }
                        f->drop_at = (int64_t) at;
                        f->drop_ms = (uint32_t) ms;
                        f->drop_fired = false;
                } else if (IS("reboot-at")) {
                        if (comma && strcmp(comma + 1, "keep") != 0) {
                                *ret_error = "reboot-at=BYTES[,keep]";
                                return -EINVAL;
                        }
                        f->reboot_at = (int64_t) at;
                        f->reboot_keep = comma != NULL;
                        f->reboot_fired = false;
                } else {
                        if (comma) {
                                *ret_error = "silent-at=BYTES and lose-answer-at=BYTES take no options";
                                return -EINVAL;
                        }
                        if (IS("silent-at"))
                                f->silent_at = (int64_t) at;
                        else {
                                f->lose_answer_at = (int64_t) at;
                                f->lose_answer_fired = false;
                        }
                }
                return 0;
        }
        if (IS("slow")) {
                uint64_t ms;
                if (parse_u64(arg, arg + strlen(arg), &ms) < 0 || ms > 600000) {
                        *ret_error = "slow=MS: expected milliseconds up to 600000";
                        return -EINVAL;
                }
                f->slow_ms = (uint32_t) ms;
                return 0;
        }

        double *target = IS("dup") ? &f->dup_p : IS("corrupt") ? &f->corrupt_p :
                         IS("drop") ? &f->drop_p : IS("silent") ? &f->silent_p : NULL;
        if (!target) {
                *ret_error =
                        "unknown fault (revert, reject, reset-busy, drop-at, silent-at, reboot-at, lose-answer-at, drop, silent, slow, "
                        "dup, corrupt)";
                return -EINVAL;
        }
        if (parse_prob(arg, target) < 0) {
                *ret_error = "expected a probability between 0 and 1";
                return -EINVAL;
        }
        return 0;
#undef IS
}

void sim_faults_describe(const struct sim_faults *f, char *buf, size_t size) {
        size_t o = 0;
#define ADD(...)                                                                \
        do {                                                                    \
                int _n = snprintf(buf + o, size - o, __VA_ARGS__);             \
                if (_n > 0)                                                     \
                        o = MIN(size - 1, o + (size_t) _n);                     \
        } while (0)
        buf[0] = 0;
        if (f->revert)
                ADD(" revert");
        if (f->reject)
                ADD(" reject");
        if (f->reset_busy)
                ADD(" reset-busy");
        if (f->drop_at >= 0)
                ADD(" drop-at=%" PRIi64 ",%u%s", f->drop_at, f->drop_ms, f->drop_fired ? "(fired)" : "");
        if (f->silent_at >= 0)
                ADD(" silent-at=%" PRIi64, f->silent_at);
        if (f->reboot_at >= 0)
                ADD(" reboot-at=%" PRIi64 "%s%s", f->reboot_at, f->reboot_keep ? ",keep" : "",
                    f->reboot_fired ? "(fired)" : "");
        if (f->lose_answer_at >= 0)
                ADD(" lose-answer-at=%" PRIi64 "%s", f->lose_answer_at, f->lose_answer_fired ? "(fired)" : "");
        if (f->drop_p > 0)
                ADD(" drop=%g", f->drop_p);
        if (f->silent_p > 0)
                ADD(" silent=%g", f->silent_p);
        if (f->slow_ms > 0)
                ADD(" slow=%u", f->slow_ms);
        if (f->dup_p > 0)
                ADD(" dup=%g", f->dup_p);
        if (f->corrupt_p > 0)
                ADD(" corrupt=%g", f->corrupt_p);
        if (o == 0)
                snprintf(buf, size, "none");
        else
                memmove(buf, buf + 1, strlen(buf)); /* drop the leading space */
#undef ADD
}
