-- smpgwd database: a Bluetooth Mesh target may also be reachable over a
-- direct link (GATT, or any SMP transport), as another device of the
-- inventory that is the same node.  The operator names that device
-- (doc/mesh-dfu.md); a rollout's plan then compares the direct path with
-- the Distributor path and takes the faster (doc/rollouts.md).
-- NULL: the target has no direct link (only its Distributor reaches it).
-- No foreign key: forgetting that device clears the column (daemon/engine.c).
ALTER TABLE mesh_targets ADD COLUMN direct_device_id INTEGER;

-- The multicast rate a finished distribution measured: the image's bytes
-- over the time its rounds spent transferring (bytes/s), NULL when it
-- measured none.  The planner takes the newest of each Distributor's.
ALTER TABLE distributions ADD COLUMN mesh_rate REAL;
