-- smpgwd database: the Bluetooth Mesh composition of the firmware in an
-- image, which a distribution sends to mesh targets in the firmware
-- metadata (doc/mesh-dfu.md): the hash of its Composition Data Page 0
-- (u32) and its element count (1..65535).  MCUboot images carry neither,
-- so the operator declares them.  Both NULL for none (every image stored
-- so far): a hash of 0 is a valid hash, not "none".
ALTER TABLE images ADD COLUMN mesh_comp_hash INTEGER;
ALTER TABLE images ADD COLUMN mesh_comp_elements INTEGER;
