-- The Temporal Update that took an operator action (or an import): the
-- audit row's idempotency key. The primary key's time is the workflow's
-- clock when the handler ran, and a handler whose workflow task was lost
-- (its worker killed before completing it) runs again in a later task with
-- a later clock: keyed by time alone, its row was written twice (found by
-- chaos: two audit rows for one retry). The Update's ID is the same on
-- every run of its handler. Rows written before have ''.

-- +goose Up
ALTER TABLE operator_actions ADD COLUMN update_id TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX IF NOT EXISTS operator_actions_update ON operator_actions (biz_id, seq, action, update_id) WHERE update_id <> '';

-- +goose Down
DROP INDEX IF EXISTS operator_actions_update;
ALTER TABLE operator_actions DROP COLUMN update_id;
