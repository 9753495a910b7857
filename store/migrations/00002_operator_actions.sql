-- Who retried or skipped which parked callback, when and why: the audit
-- trail of operator actions. The key includes the action's time (the
-- workflow's clock, so a retried write repeats it exactly), so recording
-- the same action twice keeps one row.

-- +goose Up
CREATE TABLE IF NOT EXISTS operator_actions (
    biz_id  TEXT    NOT NULL,
    seq     BIGINT  NOT NULL,
    action  TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    by_whom TEXT    NOT NULL DEFAULT '',
    reason  TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (biz_id, seq, action, at),
    FOREIGN KEY (biz_id, seq) REFERENCES events (biz_id, seq)
);

-- +goose Down
DROP TABLE IF EXISTS operator_actions;
