-- The shared TOP call limiter (store/ratelimit.go): one row per TOP call
-- admitted in the last window, per limiter key. Every worker of a
-- deployment shares the store, so this table is what keeps all of them
-- together under TOP_QPS. Rows older than the window are deleted by the
-- next admission, so the table holds at most about TOP_QPS rows per key.

-- +goose Up
CREATE TABLE IF NOT EXISTS top_call_slots (
    limiter_key TEXT   NOT NULL,
    slot_id     TEXT   NOT NULL,
    taken_at    BIGINT NOT NULL, -- microseconds, on the limiter's clock (see ratelimit.go)
    PRIMARY KEY (limiter_key, slot_id)
);
CREATE INDEX IF NOT EXISTS top_call_slots_key_taken_at ON top_call_slots (limiter_key, taken_at);

-- +goose Down
DROP TABLE IF EXISTS top_call_slots;
