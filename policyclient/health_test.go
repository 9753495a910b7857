package policyclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// switchable is a probe whose answer the test sets.
type switchable struct {
	mu     sync.Mutex
	err    error
	probes int
}

func (s *switchable) set(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *switchable) check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes++
	return s.err
}

func (s *switchable) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes
}

func runHealth(t *testing.T, probe *switchable, interval time.Duration) *Health {
	t.Helper()
	h, err := NewHealth(HealthConfig{Check: probe.check, Interval: interval, Failures: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func TestHealthFollowsTheProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := &switchable{}
		h := runHealth(t, probe, time.Second)
		synctest.Wait()
		if err := h.Err(); err != nil {
			t.Fatalf("up: Err=%v, want nil", err)
		}
		probe.set(errors.New("connection refused"))
		time.Sleep(time.Second)
		synctest.Wait()
		if err := h.Err(); err != nil {
			t.Fatalf("after one failed probe: Err=%v, want nil (two in a row count)", err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		err := h.Err()
		if !errors.Is(err, ErrTemporalDown) || !errors.Is(err, ErrUnavailable) || Kind(err) != KindUnavailable {
			t.Fatalf("after a failed probe: Err=%v, want ErrTemporalDown (unavailable)", err)
		}
		probe.set(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if err := h.Err(); err != nil {
			t.Fatalf("after a good probe: Err=%v, want nil", err)
		}
	})
}

// TestHealthProbesAtOnceWhenACallFails: a call that failed like an outage
// gets a probe without waiting for the tick; other failures do not.
func TestHealthProbesAtOnceWhenACallFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := &switchable{}
		h := runHealth(t, probe, time.Hour)
		synctest.Wait()
		start := probe.count()

		h.Observe(&Rejection{Reason: "illegal_transition"})
		h.Observe(nil)
		synctest.Wait()
		if n := probe.count() - start; n != 0 {
			t.Fatalf("probes after a refusal and a success = %d, want 0", n)
		}

		probe.set(errors.New("connection refused"))
		for range 2 {
			h.Observe(fmt.Errorf("report: %w: %w", ErrUnavailable, context.DeadlineExceeded))
			synctest.Wait()
		}
		if n := probe.count() - start; n != 2 {
			t.Fatalf("probes after two outages = %d, want 2", n)
		}
		if !errors.Is(h.Err(), ErrTemporalDown) {
			t.Fatalf("Err=%v, want ErrTemporalDown", h.Err())
		}

		// Temporal up again, a call that timed out because no worker
		// answered: the probe says up, and callers are not shut out.
		probe.set(nil)
		h.Observe(context.DeadlineExceeded)
		synctest.Wait()
		if err := h.Err(); err != nil {
			t.Fatalf("Err=%v after a good probe, want nil", err)
		}
	})
}

func TestNewHealthNeedsACheck(t *testing.T) {
	if _, err := NewHealth(HealthConfig{}); err == nil {
		t.Fatal("NewHealth without Check succeeded")
	}
}
