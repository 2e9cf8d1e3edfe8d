-- smpgwd database: the boards an image is built for.  MCUboot images
-- carry no board, so the operator declares them (at upload or later);
-- a device's board comes from its OS info answer.  The names joined by
-- one space (a board name has none), '' for none: any board
-- (daemon/image-boards.h, doc/smpgwd.md).
ALTER TABLE images ADD COLUMN boards TEXT NOT NULL DEFAULT '';
