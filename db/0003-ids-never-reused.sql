-- smpgwd database, version 3.
-- Device and job ids name D-Bus objects (/org/smpgw/device/<id>) and REST
-- resources that clients remember.  With a plain INTEGER PRIMARY KEY,
-- SQLite hands the largest id out again once its row is deleted (forget
-- the newest device, add another: same id, a stale client link now names
-- a different device).  AUTOINCREMENT keeps ids increasing for good.
--
-- Both tables are rebuilt (SQLite cannot add AUTOINCREMENT in place):
-- the procedure of sqlite.org/lang_altertable.html, "Making Other Kinds
-- Of Table Schema Changes".  daemon/db.c runs migrations with foreign
-- keys off and runs PRAGMA foreign_key_check before COMMIT, so dropping
-- the old devices table does not cascade into slots and jobs.
CREATE TABLE devices_new (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conn            TEXT NOT NULL UNIQUE,
        transport       TEXT NOT NULL,
        address         TEXT,
        address_type    TEXT,
        adapter         TEXT,
        name            TEXT,
        rssi            INTEGER,
        state           TEXT NOT NULL DEFAULT 'new',
        source          TEXT NOT NULL,
        first_seen      INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        last_probe      INTEGER,
        buf_size        INTEGER,
        buf_count       INTEGER,
        os_info         TEXT,
        bootloader      TEXT,
        smp_version     INTEGER,
        last_error      TEXT
) STRICT;
INSERT INTO devices_new SELECT * FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;

CREATE TABLE jobs_new (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO jobs_new SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_device ON jobs(device_id);
