-- smpgwd database: Bluetooth Mesh distributions (doc/mesh-dfu.md).
-- New tables only, so no table is rebuilt and older rows stay as they are.
--
-- device_roles: what a device is besides an SMP endpoint.  The one role
-- today is 'mesh-distributor' (detected from `mesh models dfd
-- capabilities-get`, or set by the operator).  No row: a plain device.
CREATE TABLE device_roles (
        device_id       INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        role            TEXT NOT NULL
) STRICT;

-- mesh_targets: a device of transport 'mesh' ("mesh:<distributor id>/<unicast
-- address>") is a Bluetooth Mesh node smpgw reaches only through its
-- Distributor; what the Distributor last said of it.
CREATE TABLE mesh_targets (
        device_id       INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        distributor_id  INTEGER NOT NULL,   -- no foreign key: smpgwd refuses to forget
                                            -- a Distributor that still has targets
        addr            INTEGER NOT NULL,
        fwid            TEXT,
        version         TEXT,
        phase           INTEGER,
        status          INTEGER,
        updated         INTEGER NOT NULL
) STRICT;

-- distributions: one image for a list of mesh targets behind one
-- Distributor, in rounds of at most targets_max receivers, failed targets
-- re-driven in later rounds while attempts and the deadline allow.  A
-- finished distribution is a record and outlives its devices (no foreign
-- keys to them, as jobs outlive their images).
CREATE TABLE distributions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        distributor_id  INTEGER NOT NULL,
        image_id        TEXT NOT NULL,
        state           TEXT NOT NULL,
        step            TEXT NOT NULL,
        apply           TEXT NOT NULL,
        app_idx         INTEGER NOT NULL,
        grp             INTEGER NOT NULL,
        ttl             INTEGER NOT NULL,
        timeout_base    INTEGER NOT NULL,
        xfer_mode       INTEGER NOT NULL,
        max_attempts    INTEGER NOT NULL,
        deadline        INTEGER NOT NULL,
        poll_min        INTEGER NOT NULL,
        poll_max        INTEGER NOT NULL,
        rounds          INTEGER NOT NULL,
        slot_idx        INTEGER NOT NULL,
        rollout_id      INTEGER NOT NULL,
        created         INTEGER NOT NULL,
        updated         INTEGER NOT NULL,
        finished        INTEGER,
        error           TEXT
) STRICT;

CREATE TABLE distribution_targets (
        distribution_id INTEGER NOT NULL REFERENCES distributions(id) ON DELETE CASCADE,
        device_id       INTEGER NOT NULL,
        addr            INTEGER NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL,
        phase           INTEGER NOT NULL,
        status          INTEGER NOT NULL,
        progress        INTEGER NOT NULL,
        reason          TEXT,
        PRIMARY KEY (distribution_id, addr)
) STRICT;
