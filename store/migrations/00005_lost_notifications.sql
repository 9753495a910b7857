-- Notifications to the business system that ran out of their retry budget
-- (NOTIFY_RETRY_BUDGET) without a 2xx from the receiver: what the business
-- system never heard, for GET /v1/policies/{biz_id} and starter status.
-- Keyed by the notification's webhook-id, so recording one twice (a
-- retried local activity) keeps one row. No foreign key to events: the
-- row must be written even if the event's own write is still pending.

-- +goose Up
CREATE TABLE IF NOT EXISTS lost_notifications (
    webhook_id  TEXT    NOT NULL PRIMARY KEY,
    biz_id      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    type        TEXT    NOT NULL,
    occurred_at BIGINT  NOT NULL,
    lost_at     BIGINT  NOT NULL,
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS lost_notifications_by_policy ON lost_notifications (biz_id, seq);

-- +goose Down
DROP TABLE IF EXISTS lost_notifications;
