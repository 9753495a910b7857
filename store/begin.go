package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Grant is BeginAttempt's answer: whether the attempt may call TOP, and
// under which attempt number.
type Grant struct {
	// Attempt is the number the attempt was recorded under: the one asked
	// for, or the next free one when that number was used already (see
	// BeginAttempt). Zero when the attempt may not call TOP.
	Attempt int

	// Delivered is set when the event's callback is already delivered: the
	// attempt must not call TOP again but answer with this delivery.
	Delivered *Delivery
	// Skipped is set when an operator skipped the callback.
	Skipped bool
	// Superseded is set when an attempt that began after this one has
	// already been recorded: this one outlived its heartbeat timeout and
	// Temporal has retried it, so it must not call TOP (a late duplicate,
	// possibly after the next event's callback).
	Superseded bool
	// Busy is set when another attempt, of this callback or of the one
	// ahead of it, may still be at TOP (its lease has not lapsed): this one
	// must not call TOP beside it, and nothing was recorded for it; it asks
	// again once that attempt ends, or by Busy.Until.
	Busy *Busy
}

// Busy is the attempt in the way of a Grant: one that was granted, has no
// outcome yet and is still alive (see LeaseAttempt). It is how a run
// stopped from Temporal and the run that resumed its policy keep to one
// callback at TOP at a time: the stopped run's attempt runs on in its
// worker, and nothing told the new run it is there.
type Busy struct {
	Seq     int64 // the callback: the asking attempt's, or the one ahead of it
	Attempt int
	Until   time.Time // when its lease lapses unless it is renewed
}

// Delivery is a recorded delivered attempt.
type Delivery struct {
	Attempt      int
	TOPRequestID string
	DeliveredAt  time.Time
}

// BeginAttempt is the fence in front of every TOP call. In one transaction
// it reads the event's callback and attempt rows, and then:
//
//   - a delivered or skipped callback gets Delivered or Skipped, and
//     nothing is written: TOP has the event, or an operator decided it
//     must not get it;
//   - an attempt of this callback or of the one ahead of it (seq-1) that
//     may still be at TOP (started, and its lease not lapsed by startedAt)
//     makes this attempt Busy, and nothing is written: one callback of a
//     policy at TOP at a time, in order, even when two runs' attempts
//     overlap;
//   - an attempt row started after began (when this attempt began, before
//     its first store write) makes this attempt Superseded, and nothing is
//     written;
//   - otherwise the attempt is recorded as started (ClassStarted) under
//     requested, or under the next number after the highest recorded when
//     requested is taken: a number is never used twice, even when the
//     workflow's count fell behind (an attempt that timed out before it
//     could heartbeat its number). Lower numbers that never got a row get
//     ClassLost rows, as StartAttempt does. aliveFor is its lease: how long
//     after startedAt it holds off other attempts unless renewed (see
//     LeaseAttempt); zero gives it none.
//
// The event must have been recorded; otherwise the error wraps ErrNotFound.
func (s *Store) BeginAttempt(ctx context.Context, bizID string, seq int64, requested int, began, startedAt time.Time, aliveFor time.Duration) (Grant, error) {
	a := Attempt{BizID: bizID, Seq: seq, Attempt: requested, StartedAt: startedAt, Class: ClassStarted}
	if err := validateAttempt(a); err != nil {
		return Grant{}, fmt.Errorf("begin attempt %d of biz_id %q seq %d: %w", requested, bizID, seq, err)
	}
	var g Grant
	err := s.inTx(ctx, func(tx *sqlx.Tx) (err error) {
		g, err = beginAttemptTx(ctx, tx, bizID, seq, requested, began, startedAt, aliveFor)
		return err
	})
	if err != nil {
		return Grant{}, fmt.Errorf("begin attempt %d of biz_id %q seq %d: %w", requested, bizID, seq, err)
	}
	return g, nil
}

// beginAttemptTx is BeginAttempt's reads and writes, in tx.
func beginAttemptTx(ctx context.Context, tx *sqlx.Tx, bizID string, seq int64, requested int, began, startedAt time.Time, aliveFor time.Duration) (Grant, error) {
	var ev struct {
		Callback    string        `db:"callback"`
		DeliveredAt sql.NullInt64 `db:"delivered_at"`
	}
	err := tx.GetContext(ctx, &ev, tx.Rebind(`SELECT callback, delivered_at FROM events WHERE biz_id = ? AND seq = ?`), bizID, seq)
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, fmt.Errorf("event %w", ErrNotFound)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("look up event: %w", err)
	}
	// This callback's attempts, and those of the one ahead that may still
	// be at TOP, in one read.
	var all []struct {
		Seq          int64         `db:"seq"`
		Attempt      int           `db:"attempt"`
		StartedAt    int64         `db:"started_at"`
		Class        string        `db:"class"`
		TOPRequestID string        `db:"top_request_id"`
		DurationUS   int64         `db:"duration_us"`
		AliveUntil   sql.NullInt64 `db:"alive_until"`
	}
	if err := tx.SelectContext(ctx, &all, tx.Rebind(
		`SELECT seq, attempt, started_at, class, top_request_id, duration_us, alive_until FROM attempts
		WHERE biz_id = ? AND (seq = ? OR (seq = ? AND class = ? AND alive_until > ?)) ORDER BY seq DESC, attempt`),
		bizID, seq, seq-1, ClassStarted, micros(startedAt)); err != nil {
		return Grant{}, fmt.Errorf("read recorded attempts: %w", err)
	}
	rows := all[:0:0]
	var busy *Busy
	for _, r := range all {
		if r.Seq == seq {
			rows = append(rows, r)
		}
		if r.Class == ClassStarted && r.AliveUntil.Valid && r.AliveUntil.Int64 > micros(startedAt) {
			if until := fromMicros(r.AliveUntil.Int64); busy == nil || until.After(busy.Until) {
				busy = &Busy{Seq: r.Seq, Attempt: r.Attempt, Until: until}
			}
		}
	}
	switch ev.Callback {
	case "delivered":
		d := &Delivery{}
		if ev.DeliveredAt.Valid {
			d.DeliveredAt = fromMicros(ev.DeliveredAt.Int64)
		}
		for _, r := range rows {
			if r.Class == ClassDelivered {
				d.Attempt, d.TOPRequestID = r.Attempt, r.TOPRequestID
				break
			}
		}
		return Grant{Delivered: d}, nil
	case "skipped", CallbackImported:
		// An imported event was reported by the system insuranceflow
		// replaced: it is never sent.
		return Grant{Skipped: true}, nil
	}
	if busy != nil {
		// Before the superseded check: an attempt that began after this one
		// may be one a stopped run left running (not this one's retry), and
		// once it ends this one finds the callback delivered, or is
		// superseded then.
		return Grant{Busy: busy}, nil
	}
	highest := 0
	recorded := make(map[int]bool, len(rows))
	for _, r := range rows {
		// ClassLost rows carry the time a later attempt started, not
		// their own, so they say nothing about who began last.
		if r.Class != ClassLost && fromMicros(r.StartedAt).After(began) {
			return Grant{Superseded: true}, nil
		}
		highest = max(highest, r.Attempt)
		recorded[r.Attempt] = true
	}
	n := requested
	if recorded[n] || n <= highest {
		n = highest + 1
	}
	for k := 1; k < n; k++ {
		if recorded[k] {
			continue
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(insertAttemptMarker),
			bizID, seq, k, micros(startedAt), ClassLost, LostAttemptDetail); err != nil {
			return Grant{}, fmt.Errorf("insert %s attempt %d: %w", ClassLost, k, err)
		}
	}
	var lease sql.NullInt64
	if aliveFor > 0 {
		lease = sql.NullInt64{Int64: micros(startedAt.Add(aliveFor)), Valid: true}
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(insertStartedAttempt),
		bizID, seq, n, micros(startedAt), ClassStarted, lease); err != nil {
		return Grant{}, fmt.Errorf("insert %s attempt %d: %w", ClassStarted, n, err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(updateEventAttemptCount), n, n, bizID, seq); err != nil {
		return Grant{}, fmt.Errorf("update event: %w", err)
	}
	return Grant{Attempt: n}, nil
}

// BeginDelivery is RecordEvents of one event followed by BeginAttempt of
// its callback, in one transaction: what every attempt does before it may
// call TOP. One transaction is one commit (one fsync with SQLite) on the
// path from an event's acceptance to its callback, instead of two; the
// answers and the rows written are those of the two calls made in turn.
func (s *Store) BeginDelivery(ctx context.Context, p Policy, e Event, requested int, began, startedAt time.Time, aliveFor time.Duration) (Grant, error) {
	a := Attempt{BizID: e.BizID, Seq: e.Seq, Attempt: requested, StartedAt: startedAt, Class: ClassStarted}
	if a.BizID == "" {
		a.BizID = p.BizID
	}
	if err := validateAttempt(a); err != nil {
		return Grant{}, fmt.Errorf("begin delivery of biz_id %q seq %d: %w", a.BizID, a.Seq, err)
	}
	p, events, err := s.prepareRecord(p, []Event{e})
	if err != nil {
		return Grant{}, fmt.Errorf("begin delivery of biz_id %q seq %d: %w", a.BizID, a.Seq, err)
	}
	var g Grant
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := recordEventsTx(ctx, tx, p, events, nil); err != nil {
			return err
		}
		g, err = beginAttemptTx(ctx, tx, a.BizID, a.Seq, requested, began, startedAt, aliveFor)
		return err
	})
	if err != nil {
		return Grant{}, fmt.Errorf("begin delivery of biz_id %q seq %d: %w", a.BizID, a.Seq, err)
	}
	return g, nil
}

// insertStartedAttempt records a granted attempt with its lease (NULL for
// none). n is above every recorded number, so nothing is in its way.
const insertStartedAttempt = `INSERT INTO attempts (biz_id, seq, attempt, started_at, duration_us, class, detail, alive_until)
VALUES (?, ?, ?, ?, 0, ?, '', ?)`

// setAliveUntil leases a started attempt; NULL ends its lease.
const setAliveUntil = `UPDATE attempts SET alive_until = ? WHERE biz_id = ? AND seq = ? AND attempt = ? AND class = ?`

// LeaseAttempt moves a started attempt's lease (see BeginAttempt) to until,
// or ends it when until is zero. A granted attempt renews it while it runs,
// so other attempts wait for it however long its TOP call takes, and ends
// it when it stops without an outcome on record (it gave up before TOP, or
// could not record TOP's answer), so they need not wait for the lease to
// lapse. A worker that dies renews nothing: its lease lapses. An attempt
// with an outcome has no lease to move, and this does nothing to it.
func (s *Store) LeaseAttempt(ctx context.Context, bizID string, seq int64, attempt int, until time.Time) error {
	var v sql.NullInt64
	if !until.IsZero() {
		v = sql.NullInt64{Int64: micros(until), Valid: true}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(setAliveUntil), v, bizID, seq, attempt, ClassStarted); err != nil {
		return fmt.Errorf("lease attempt %d of biz_id %q seq %d: %w", attempt, bizID, seq, err)
	}
	return nil
}

// LiveLease is BeginAttempt's Busy answer without its transaction: the
// started attempt, of callback seq or of the one ahead of it, whose lease
// is live at at (the one lapsing last), or nil when none is. An attempt
// told Busy watches it with this read until it is nil, and only then asks
// BeginDelivery again, so a wait for a stopped run's call costs reads, not
// one write transaction per look.
func (s *Store) LiveLease(ctx context.Context, bizID string, seq int64, at time.Time) (*Busy, error) {
	var rows []struct {
		Seq        int64 `db:"seq"`
		Attempt    int   `db:"attempt"`
		AliveUntil int64 `db:"alive_until"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(
		`SELECT seq, attempt, alive_until FROM attempts
		WHERE biz_id = ? AND seq IN (?, ?) AND class = ? AND alive_until > ?
		ORDER BY alive_until DESC LIMIT 1`),
		bizID, seq, seq-1, ClassStarted, micros(at)); err != nil {
		return nil, fmt.Errorf("look at the leases of biz_id %q seq %d: %w", bizID, seq, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	r := rows[0]
	return &Busy{Seq: r.Seq, Attempt: r.Attempt, Until: fromMicros(r.AliveUntil)}, nil
}

// StillCurrent reports whether attempt may still call TOP: the event is
// neither delivered nor skipped, and no later attempt has been recorded.
// It is the fence's second look, right before the call, after whatever
// waited in between (a TOP call slot, a frozen process): a later attempt
// always has a higher number, since BeginAttempt never hands out a lower
// one. why names what stopped it.
func (s *Store) StillCurrent(ctx context.Context, bizID string, seq int64, attempt int) (ok bool, why string, err error) {
	var row struct {
		Callback string        `db:"callback"`
		Highest  sql.NullInt64 `db:"highest"`
	}
	err = s.db.GetContext(ctx, &row, s.db.Rebind(
		`SELECT e.callback AS callback, (SELECT MAX(a.attempt) FROM attempts a WHERE a.biz_id = e.biz_id AND a.seq = e.seq) AS highest
		FROM events e WHERE e.biz_id = ? AND e.seq = ?`), bizID, seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", fmt.Errorf("check attempt %d of biz_id %q seq %d: event %w", attempt, bizID, seq, ErrNotFound)
	}
	if err != nil {
		return false, "", fmt.Errorf("check attempt %d of biz_id %q seq %d: %w", attempt, bizID, seq, err)
	}
	switch {
	case row.Callback == "delivered" || row.Callback == "skipped" || row.Callback == CallbackImported:
		return false, "the callback is " + row.Callback, nil
	case row.Highest.Valid && row.Highest.Int64 > int64(attempt):
		return false, fmt.Sprintf("attempt %d has started since", row.Highest.Int64), nil
	}
	return true, "", nil
}

// Turn is what the store says about the callback ahead of a pipelined one
// (see TurnAfter).
type Turn int

const (
	// TurnWait: the callback ahead is not settled (not recorded yet, or its
	// attempt is still running): it may yet be delivered.
	TurnWait Turn = iota
	// TurnGo: the callback ahead is delivered, skipped or imported; the
	// next one may call TOP.
	TurnGo
	// TurnBlocked: the callback ahead's last attempt failed (it is retrying
	// or parked): nothing will settle it soon, and the next one waits for
	// the workflow to schedule it again.
	TurnBlocked
)

func (t Turn) String() string {
	switch t {
	case TurnGo:
		return "go"
	case TurnBlocked:
		return "blocked"
	}
	return "wait"
}

// TurnAfter says whether the callback that follows seq in bizID's FIFO may
// call TOP now. It is the gate in front of a pipelined callback, one the
// workflow scheduled while the one ahead (seq) was still in flight: only a
// callback the store shows settled lets the next one through, so TOP
// receives a policy's callbacks in order however the two attempts
// interleave. Settled is final (a delivered or skipped callback stays so),
// so an answer of TurnGo cannot go stale; the other answers can, and are
// asked again.
func (s *Store) TurnAfter(ctx context.Context, bizID string, seq int64) (Turn, error) {
	var callback string
	err := s.db.GetContext(ctx, &callback, s.db.Rebind(`SELECT callback FROM events WHERE biz_id = ? AND seq = ?`), bizID, seq)
	if errors.Is(err, sql.ErrNoRows) {
		return TurnWait, nil // its attempt has not begun
	}
	if err != nil {
		return TurnWait, fmt.Errorf("read the callback ahead of biz_id %q seq %d: %w", bizID, seq+1, err)
	}
	switch callback {
	case "delivered", "skipped", CallbackImported:
		return TurnGo, nil
	case "retrying", "parked":
		return TurnBlocked, nil
	}
	return TurnWait, nil
}
