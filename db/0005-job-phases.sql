-- smpgwd database: jobs run the update in phases (stage, activate,
-- verify; doc/update-phases.md) and hold a radio slot only while a
-- phase talks to the device.  What a job needs to go on after a kill -9
-- between phases is stored with it:
--   phase       the phase to run next (or running): stage, activate,
--               verify, done
--   checkpoint  smp_update_checkpoint_format()'s line: mode, new hash,
--               the "before" snapshot, the reset's time and tries; NULL
--               before the first phase ended
--   reset_time  the checkpoint's reset time (CLOCK_REALTIME µs), as a
--               column to read without parsing; NULL: not reset
--   priority    slots go to lower values first, FIFO among equals
--   stage_only  1: the job stops in state staged until it is activated
--   board       the device's board (OS info hardware, else transport)
--               and swap_usec the reset→answer time its verify measured:
--               the swap times smpgwd learns are read back from here
-- Columns with defaults: no table is rebuilt, older rows read as a
-- stage from the start with priority 0.
ALTER TABLE jobs ADD COLUMN phase TEXT NOT NULL DEFAULT 'stage';
ALTER TABLE jobs ADD COLUMN checkpoint TEXT;
ALTER TABLE jobs ADD COLUMN reset_time INTEGER;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN stage_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN board TEXT;
ALTER TABLE jobs ADD COLUMN swap_usec INTEGER;
