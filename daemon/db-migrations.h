/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The migrations embedded from db/NNNN-*.sql (db/embed-migrations.py). */
#pragma once

struct db_migration {
        unsigned version;       /* the user_version this step produces */
        const char *name;       /* its file name */
        const char *sql;
};

extern const struct db_migration db_migrations[];
extern const unsigned db_migrations_count;
