package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// lcRun is what one driven lifecycle produced.
type lcRun struct {
	acceptedAt []time.Time     // per accepted step, when its answer arrived
	accept     []time.Duration // per accepted step, the request's round trip
	// deliveredAt is, per step, when its callback reached topsim (the
	// baseline's: when its callback started); filled once delivered.
	deliveredAt []time.Time
	err         error     // why the lifecycle stopped early
	completeAt  time.Time // when its last step was delivered (or the workflow closed)
}

// loadResult is one system's figures for one phase.
type loadResult struct {
	Lifecycles       int         `json:"lifecycles"`
	Completed        int         `json:"completed"`
	Failed           int         `json:"failed"`
	EventsAccepted   int         `json:"events_accepted"`
	DurationSeconds  float64     `json:"duration_seconds"` // start → last lifecycle complete
	LifecyclesPerSec float64     `json:"lifecycles_per_sec"`
	EventsPerSec     float64     `json:"events_accepted_per_sec"` // start → last acceptance
	Accept           Percentiles `json:"accept_latency"`
	// AcceptFirst and AcceptLater split Accept: a lifecycle's first event
	// (which starts its workflow) and the events after it.
	AcceptFirst Percentiles `json:"accept_latency_first_event"`
	AcceptLater Percentiles `json:"accept_latency_later_events"`
	Delivery    Percentiles `json:"delivery_latency,omitzero"`
	Resends     int64       `json:"resends"` // events re-sent after a 503 or a broken connection
	// CPU is every process's CPU time during the phase per completed
	// lifecycle. On a machine whose CPU the server saturates first, its
	// share (CPU.Server; 0 with an external server) is what sets the
	// throughput.
	CPU cpuBudget `json:"cpu_ms_per_lifecycle"`
	// HeartbeatsPerLifecycle is the activity heartbeats the server
	// received during the phase per completed lifecycle: Temporal Cloud
	// bills each as an action, and histories do not show them; -1 =
	// unknown (no server metrics).
	HeartbeatsPerLifecycle float64  `json:"heartbeats_per_lifecycle"`
	Errors                 []string `json:"errors,omitempty"` // the first few

	deliverySamples []time.Duration // for the chart
}

// driver sends one lifecycle's step k and reports its round trip; the
// lifecycle stops at the first error.
type driver func(ctx context.Context, l lifecycle, k int) error

// drive runs every lifecycle's steps in order, c lifecycles at a time,
// each step sent after the previous one was answered. onDone is called
// (in its own goroutine) when a lifecycle's last step was accepted.
func drive(ctx context.Context, lcs []lifecycle, c int, send driver, bar *progressbar.ProgressBar, onDone func(i int)) []lcRun {
	runs := make([]lcRun, len(lcs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := &runs[i]
				runSteps(ctx, lcs[i], r, time.Now(), send)
				if r.err == nil && onDone != nil {
					onDone(i)
				}
				_ = bar.Add(1)
			}
		}()
	}
	for i := range lcs {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	return runs
}

// runSteps sends l's steps in order into r. The first step's latency is
// measured from first (the open loop's scheduled start, so a late start is
// counted, not hidden); each later step's from the previous answer, since a
// business system sends the next event once the previous one is accepted.
func runSteps(ctx context.Context, l lifecycle, r *lcRun, first time.Time, send driver) {
	t0 := first
	for k := range l.Steps {
		if err := send(ctx, l, k); err != nil {
			r.err = fmt.Errorf("%s step %d (%s %s): %w", l.BizID, k+1, l.Steps[k].Stage, l.Steps[k].Status, err)
			return
		}
		now := time.Now()
		r.accept = append(r.accept, now.Sub(t0))
		r.acceptedAt = append(r.acceptedAt, now)
		t0 = now
	}
}

// reportFunc posts one event to an ingress and returns its answer.
type reportFunc func(ctx context.Context, body []byte) (int, []byte, error)

// resendBudget is how long an event answered 503 (or not answered) is
// re-sent, counted from its first send. A business system keeps trying for
// longer; five attempts a second apart were not enough when the dev server
// stalled for several seconds while 10,000 policies were being opened
// (40 of them failed in one make bench-readme run, the ingress answering
// 503 at once while it knew Temporal to be slow).
const resendBudget = time.Minute

// ingressDriver reports through the real HTTP ingress as a business system
// would: a 503 or a broken connection is re-sent (same body, so the same
// derived request id) a second later, for up to resendBudget, and a 200
// duplicate answer to a re-send counts as accepted, because the earlier
// attempt was. Each re-send is counted in resends; the step's latency
// covers them all.
//
// With several ingresses (one per worker), a lifecycle always reports
// through the same one, chosen by its biz_id.
func ingressDriver(reports []reportFunc, resends *atomic.Int64) driver {
	return func(ctx context.Context, l lifecycle, k int) error {
		h := fnv.New32a()
		h.Write([]byte(l.BizID))
		report := reports[int(h.Sum32()%uint32(len(reports)))]
		first := time.Now()
		for attempt := 1; ; attempt++ {
			status, body, err := report(ctx, l.body(k))
			switch {
			case err == nil && status == http.StatusAccepted:
				return nil
			case err == nil && status == http.StatusOK && attempt > 1:
				return nil
			case time.Since(first) < resendBudget && ctx.Err() == nil && (err != nil || status == http.StatusServiceUnavailable):
				resends.Add(1)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			case err != nil:
				return err
			}
			return fmt.Errorf("HTTP %d after %d attempt(s): %s", status, attempt, trunc(string(body)))
		}
	}
}

// awaitDelivery waits until every lifecycle that was fully accepted has all
// its callbacks in topsim's receipt log, or timeout passes, and fills in
// completion times and delivery latencies (topsim's received_at minus the
// client's accept time, on the same host clock).
func awaitDelivery(ctx context.Context, rl *receiptLog, lcs []lifecycle, runs []lcRun, timeout time.Duration, bar *progressbar.ProgressBar) ([]time.Duration, error) {
	ids := make([]string, len(lcs))
	for i, l := range lcs {
		ids[i] = l.BizID
	}
	want := func(i int) int {
		if runs[i].err != nil {
			return 0
		}
		return len(lcs[i].Steps)
	}
	deadline := time.Now().Add(timeout)
	shown := -1
	for {
		if err := rl.poll(); err != nil {
			return nil, err
		}
		done := rl.count(ids, want)
		if done != shown {
			_ = bar.Set(done)
			shown = done
		}
		if done == len(lcs) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var delivery []time.Duration
	for i, l := range lcs {
		r := &runs[i]
		if r.err != nil {
			continue
		}
		got := rl.of(l.BizID)
		r.deliveredAt = nil
		// Match receipts to steps in order; a repeated delivery (at least
		// once) of the same step is skipped.
		k := 0
		var last time.Time
		for _, rc := range got {
			if k == len(l.Steps) {
				break
			}
			if rc.Stage != l.Steps[k].Stage || rc.Status != l.Steps[k].Status {
				continue
			}
			delivery = append(delivery, rc.ReceivedAt.Sub(r.acceptedAt[k]))
			r.deliveredAt = append(r.deliveredAt, rc.ReceivedAt)
			last = rc.ReceivedAt
			k++
		}
		if k < len(l.Steps) {
			r.err = fmt.Errorf("%s: %d of %d callbacks delivered within %s", l.BizID, k, len(l.Steps), timeout)
			continue
		}
		r.completeAt = last
	}
	return delivery, nil
}

// summarise turns runs into figures, measured from start.
func summarise(start time.Time, runs []lcRun, delivery []time.Duration) loadResult {
	res := loadResult{Lifecycles: len(runs)}
	var accept, first, later []time.Duration
	var lastAccept, lastComplete time.Time
	for _, r := range runs {
		accept = append(accept, r.accept...)
		if len(r.accept) > 0 {
			first = append(first, r.accept[0])
			later = append(later, r.accept[1:]...)
		}
		res.EventsAccepted += len(r.accept)
		if n := len(r.acceptedAt); n > 0 && r.acceptedAt[n-1].After(lastAccept) {
			lastAccept = r.acceptedAt[n-1]
		}
		if r.err != nil {
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, r.err.Error())
			}
			continue
		}
		res.Completed++
		if r.completeAt.After(lastComplete) {
			lastComplete = r.completeAt
		}
	}
	if !lastComplete.IsZero() {
		d := lastComplete.Sub(start).Seconds()
		res.DurationSeconds = round2(d)
		res.LifecyclesPerSec = round2(ratio(float64(res.Completed), d))
	}
	if !lastAccept.IsZero() {
		res.EventsPerSec = round2(ratio(float64(res.EventsAccepted), lastAccept.Sub(start).Seconds()))
	}
	res.Accept = percentiles(accept)
	res.AcceptFirst = percentiles(first)
	res.AcceptLater = percentiles(later)
	res.Delivery = percentiles(delivery)
	return res
}

func newBar(n int, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(barWriter),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("lc"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(barWriter) }),
	)
}
