package activities

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// limiterMetrics records what the limiter reports.
type limiterMetrics struct {
	mu                         sync.Mutex
	waiting, maxWaiting, taken int
	givenBack                  int
	banned                     []string
}

func (m *limiterMetrics) WaitingForSlot(d int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waiting += d
	m.maxWaiting = max(m.maxWaiting, m.waiting)
}
func (m *limiterMetrics) SlotTaken(time.Duration) { m.mu.Lock(); m.taken++; m.mu.Unlock() }
func (m *limiterMetrics) SlotGivenBack()          { m.mu.Lock(); m.givenBack++; m.mu.Unlock() }
func (m *limiterMetrics) TOPRateLimited(s string) {
	m.mu.Lock()
	m.banned = append(m.banned, s)
	m.mu.Unlock()
}

func TestNewCallLimiterRefusesBadConfig(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		cfg  LimiterConfig
		want string
	}{
		{"no store", LimiterConfig{Key: "k", QPS: 1}, "no slot store"},
		{"no key", LimiterConfig{Slots: f.store, QPS: 1}, "empty key"},
		{"zero qps", LimiterConfig{Slots: f.store, Key: "k"}, "QPS 0"},
		{"negative margin", LimiterConfig{Slots: f.store, Key: "k", QPS: 1, Margin: -time.Millisecond}, "negative margin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewCallLimiter(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewCallLimiter error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
	l, err := NewCallLimiter(LimiterConfig{Slots: f.store, Key: "k", QPS: 1})
	if err != nil || l.Window() != time.Second+DefaultQPSMargin {
		t.Fatalf("NewCallLimiter defaults: window %v, err %v, want 1s + %v", l.Window(), err, DefaultQPSMargin)
	}
}

// TestDeliverCallbackWaitsForItsSlot sends three callbacks through a
// limiter of 2 per window: the third reaches TOP no sooner than a window
// after the first, heartbeating that it waits meanwhile. Only lower bounds
// are asserted: a slow machine makes the waits longer, never shorter.
func TestDeliverCallbackWaitsForItsSlot(t *testing.T) {
	f := newFixture(t)
	hb := f.withHeartbeats(worker.Options{})
	m := &limiterMetrics{}
	l, err := NewCallLimiter(LimiterConfig{Slots: f.store, Key: "app", QPS: 2, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.Limiter, f.acts.TOPCallTimeout = l, time.Second
	var calls []time.Time
	f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
		calls = append(calls, time.Now())
		return top.Outcome{Class: top.ClassDelivered}
	})
	// Before the first admission: the first call itself may come a little
	// after its slot was taken (a loaded machine), so the window is counted
	// from here, not from that call.
	start := time.Now()
	for i := range 3 {
		in := input(0)
		in.Seq, in.Event = int64(i+1), event(insurance.Stage(i+1))
		if _, err := f.deliver(in); err != nil {
			t.Fatalf("callback %d: %v", i+1, err)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d TOP calls, want 3", len(calls))
	}
	if d := calls[2].Sub(start); d < l.Window() {
		t.Fatalf("third call %v after the first was admitted, want at least the window %v", d, l.Window())
	}
	waited := false
	for _, d := range hb.all() {
		if len(d) == 2 && d[1] == PhaseWaitingRateLimit {
			waited = true
		}
	}
	if !waited {
		t.Fatalf("heartbeats %v, want one saying %s", hb.all(), PhaseWaitingRateLimit)
	}
	if m.taken != 3 || m.maxWaiting != 1 || m.waiting != 0 {
		t.Fatalf("metrics taken=%d max waiting=%d waiting=%d, want 3, 1, 0", m.taken, m.maxWaiting, m.waiting)
	}
}

// TestDeliverCallbackWithoutASlotInTime: an attempt whose deadline leaves
// no time to wait does not call TOP; it records a rate_limited attempt that
// says why and fails retryably, so the workflow tries again later.
func TestDeliverCallbackWithoutASlotInTime(t *testing.T) {
	f := newFixture(t)
	l, err := NewCallLimiter(LimiterConfig{Slots: f.store, Key: "app", QPS: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A TOP call timeout longer than the attempt leaves no time to wait.
	f.acts.Limiter, f.acts.TOPCallTimeout = l, 24*time.Hour
	called := false
	f.acts.TOP = callTOP(func(context.Context, insurance.Result) top.Outcome {
		called = true
		return top.Outcome{Class: top.ClassDelivered}
	})
	_, err = f.deliver(input(0))
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrorTypeRateLimited || appErr.NonRetryable() {
		t.Fatalf("error = %v, want a retryable %s error", err, ErrorTypeRateLimited)
	}
	if called {
		t.Fatal("TOP was called without a slot")
	}
	attempts := f.attempts()
	if len(attempts) != 1 || attempts[0].Class != "rate_limited" || !strings.HasPrefix(attempts[0].Detail, "not sent: no TOP call slot") {
		t.Fatalf("attempts = %+v, want one rate_limited attempt saying it was not sent", attempts)
	}
}

// TestDeliverCallbackCountsTOPBans: a code 7 from TOP itself is counted as
// such, by sub_code.
func TestDeliverCallbackCountsTOPBans(t *testing.T) {
	f := newFixture(t)
	m := &limiterMetrics{}
	l, err := NewCallLimiter(LimiterConfig{Slots: f.store, Key: "app", QPS: 5, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.Limiter, f.acts.TOPCallTimeout = l, time.Second
	f.top.outcomes = []top.Outcome{{Class: top.ClassRateLimited, Code: 7, SubCode: "accesscontrol.limited-by-api-access-count", RetryAfter: time.Second}}
	if _, err := f.deliver(input(0)); err == nil {
		t.Fatal("DeliverCallback succeeded, want the ban")
	}
	if len(m.banned) != 1 || m.banned[0] != "accesscontrol.limited-by-api-access-count" {
		t.Fatalf("bans counted %v, want the one sub_code", m.banned)
	}
}
