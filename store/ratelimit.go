package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The shared call limiter. TOP bans an app that calls an API more than its
// limit in any one second, and every worker of a deployment calls TOP with
// the same app key, so the limit must be counted where all of them meet:
// the store they share. TakeCallSlot admits a call only while fewer than
// limit calls were admitted in the preceding window, and records it. It is
// a strict sliding window, not a token bucket: a bucket with burst N lets
// N calls through at the end of one second and N more at the start of the
// next, 2N within one second as a gateway counts, which is exactly what
// the issue measured with Temporal's task-queue rate limit.
//
// Each admission is one short transaction that holds the limiter's lock:
// on SQLite every write transaction begins IMMEDIATE (see sqliteConfig),
// which takes the database's write lock at BEGIN; on PostgreSQL a
// transaction-scoped advisory lock per limiter key. So the count and the
// insert can never interleave with another worker's, and nothing has to be
// cleaned up if a worker dies holding it.

// callSlotLockClass is the first key of the PostgreSQL advisory lock that
// serialises admissions; the second is the hash of the limiter key. It
// differs from the migration lock's id so the two never wait for each other.
const callSlotLockClass = 0x1f5e_0013

// CallSlot is one admitted call.
type CallSlot struct {
	Key string
	ID  string
	// TakenAt is when it was admitted, on the limiter's clock: the
	// database server's for PostgreSQL (workers on several hosts then
	// agree on it however their clocks drift), this host's for SQLite
	// (every process sharing the file runs on this host).
	TakenAt time.Time
	// NotBefore is a moment on this process's clock no later than
	// TakenAt: time.Since(NotBefore) bounds how long ago the call was
	// admitted, so a caller can tell that it is about to send a call much
	// later than its admission said (see the activities' lag check).
	NotBefore time.Time
}

// TakeCallSlot admits one call under key if fewer than limit calls were
// admitted in the window before now, recording it; otherwise it records
// nothing and returns how long until the oldest call that blocks it leaves
// the window (wait > 0), when the caller may try again. The window is
// half-open, (now-window, now]: a call admitted exactly one window after
// another no longer counts it.
func (s *Store) TakeCallSlot(ctx context.Context, key string, limit int, window time.Duration) (slot CallSlot, wait time.Duration, err error) {
	if limit < 1 {
		return CallSlot{}, 0, &InvalidError{Field: "limit", Problem: fmt.Sprintf("is %d, want at least 1", limit)}
	}
	if window <= 0 {
		return CallSlot{}, 0, &InvalidError{Field: "window", Problem: fmt.Sprintf("is %v, want a positive duration", window)}
	}
	id, err := newSlotID()
	if err != nil {
		return CallSlot{}, 0, err
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if s.dialect == postgresDialect {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, callSlotLockClass, key); err != nil {
				return fmt.Errorf("lock call limiter: %w", err)
			}
		}
		notBefore, now, err := s.limiterNow(ctx, tx)
		if err != nil {
			return err
		}
		nowUS, windowUS := micros(now), window.Microseconds()
		if _, err := tx.ExecContext(ctx, tx.Rebind(
			`DELETE FROM top_call_slots WHERE limiter_key = ? AND taken_at <= ?`), key, nowUS-windowUS); err != nil {
			return fmt.Errorf("expire call slots: %w", err)
		}
		var taken []int64
		if err := tx.SelectContext(ctx, &taken, tx.Rebind(
			`SELECT taken_at FROM top_call_slots WHERE limiter_key = ? ORDER BY taken_at`), key); err != nil {
			return fmt.Errorf("count call slots: %w", err)
		}
		if len(taken) >= limit {
			// The call may go once all but limit-1 of these have left the
			// window; the one that must leave last is this one. Never more
			// than a window: a slot "from the future" (a clock stepped back)
			// must not block for longer than it would have counted.
			blocker := taken[len(taken)-limit]
			wait = min(time.Duration(blocker+windowUS-nowUS)*time.Microsecond, window)
			wait = max(wait, time.Microsecond)
			return nil
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(
			`INSERT INTO top_call_slots (limiter_key, slot_id, taken_at) VALUES (?, ?, ?)`), key, id, nowUS); err != nil {
			return fmt.Errorf("take call slot: %w", err)
		}
		slot = CallSlot{Key: key, ID: id, TakenAt: now, NotBefore: notBefore}
		return nil
	})
	if err != nil {
		return CallSlot{}, 0, fmt.Errorf("call limiter %s: %w", key, err)
	}
	return slot, wait, nil
}

// ReleaseCallSlot gives back a slot whose call was never made, so that it
// stops counting. Releasing a slot already gone is a no-op.
func (s *Store) ReleaseCallSlot(ctx context.Context, slot CallSlot) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(
		`DELETE FROM top_call_slots WHERE limiter_key = ? AND slot_id = ?`), slot.Key, slot.ID); err != nil {
		return fmt.Errorf("call limiter %s: release slot: %w", slot.Key, err)
	}
	return nil
}

// limiterNow reads the limiter's clock inside the admission transaction,
// after its lock is held, and the local time just before it.
func (s *Store) limiterNow(ctx context.Context, tx *sqlx.Tx) (notBefore, now time.Time, err error) {
	notBefore = time.Now()
	if s.dialect != postgresDialect {
		return notBefore, notBefore, nil
	}
	// clock_timestamp, not now(): now() is the transaction's start, which
	// may precede a long wait for the lock.
	var us int64
	if err := tx.GetContext(ctx, &us, `SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT`); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the database clock: %w", err)
	}
	return notBefore, fromMicros(us), nil
}

func newSlotID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("call slot id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
