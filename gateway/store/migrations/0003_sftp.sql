-- SFTP takes: one row per remote file taken from a partner (docs/sftp.md, "order of steps").
-- state: fetched (downloaded and fsynced under a dot-name) | published (renamed into the inbox)
--        | done (moved to remote_done or deleted on the server).
CREATE TABLE sftp_takes (
    id          INTEGER PRIMARY KEY,
    partner     TEXT NOT NULL,
    remote_name TEXT NOT NULL,
    size        BIGINT NOT NULL,
    mtime       BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    temp_path   TEXT NOT NULL,
    local_path  TEXT NOT NULL,
    state       TEXT NOT NULL,
    taken_at    TEXT NOT NULL,
    done_at     TEXT
);
CREATE INDEX sftp_takes_open ON sftp_takes (partner, state);
CREATE INDEX sftp_takes_file ON sftp_takes (partner, remote_name, size, mtime);

-- SFTP deliveries: each output (path relative to outbox/, content) to each partner once.
-- state: sending (uploaded whole under remote_temp, not yet renamed) | sent.
CREATE TABLE sftp_deliveries (
    partner     TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    remote_temp TEXT NOT NULL,
    remote_path TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    state       TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    PRIMARY KEY (partner, path, sha256)
);
CREATE INDEX sftp_deliveries_open ON sftp_deliveries (partner, state);

-- Each SFTP partner's connection state, for `status` (another process) and the logs.
-- state: connected | backoff | refused (host key or authentication refused).
CREATE TABLE partners (
    name         TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    last_success TEXT,
    last_error   TEXT,
    changed_at   TEXT NOT NULL
);
