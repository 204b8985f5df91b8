-- celebface gallery schema, version 1: one gallery per database.
-- The gallery row carries the embedder spec, thresholds and a version counter that every
-- committed save increments (servers poll it to keep their in-memory index in sync).
CREATE TABLE gallery (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version bigint NOT NULL,
    dim integer NOT NULL,
    embedder jsonb NOT NULL,
    thresholds jsonb NOT NULL,
    calibration jsonb NOT NULL,
    info jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- people in label order: position = the label of their photos' rows
CREATE TABLE people (
    position integer PRIMARY KEY,
    name text NOT NULL UNIQUE
);

-- one enrolled face per row, in row order; vector: `dim` float32 values, little-endian
CREATE TABLE photos (
    position integer PRIMARY KEY,
    person integer NOT NULL REFERENCES people (position) ON DELETE CASCADE,
    source text NOT NULL,
    vector bytea NOT NULL
);
CREATE INDEX photos_person_source ON photos (person, source);
