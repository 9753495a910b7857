-- Until when a started attempt may still be at TOP (micros, like
-- started_at): its grant sets it a heartbeat timeout ahead, and the
-- attempt pushes it on while its TOP call runs. A later attempt of the
-- same callback, or the next callback's, is not granted while it lies
-- ahead: a run stopped from Temporal leaves its attempt running in a live
-- worker, and the run that resumes the policy must not send the callback
-- beside it (TOP got it twice) or the next one before it ends (TOP got
-- seq 1 again after seq 2). A dead worker's attempt stops pushing it on,
-- so it lapses when Temporal's heartbeat timeout does. NULL on rows
-- written before, and on outcomes: nothing to wait for.

-- +goose Up
ALTER TABLE attempts ADD COLUMN alive_until BIGINT;

-- +goose Down
ALTER TABLE attempts DROP COLUMN alive_until;
