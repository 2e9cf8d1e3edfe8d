-- smpgwd database, version 2.
-- A finished job is history: it keeps naming the image it pushed after
-- that image is removed from the store (the image id is the hash the
-- device reports, meaningful on its own).  Version 1 made jobs.image_id a
-- foreign key ON DELETE RESTRICT, so an image that was ever pushed could
-- never be removed.  Unfinished jobs still hold their image: smpgwd
-- refuses to remove an image in use (image_in_use()).
--
-- SQLite cannot drop a constraint in place; the table is rebuilt
-- (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema
-- Changes").  Nothing references jobs, so dropping it with foreign keys
-- on deletes nothing elsewhere.
CREATE TABLE jobs_new (
        id              INTEGER PRIMARY KEY,
        device_id       INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        image_id        TEXT NOT NULL,
        rollout_id      INTEGER,
        mode            TEXT NOT NULL,
        state           TEXT NOT NULL,
        step            TEXT,
        outcome         TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        max_attempts    INTEGER NOT NULL,
        bytes_sent      INTEGER NOT NULL DEFAULT 0,
        bytes_total     INTEGER NOT NULL DEFAULT 0,
        rate            REAL NOT NULL DEFAULT 0,
        error           TEXT,
        created         INTEGER NOT NULL,
        started         INTEGER,
        finished        INTEGER,
        next_attempt    INTEGER,
        updated         INTEGER NOT NULL
) STRICT;
INSERT INTO jobs_new (id, device_id, image_id, rollout_id, mode, state, step, outcome, attempts,
                      max_attempts, bytes_sent, bytes_total, rate, error, created, started, finished,
                      next_attempt, updated)
        SELECT id, device_id, image_id, rollout_id, mode, state, step, outcome, attempts,
               max_attempts, bytes_sent, bytes_total, rate, error, created, started, finished,
               next_attempt, updated
        FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_device ON jobs(device_id);
