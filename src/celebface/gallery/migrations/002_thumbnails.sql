-- celebface gallery schema, version 2: each photo's thumbnail (a small JPEG of its face) lives
-- in the database, so every server of the gallery (and one restarted) can show it. Keyed by the
-- photo id (a hash of the photo row's source); a save deletes the rows of photos that are gone.
CREATE TABLE thumbnails (
    photo text PRIMARY KEY,
    jpeg bytea NOT NULL
);
