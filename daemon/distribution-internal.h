/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by the distribution files (distribution.c runs them,
 * distribution-engine.c checks and creates them, db-distribution.c keeps
 * them): nothing else includes it.
 */
#pragma once

#include "distribution.h"

struct db;

enum distribution_request {
        DISTRIBUTION_REQUEST_CANCEL,
        DISTRIBUTION_REQUEST_SUSPEND,
        DISTRIBUTION_REQUEST_RESUME,
        DISTRIBUTION_REQUEST_APPLY,
};

/* Appends a distribution (loaded or created) to the manager, which
 * takes it, and gives it its timer.  -ENOMEM leaves it to the caller. */
int distribution_attach(struct manager *m, struct distribution *d);
/* Runs the next step soon (unless one is in flight). */
void distribution_kick(struct distribution *d);
int distribution_request(struct distribution *d, enum distribution_request req);

/* db-distribution.c: written at once (a distribution changes at the pace
 * of its steps and polls, seconds apart). */
int db_distribution_insert(struct db *db, struct distribution *d);
int db_distribution_save(struct db *db, const struct distribution *d);
/* Loads roles, mesh targets (into their devices) and distributions. */
int db_distributions_load(struct db *db, struct manager *m);
