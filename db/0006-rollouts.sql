-- smpgwd database: rollouts and device labels (issue 12).
-- A rollout pushes one image to many devices in waves (doc/rollouts.md).
-- What is read whole (targets, schedule, policy) is JSON; what is
-- filtered or counted (states, waves, reasons) is a column.  A rollout
-- and its members are written at every change of state, so a kill -9
-- loses no decision; times are CLOCK_REALTIME microseconds.

-- Labels users attach to devices ([a-z0-9][a-z0-9._-]{0,31}, at most 16
-- per device); rollout filters select by them, and "relay"/"proxy" count
-- against a rollout's relay reboot budget.  They go with their device.
CREATE TABLE device_label (
        device_id       INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        label           TEXT NOT NULL,
        PRIMARY KEY (device_id, label)
) STRICT;

-- Ids are never reused (AUTOINCREMENT), as for devices and jobs: a
-- client that remembers rollout 7 never finds another rollout under it.
CREATE TABLE rollout (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        name            TEXT,
        image_id        TEXT NOT NULL,
        mode            TEXT NOT NULL,
        state           TEXT NOT NULL,
        created         INTEGER NOT NULL,
        started         INTEGER,
        finished        INTEGER,
        updated         INTEGER NOT NULL,
        targets         TEXT NOT NULL,
        schedule        TEXT NOT NULL,
        policy          TEXT NOT NULL,
        current_wave    INTEGER NOT NULL DEFAULT 0,
        n_waves         INTEGER NOT NULL DEFAULT 0,
        -- the current wave's soak ends (CLOCK_REALTIME; re-armed on
        -- CLOCK_BOOTTIME at load with what is left of it); NULL: none
        soak_until      INTEGER,
        activate_now    INTEGER NOT NULL DEFAULT 0,
        -- a resume forgives the failures and reverts that halted it:
        -- the wave they were in, and how many
        forgiven_wave   INTEGER NOT NULL DEFAULT 0,
        forgiven_failures INTEGER NOT NULL DEFAULT 0,
        forgiven_reverts INTEGER NOT NULL DEFAULT 0,
        error           TEXT,
        paused_reason   TEXT
) STRICT;
CREATE INDEX rollout_state ON rollout(state);

-- A member's device may be forgotten while the rollout is kept: no
-- foreign key to devices, the member stays with its last state.
CREATE TABLE rollout_member (
        rollout_id      INTEGER NOT NULL REFERENCES rollout(id) ON DELETE CASCADE,
        device_id       INTEGER NOT NULL,
        wave            INTEGER,
        order_key       INTEGER,
        state           TEXT NOT NULL,
        reason          TEXT,
        job_id          INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt    INTEGER,
        bytes_sent      INTEGER NOT NULL DEFAULT 0,
        updated         INTEGER NOT NULL,
        PRIMARY KEY (rollout_id, device_id)
) STRICT;
CREATE INDEX rollout_member_state ON rollout_member(rollout_id, state);
