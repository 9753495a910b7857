package activities

import (
	"context"
	"sync"
	"time"

	"github.com/insuranceflow/insuranceflow/store"
)

// A pipelined callback is one the workflow scheduled while the callback
// ahead of it (DeliverInput.After) was still in flight, so that it reaches
// TOP as soon as that one is settled instead of a workflow task and an
// activity dispatch later. Its order is kept by the store, not by when it
// runs: it calls TOP only once TurnAfter says the one ahead is delivered or
// skipped. While it waits, a worker that runs both (the usual case: an
// eager activity runs on the worker that scheduled it, and a workflow keeps
// to one worker) wakes it the moment the one ahead ends, through Turns;
// otherwise it looks at the store every aheadPoll.

// Defaults of how a pipelined callback waits for the one ahead.
const (
	// defaultAheadWait bounds the wait: past it the callback answers
	// NotYet and the workflow schedules it again once the one ahead is
	// settled. The one ahead normally settles in milliseconds; this covers
	// a slow TOP call (bounded at 30 s) with room to spare.
	defaultAheadWait = time.Minute
	// aheadPoll is how often a waiting callback reads the store when no
	// wake-up comes (the one ahead runs on another worker).
	aheadPoll = 50 * time.Millisecond
)

// Turns wakes pipelined callbacks waiting in this process when the callback
// ahead of them ends. The zero value is not usable; NewTurns makes one. One
// is shared by every DeliverCallback of a worker.
type Turns struct {
	mu      sync.Mutex
	waiting map[turnKey]*turnWait
}

type turnKey struct {
	bizID string
	seq   int64
}

// turnWait is one callback's waiters: ch closes when it ends.
type turnWait struct {
	ch      chan struct{}
	waiters int
}

// NewTurns returns an empty board.
func NewTurns() *Turns { return &Turns{waiting: map[turnKey]*turnWait{}} }

// watch returns a channel that closes when the callback seq of bizID next
// ends an attempt (see ended), and a release for when the waiter stops
// watching. A nil *Turns watches nothing: the channel never closes.
func (t *Turns) watch(bizID string, seq int64) (<-chan struct{}, func()) {
	if t == nil {
		return nil, func() {}
	}
	k := turnKey{bizID, seq}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.waiting[k]
	if w == nil {
		w = &turnWait{ch: make(chan struct{})}
		t.waiting[k] = w
	}
	w.waiters++
	return w.ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		w.waiters--
		if w.waiters == 0 && t.waiting[k] == w {
			delete(t.waiting, k)
		}
	}
}

// ended wakes whoever waits for the callback seq of bizID: one of its
// attempts has ended, and whatever it wrote to the store is committed.
func (t *Turns) ended(bizID string, seq int64) {
	if t == nil {
		return
	}
	k := turnKey{bizID, seq}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.waiting[k]; w != nil {
		close(w.ch)
		delete(t.waiting, k)
	}
}

// awaitTurn waits until the callback ahead of in is settled, and reports
// whether in may go on to call TOP. It answers false, and in is NotYet,
// when the one ahead failed (the workflow is retrying or parking it), when
// the wait reaches its bound, when ctx ends, and when the store cannot be
// read: in each case the workflow schedules the callback again once the one
// ahead is settled, so a false answer costs time, never order.
func (a *Activities) awaitTurn(ctx context.Context, in DeliverInput) (bool, store.Turn) {
	if in.After <= 0 {
		return true, store.TurnGo
	}
	wait := a.AheadWait
	if wait <= 0 {
		wait = defaultAheadWait
	}
	limit := time.NewTimer(wait)
	defer limit.Stop()
	poll := time.NewTicker(aheadPoll)
	defer poll.Stop()
	for {
		// Watch before looking, so an end between the look and the wait
		// still wakes this one.
		woken, release := a.Turns.watch(in.BizID, in.After)
		sctx, end := a.span(ctx, "store.TurnAfter")
		turn, err := a.Store.TurnAfter(sctx, in.BizID, in.After)
		end(err)
		if err != nil {
			release()
			a.logger().WarnContext(ctx, "pipelined callback: the store could not say whether the one ahead is settled",
				"biz_id", in.BizID, "seq", in.Seq, "error", err)
			return false, store.TurnWait
		}
		if turn != store.TurnWait {
			release()
			return turn == store.TurnGo, turn
		}
		select {
		case <-woken:
		case <-poll.C:
		case <-limit.C:
			release()
			return false, store.TurnWait
		case <-ctx.Done():
			release()
			return false, store.TurnWait
		}
		release()
	}
}
