/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Following smpgwd's jobs live (watch, push --wait): PropertiesChanged
 * signals keep each job's properties current, never polling; on a
 * terminal one line per job is redrawn in place, fitted to its width,
 * otherwise a line is written whenever a job's state, step or outcome
 * changes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "ctl-daemon.h"

struct watched_job {
        uint64_t id;
        char path[64];
        json_t *props;              /* Job1 properties (D-Bus names), kept current from signals */
        char last_state[96];        /* what the last plain line said */
};

struct watch {
        struct client *client;
        sd_event *event;
        struct watched_job *jobs;
        size_t n_jobs;
        bool follow;                /* also take jobs created later; end only on a signal */
        bool tty;                   /* redraw one line per job in place */
        unsigned lines_drawn;
        bool done;
        int signal;
        int exit_code;              /* set when the daemon went away */
};

bool job_state_is_final(const char *state);
/* Subscribes to the signals first, so no change between a read and the
 * subscription is lost.  Negative errno. */
int watch_subscribe(struct watch *w);
/* props: taken (Job1 properties under their D-Bus names).  -ENOMEM. */
int watch_add(struct watch *w, const char *path, json_t *props);
/* Reads the job's properties and adds it.  An exit code. */
int watch_add_job_path(struct watch *w, const char *path);
/* Puts the jobs in the order of their ids. */
void watch_sort(struct watch *w);
/* Runs until every job has finished (or, with follow, until a signal);
 * returns the exit code: the first job's that did not succeed.  With
 * --json prints {"jobs": [...]} in the REST shape. */
int watch_run(struct watch *w);
void watch_done(struct watch *w);

/* One job as a line of at most cols - 1 columns (a terminal wraps a
 * line that fills its last column): the bar takes the room the text
 * leaves, up to 50 columns; on a narrow terminal the padding goes, then
 * the bar, then the line is cut.  bar false: no bar (a log line). */
void watch_job_line(const struct watched_job *j, bool bar, int cols, char *buf, size_t size);
