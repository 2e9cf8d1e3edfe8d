-- smpgwd database: rollout members of mesh targets are updated by a
-- Bluetooth Mesh distribution, not by a job (daemon/rollout-executor.c,
-- doc/rollouts.md).  The member keeps the distribution it belongs to, so
-- a restart follows that distribution instead of starting another.
-- NULL for members updated by jobs and for mesh members not sent yet.
ALTER TABLE rollout_member ADD COLUMN distribution_id INTEGER;
