/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Statistics group (2): read one group's counters and list the groups, in
 * both directions.  Conventions (writers, ownership, errors, -EREMOTEIO
 * for reported failures): see smp-os.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-cbor.h>

#ifdef __cplusplus
extern "C" {
#endif

enum smp_stat_cmd {
        SMP_STAT_CMD_READ = 0,
        SMP_STAT_CMD_LIST = 1,
};

/* Read (id 0, op read): {"name": text} -> {"name": text, "fields": {k: uint}}. */
int smp_stat_read_req_encode(struct smp_cbor_writer *w, struct smp_cbor_slice name);
int smp_stat_read_req_decode(const uint8_t *body, size_t len, struct smp_cbor_slice *ret_name,
                             struct smp_cbor_error *error);

struct smp_stat_field {
        struct smp_cbor_slice name;
        uint64_t value;
};

struct smp_stat_read_rsp {
        struct smp_cbor_slice name;
        struct smp_stat_field *fields;  /* owned after decode; see _done() */
        size_t n_fields;
};

int smp_stat_read_rsp_encode(struct smp_cbor_writer *w, const struct smp_stat_read_rsp *rsp);
int smp_stat_read_rsp_decode(const uint8_t *body, size_t len, struct smp_stat_read_rsp *ret,
                             struct smp_cbor_error *error);
void smp_stat_read_rsp_done(struct smp_stat_read_rsp *rsp);

/* List (id 1, op read {}): -> {"stat_list": [text]}. */
struct smp_stat_list_rsp {
        struct smp_cbor_slice *names;   /* owned after decode; see _done() */
        size_t n_names;
};

int smp_stat_list_rsp_encode(struct smp_cbor_writer *w, const struct smp_stat_list_rsp *rsp);
int smp_stat_list_rsp_decode(const uint8_t *body, size_t len, struct smp_stat_list_rsp *ret,
                             struct smp_cbor_error *error);
void smp_stat_list_rsp_done(struct smp_stat_list_rsp *rsp);

#ifdef __cplusplus
}
#endif
