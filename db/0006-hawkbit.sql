-- smpgwd database: the hawkBit DDI gateway client (daemon/hawkbit*.c,
-- doc/hawkbit.md).  New tables only; nothing existing is rebuilt.
--
-- hawkbit_actions: the deployment action each exposed device works on,
-- so a restart neither downloads nor installs twice and still reports
-- how the action ended.  One row per device at most; it goes with the
-- device.
CREATE TABLE hawkbit_actions (
        device_id       INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        action_id       INTEGER NOT NULL,
        state           TEXT NOT NULL,          -- downloading, waiting, running, finished
        sha256          TEXT NOT NULL,          -- the artifact's, as the server gave it
        url             TEXT NOT NULL,          -- its download-http href
        size            INTEGER NOT NULL,
        image_id        TEXT NOT NULL,          -- the stored image, '' until downloaded
        update_type     TEXT NOT NULL,          -- skip, attempt, forced
        window_open     INTEGER NOT NULL,       -- maintenanceWindow available (or none)
        job_id          INTEGER NOT NULL,       -- 0: no job yet
        scheduled_sent  INTEGER NOT NULL,
        last_feedback   TEXT NOT NULL,
        updated_usec    INTEGER NOT NULL
) STRICT;

-- hawkbit_feedback: feedback not yet accepted by the server, oldest
-- first; sent in order once the server answers.  No foreign key: the
-- closing feedback of a device forgotten meanwhile is still the truth.
CREATE TABLE hawkbit_feedback (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id       INTEGER NOT NULL,
        controller_id   TEXT NOT NULL,
        path            TEXT NOT NULL,          -- below .../controller/v1/{controllerId}/
        body            TEXT NOT NULL,          -- the JSON as it is sent
        created_usec    INTEGER NOT NULL
) STRICT;

-- hawkbit_downloads: artifacts, one per sha256 however many actions
-- want it: downloading (image_id '', the bytes so far are the .part
-- file's) or stored as image_id, which later actions reuse.
CREATE TABLE hawkbit_downloads (
        sha256          TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        size            INTEGER NOT NULL,
        image_id        TEXT NOT NULL,
        created_usec    INTEGER NOT NULL
) STRICT;
