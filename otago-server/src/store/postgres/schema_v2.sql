-- Schema version 2: claims on background jobs (compressing an asset, making a channel's bundle
-- patches), so that one replica does each and a dead replica's job is taken up when its claim
-- runs out. job: 'compress:<hash>' or 'patches:<project>/<platform>/<runtime version>'.
CREATE TABLE job_claims (
    job      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
