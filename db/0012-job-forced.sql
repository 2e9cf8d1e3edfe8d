-- smpgwd database: a job pushed with force (to a device of another board
-- than its image declares) remembers it, so that a later change of the
-- image's boards leaves it queued after a restart as before one
-- (daemon/job.h, engine_image_set_boards()).  0 for the jobs stored
-- before: none of them was judged forced after a restart either.
ALTER TABLE jobs ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
