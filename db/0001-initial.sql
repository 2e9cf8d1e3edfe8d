-- smpgwd database, version 1.
-- Applied by daemon/db.c inside one transaction together with
-- PRAGMA user_version = 1.  Times are microseconds since the Unix epoch
-- (CLOCK_REALTIME); hashes are lower-case hex.  STRICT tables (SQLite
-- >= 3.37) so a wrong type is an error, not a silent conversion.

-- Every device the gateway has seen or was told about.  The connection
-- string is its identity per transport ("udp:127.0.0.1:1337",
-- "ble:AA:BB:CC:DD:EE:FF", ...).  Devices are never deleted by the
-- daemon itself: absent ones are marked so; only "forget" deletes.
CREATE TABLE devices (
        id              INTEGER PRIMARY KEY,
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

-- The image slots as the device last reported them (image state read).
CREATE TABLE device_slots (
        device_id       INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        image           INTEGER NOT NULL,
        slot            INTEGER NOT NULL,
        version         TEXT NOT NULL,
        hash            TEXT NOT NULL,
        bootable        INTEGER NOT NULL,
        pending         INTEGER NOT NULL,
        confirmed       INTEGER NOT NULL,
        active          INTEGER NOT NULL,
        permanent       INTEGER NOT NULL,
        PRIMARY KEY (device_id, image, slot)
) STRICT;

-- Validated MCUboot images, stored as <state dir>/images/<id>.img.
-- id is the image hash (the SHA256 TLV), the name devices report.
CREATE TABLE images (
        id              TEXT PRIMARY KEY,
        name            TEXT,
        version         TEXT NOT NULL,
        file_size       INTEGER NOT NULL,
        image_size      INTEGER NOT NULL,
        file_sha256     TEXT NOT NULL,
        signed          INTEGER NOT NULL,
        key             TEXT,
        added           INTEGER NOT NULL
) STRICT;

-- Push jobs: one image to one device.  rollout_id is set when a rollout
-- (a later schema version) created the job.  Progress columns are
-- checkpointed every few seconds, not per chunk.
CREATE TABLE jobs (
        id              INTEGER PRIMARY KEY,
        device_id       INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        image_id        TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
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
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_device ON jobs(device_id);

-- What happened, for the history of a device, an image or a job.
CREATE TABLE events (
        id              INTEGER PRIMARY KEY,
        time            INTEGER NOT NULL,
        type            TEXT NOT NULL,
        device_id       INTEGER,
        image_id        TEXT,
        job_id          INTEGER,
        message         TEXT NOT NULL
) STRICT;
CREATE INDEX events_device ON events(device_id, time);
CREATE INDEX events_time ON events(time);
