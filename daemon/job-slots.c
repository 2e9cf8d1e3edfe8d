/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * BLE adapters' link limits, learned (job-radio.h).  A controller keeps
 * only so many LE links (a Pi's onboard one about 7); past that it aborts
 * the connection, which the bluez plugin reports as -EUSERS.  The limit
 * that refusal teaches is kept per adapter and tried one higher again
 * after a while, since the refusal may have come from links that other
 * programs held.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-discovery.h"
#include "util.h"

void job_radio_done(struct job_radio *r) {
        free(r->boards);
        smp_discovery_free(r->advert_watch);
        *r = (struct job_radio) {};
}

static struct job_adapter_limit *adapter_find(struct manager *m, const char *adapter, bool create) {
        struct job_radio *r = &m->radio;

        if (!adapter || !adapter[0])
                return NULL;
        for (size_t i = 0; i < r->n_adapters; i++)
                if (strncmp(r->adapters[i].name, adapter, sizeof(r->adapters[i].name)) == 0)
                        return &r->adapters[i];
        if (!create || r->n_adapters == JOB_ADAPTERS_MAX)
                return NULL;
        struct job_adapter_limit *a = &r->adapters[r->n_adapters++];
        *a = (struct job_adapter_limit) {
                .limit = m->config->jobs_max_running_ble_adapter,
                .changed_usec = now_monotonic_usec(),
        };
        snprintf(a->name, sizeof(a->name), "%s", adapter);
        return a;
}

/* Raises a lowered limit by one after enough connects or time. */
static void adapter_maybe_raise(struct manager *m, struct job_adapter_limit *a) {
        unsigned max = m->config->jobs_max_running_ble_adapter;
        uint64_t now = now_monotonic_usec();

        if (a->limit >= max)
                return;
        if (a->successes < JOB_ADAPTER_RAISE_SUCCESSES && now - a->changed_usec < JOB_ADAPTER_RAISE_AFTER_USEC)
                return;
        a->limit++;
        a->successes = 0;
        a->changed_usec = now;
        log_info("Adapter %s: trying %u links again (at most %u configured).", a->name, a->limit, max);
}

unsigned job_adapter_limit(struct manager *m, const char *adapter) {
        struct job_adapter_limit *a = adapter_find(m, adapter, false);

        if (!adapter || !adapter[0])
                return UINT_MAX;
        if (!a)
                return m->config->jobs_max_running_ble_adapter;
        adapter_maybe_raise(m, a);
        return a->limit;
}

void job_adapter_refused(struct manager *m, const char *adapter, unsigned links_held) {
        struct job_adapter_limit *a = adapter_find(m, adapter, true);
        unsigned limit = MAX(links_held, 1u);

        if (!a)
                return;
        a->successes = 0;
        a->changed_usec = now_monotonic_usec();
        if (limit >= a->limit)
                return;
        log_notice("Adapter %s refused a link with %u held: its limit is %u now (was %u).", a->name, links_held, limit,
                   a->limit);
        a->limit = limit;
}

void job_adapter_connected(struct manager *m, const char *adapter) {
        struct job_adapter_limit *a = adapter_find(m, adapter, false);

        if (a && a->successes < UINT_MAX)
                a->successes++;
}

const struct job_adapter_limit *job_adapter_limits(struct manager *m, size_t *ret_n) {
        for (size_t i = 0; i < m->radio.n_adapters; i++)
                adapter_maybe_raise(m, &m->radio.adapters[i]);
        *ret_n = m->radio.n_adapters;
        return m->radio.adapters;
}
