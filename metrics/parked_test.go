package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/api/workflowservice/v1"
)

type fakeVisibility struct {
	mu      sync.Mutex
	queries []string
	count   int64
	err     error
}

func (f *fakeVisibility) CountWorkflow(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, req.GetQuery())
	if f.err != nil {
		return nil, f.err
	}
	return &workflowservice.CountWorkflowExecutionsResponse{Count: f.count}, nil
}

func (f *fakeVisibility) set(count int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count, f.err = count, err
}

func (f *fakeVisibility) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries)
}

func TestParkedQuery(t *testing.T) {
	want := "WorkflowType = 'Policy' AND ExecutionStatus = 'Running' AND CallbackState = 'parked'"
	if got := ParkedQuery(); got != want {
		t.Fatalf("ParkedQuery = %q, want %q", got, want)
	}
}

func TestCountParked(t *testing.T) {
	v := &fakeVisibility{count: 4}
	n, err := CountParked(v)(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("count = %d, %v; want 4", n, err)
	}
	if len(v.queries) != 1 || v.queries[0] != ParkedQuery() {
		t.Errorf("queries = %q, want the parked query once", v.queries)
	}
	cause := errors.New("visibility down")
	v.set(0, cause)
	if _, err := CountParked(v)(context.Background()); !errors.Is(err, cause) || !strings.Contains(err.Error(), "count parked callbacks") {
		t.Fatalf("count error = %v, want it wrapped with context", err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPollParked(t *testing.T) {
	m, _ := newMetrics(t)
	v := &fakeVisibility{count: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	before := time.Now()
	go func() { done <- m.PollParked(ctx, CountParked(v), 10*time.Millisecond, slog.New(slog.DiscardHandler)) }()

	waitFor(t, "first count", func() bool { return testutil.ToFloat64(m.parked) == 2 })
	checked := testutil.ToFloat64(m.parkedCheckedAt)
	if checked < float64(before.Unix()) || checked > float64(time.Now().Unix()+1) {
		t.Errorf("checked timestamp = %v, want about now (%d)", checked, before.Unix())
	}

	v.set(5, nil)
	waitFor(t, "gauge follows the count", func() bool { return testutil.ToFloat64(m.parked) == 5 })

	t.Run("a failed count keeps the last value and its time", func(t *testing.T) {
		v.set(9, errors.New("visibility down"))
		lastChecked := testutil.ToFloat64(m.parkedCheckedAt)
		calls := v.calls()
		waitFor(t, "two more counts", func() bool { return v.calls() >= calls+2 })
		if got := testutil.ToFloat64(m.parked); got != 5 {
			t.Errorf("gauge after failed counts = %v, want the last good 5", got)
		}
		if got := testutil.ToFloat64(m.parkedCheckedAt); got != lastChecked {
			t.Errorf("checked timestamp moved to %v on a failed count, want %v", got, lastChecked)
		}
	})

	v.set(0, nil)
	waitFor(t, "back to zero", func() bool { return testutil.ToFloat64(m.parked) == 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PollParked returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PollParked did not return after cancel")
	}
}

func TestPollParkedWithoutMetricsWaitsForCancel(t *testing.T) {
	var m *Metrics
	v := &fakeVisibility{count: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := m.PollParked(ctx, CountParked(v), time.Millisecond, nil); err != nil {
		t.Fatalf("PollParked = %v, want nil", err)
	}
	if n := v.calls(); n != 0 {
		t.Errorf("counted %d times with metrics off, want 0", n)
	}
}
