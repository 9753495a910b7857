-- The audit trail of every policy: one row per policy (what a restarted
-- workflow resumes from), one per accepted event, one per callback attempt.
--
-- Portable SQL on purpose: the same file runs on SQLite and PostgreSQL.
-- Timestamps are BIGINT microseconds since the Unix epoch (UTC), because the
-- two drivers do not agree on how a TIMESTAMP column scans into time.Time.
-- IF NOT EXISTS lets two processes that both found the database empty apply
-- this migration without the loser failing on an existing table.

-- +goose Up
CREATE TABLE IF NOT EXISTS policies (
    biz_id           TEXT    NOT NULL PRIMARY KEY,
    state            TEXT    NOT NULL,
    insurance_type   INTEGER NOT NULL,
    policy_number    TEXT    NOT NULL DEFAULT '',
    endorsements     INTEGER NOT NULL DEFAULT 0,
    last_seq         BIGINT  NOT NULL DEFAULT 0,
    last_occurred_at TEXT    NOT NULL DEFAULT '',
    callback_state   TEXT    NOT NULL DEFAULT '',
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

-- ListPolicies filters on one column and pages by biz_id.
CREATE INDEX IF NOT EXISTS policies_state_biz_id ON policies (state, biz_id);
CREATE INDEX IF NOT EXISTS policies_callback_state_biz_id ON policies (callback_state, biz_id);

CREATE TABLE IF NOT EXISTS events (
    biz_id             TEXT    NOT NULL REFERENCES policies (biz_id),
    seq                BIGINT  NOT NULL,
    request_id         TEXT    NOT NULL,
    stage              INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    time_of_occurrence TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    accepted_at        BIGINT  NOT NULL,
    state_after        TEXT    NOT NULL,
    endorsements_after INTEGER NOT NULL DEFAULT 0,
    callback           TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_class         TEXT    NOT NULL DEFAULT '',
    last_error         TEXT    NOT NULL DEFAULT '',
    delivered_at       BIGINT,
    PRIMARY KEY (biz_id, seq),
    UNIQUE (biz_id, request_id)
);

CREATE TABLE IF NOT EXISTS attempts (
    biz_id         TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    attempt        INTEGER NOT NULL,
    started_at     BIGINT  NOT NULL,
    duration_us    BIGINT  NOT NULL,
    class          TEXT    NOT NULL,
    http_status    INTEGER NOT NULL DEFAULT 0,
    code           INTEGER NOT NULL DEFAULT 0,
    sub_code       TEXT    NOT NULL DEFAULT '',
    msg            TEXT    NOT NULL DEFAULT '',
    sub_msg        TEXT    NOT NULL DEFAULT '',
    fail_code      TEXT    NOT NULL DEFAULT '',
    fail_message   TEXT    NOT NULL DEFAULT '',
    top_request_id TEXT    NOT NULL DEFAULT '',
    detail         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (biz_id, seq, attempt),
    FOREIGN KEY (biz_id, seq) REFERENCES events (biz_id, seq)
);

-- +goose Down
DROP TABLE IF EXISTS attempts;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS policies;
