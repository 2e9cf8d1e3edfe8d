-- smpgwd database, version 4.
-- A job's outcome says what the job did.  lib/smp-update.c judges each
-- attempt against the image state it reads at the attempt's start; after
-- a crash or kill -9 the next attempt of the same job starts from a
-- device this job has already updated, and reported it "up-to-date".
-- The job now reads the device's slots once, before its first attempt,
-- and keeps them here (written at once, before the update begins), so
-- the outcome is judged against the device as the job found it, across
-- restarts.  No row: not read yet (an unfinished job created by
-- version 3 gets its rows at its next attempt, from the device as that
-- attempt finds it).
--
-- A new table, so no table is rebuilt; its rows go with their job
-- (pruned with [jobs] keep, or with the device: ON DELETE CASCADE).
CREATE TABLE job_slots_before (
        job_id          INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        image           INTEGER NOT NULL,
        slot            INTEGER NOT NULL,
        version         TEXT NOT NULL,
        hash            TEXT NOT NULL,
        bootable        INTEGER NOT NULL,
        pending         INTEGER NOT NULL,
        confirmed       INTEGER NOT NULL,
        active          INTEGER NOT NULL,
        permanent       INTEGER NOT NULL,
        PRIMARY KEY (job_id, image, slot)
) STRICT;
