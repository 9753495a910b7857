-- The export (store/export.go) reads every event in (accepted_at, biz_id,
-- seq) order and pages with that keyset; this index serves both the order
-- and the cursor's range without a sort of the whole table.

-- +goose Up
CREATE INDEX IF NOT EXISTS events_accepted_at_biz_id_seq ON events (accepted_at, biz_id, seq);

-- +goose Down
DROP INDEX IF EXISTS events_accepted_at_biz_id_seq;
