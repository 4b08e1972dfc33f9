-- 0008: clip tensors built from frames. Clips imported from a DFEW release
-- have JPEG frames but no clip.u8; a tensor job builds one in
-- HOME/outputs/clips/<id>/ and records it here. fold_clips gains the path a
-- trainer reads. See schema/README.md.

ALTER TABLE clips ADD COLUMN tensor_path TEXT; -- the clip's clip.u8 when it is not output_dir/clip.u8 (a tensor job's)

DROP VIEW fold_clips;
CREATE VIEW fold_clips AS
SELECT s.name                                 AS split,
       f.fold,
       f.clip_id,
       c.name,
       c.movie_id,
       f.label,
       e.name                                 AS label_name,
       c.state,
       c.output_dir,
       coalesce(c.tensor_path, c.output_dir || '/clip.u8') AS tensor
FROM fold_members f
JOIN splits s ON s.id = f.split_id
JOIN clips c ON c.id = f.clip_id
JOIN emotions e ON e.id = f.label;
