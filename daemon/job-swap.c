/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Swap times learned per board and image size (job-radio.h).  MCUboot's
 * swap copies the image sector by sector, so the time grows with the
 * image: every sample is scaled to the size asked about, and the 80th
 * percentile of those is the estimate (a verify tried at the estimate
 * finds four devices out of five back; the rest cost one more try).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "manager.h"
#include "os-info.h"
#include "util.h"

void job_device_board(const struct device *d, char *buf, size_t size) {
        /* The hardware platform of its OS info (os-info.h), the board
         * rollout filters match too. */
        struct os_info_fields os;

        if (os_info_parse(d->os_info, &os) >= 0)
                snprintf(buf, size, "%s", os.board);
        else
                snprintf(buf, size, "%s", d->transport);
}

static struct job_swap_board *board_find(struct manager *m, const char *board, bool create) {
        struct job_radio *r = &m->radio;

        for (size_t i = 0; i < r->n_boards; i++)
                if (strncmp(r->boards[i].name, board, sizeof(r->boards[i].name) - 1) == 0)
                        return &r->boards[i];
        if (!create || r->n_boards == JOB_SWAP_BOARDS_MAX)
                return NULL;
        struct job_swap_board *b = realloc(r->boards, (r->n_boards + 1) * sizeof(*b));
        if (!b)
                return NULL;
        r->boards = b;
        b = &r->boards[r->n_boards++];
        *b = (struct job_swap_board) {};
        snprintf(b->name, sizeof(b->name), "%s", board);
        return b;
}

void job_swap_record(struct manager *m, const char *board, uint64_t image_size, uint64_t swap_usec) {
        struct job_swap_board *b;

        if (!board || !board[0] || swap_usec == 0 || image_size == 0)
                return;
        b = board_find(m, board, true);
        if (!b)
                return;
        b->samples[b->next] = (struct job_swap_sample) { .image_size = image_size, .swap_usec = swap_usec };
        b->next = (b->next + 1) % JOB_SWAP_SAMPLES;
        if (b->n < JOB_SWAP_SAMPLES)
                b->n++;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

uint64_t job_swap_estimate_usec(struct manager *m, const char *board, uint64_t image_size, bool *ret_learned) {
        struct job_swap_board *b = board ? board_find(m, board, false) : NULL;
        uint64_t scaled[JOB_SWAP_SAMPLES];

        if (ret_learned)
                *ret_learned = b && b->n > 0;
        if (!b || b->n == 0)
                return m->config->job_swap_estimate_usec;
        for (unsigned i = 0; i < b->n; i++) {
                const struct job_swap_sample *s = &b->samples[i];
                double v = (double) s->swap_usec;
                if (image_size > 0)
                        v *= (double) image_size / (double) s->image_size;
                scaled[i] = (uint64_t) v;
        }
        qsort(scaled, b->n, sizeof(scaled[0]), cmp_u64);
        /* nearest rank: the smallest value at or above 80 % of them */
        unsigned rank = (b->n * 80 + 99) / 100;
        return scaled[MAX(rank, 1u) - 1];
}

uint64_t job_swap_timeout_usec(struct manager *m, uint64_t estimate_usec) {
        uint64_t t = MAX(3 * estimate_usec, JOB_SWAP_TIMEOUT_MIN_USEC);
        return MIN(t, m->config->job_swap_timeout_usec);
}
