package activities

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// recordingMetrics writes each call as one line, in order.
type recordingMetrics struct {
	mu    sync.Mutex
	calls []string
}

func (m *recordingMetrics) add(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, s)
}

func (m *recordingMetrics) CallbackAttempt(out top.Outcome) {
	m.add(fmt.Sprintf("attempt %s %s code=%d", out.Class, out.Duration, out.Code))
}
func (m *recordingMetrics) CallbackDelivered()                { m.add("delivered") }
func (m *recordingMetrics) CallbackRetried(class string)      { m.add("retried " + class) }
func (m *recordingMetrics) CallbackParked()                   { m.add("parked") }
func (m *recordingMetrics) CallbackPipelined(turn string)     { m.add("pipelined " + turn) }
func (m *recordingMetrics) CallbackLeaseWaited(time.Duration) { m.add("lease waited") }

func (m *recordingMetrics) got() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func TestDeliverCallbackMetrics(t *testing.T) {
	tests := []struct {
		name    string
		outcome top.Outcome
		want    []string
	}{
		{"delivered", top.Outcome{Class: top.ClassDelivered, Duration: 40 * time.Millisecond},
			[]string{"attempt delivered 40ms code=0", "delivered"}},
		{"retryable", top.Outcome{Class: top.ClassRetryable, Code: 15, SubCode: "isp.remote-service-error", Duration: time.Second},
			[]string{"attempt retryable 1s code=15", "retried retryable"}},
		{"rate limited", top.Outcome{Class: top.ClassRateLimited, Code: 7, RetryAfter: 3 * time.Second, Duration: 5 * time.Millisecond},
			[]string{"attempt rate_limited 5ms code=7", "retried rate_limited"}},
		// Parked by the workflow, and counted when that is recorded.
		{"rejected", top.Outcome{Class: top.ClassRejected, FailCode: "POLICY_NOT_FOUND", Duration: time.Millisecond},
			[]string{"attempt rejected 1ms code=0"}},
		{"permanent", top.Outcome{Class: top.ClassPermanent, Code: 25, Duration: time.Millisecond},
			[]string{"attempt permanent 1ms code=25"}},
		// The fixture's clock moves 250ms per reading: the activity
		// measures a call whose outcome has no duration itself.
		{"duration measured when missing", top.Outcome{Class: top.ClassDelivered},
			[]string{"attempt delivered 250ms code=0", "delivered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.outcome)
			m := &recordingMetrics{}
			f.acts.Metrics = m
			_, _ = f.deliver(input(0))
			if got := m.got(); !slices.Equal(got, tt.want) {
				t.Fatalf("metrics calls = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("store failure is a retried attempt without a TOP call", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
		m := &recordingMetrics{}
		f.acts.Metrics = m
		if err := f.store.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.deliver(input(0)); err == nil {
			t.Fatal("deliver with a closed store succeeded")
		}
		if got, want := m.got(), []string{"retried store"}; !slices.Equal(got, want) {
			t.Fatalf("metrics calls = %q, want %q", got, want)
		}
	})

	t.Run("nil metrics record nothing and change nothing", func(t *testing.T) {
		f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
		res, err := f.deliver(input(0))
		if err != nil || res.Attempt != 1 {
			t.Fatalf("deliver = %+v, %v; want attempt 1 delivered", res, err)
		}
	})
}

func TestRecordCallbacksCountsEachParkOnce(t *testing.T) {
	f := newFixture(t, top.Outcome{Class: top.ClassDelivered})
	m := &recordingMetrics{}
	f.acts.Metrics = m
	ev := event(insurance.StagePreInsure)
	policy := PolicyRecord{BizID: bizID, State: fsm.StatePreInsured, InsuranceType: insurance.TypeHomeProperty,
		LastSeq: 1, LastOccurredAt: ev.TimeOfOccurrence}
	record := func(callback, policyState string) RecordInput {
		p := policy
		p.CallbackState = policyState
		return RecordInput{
			Policy: p,
			// The workflow sends the head as it stands: parked.
			Events:   []EventRecord{{Seq: 1, Event: ev, AcceptedAt: time.Date(2024, 1, 9, 2, 0, 0, 0, time.UTC), StateAfter: fsm.StatePreInsured, Callback: "parked"}},
			Callback: &CallbackChange{Seq: 1, Callback: callback, PolicyCallbackState: policyState},
		}
	}
	steps := []struct {
		what string
		in   RecordInput
		want int // parks counted so far
	}{
		{"park", record("parked", "parked"), 1},
		{"the same park again (a retried local activity)", record("parked", "parked"), 1},
		{"operator retry re-queues it", record("queued", "idle"), 1},
		{"parked again after the retry", record("parked", "parked"), 2},
		{"operator skip", record("skipped", "idle"), 2},
	}
	for _, s := range steps {
		if _, err := f.env.ExecuteLocalActivity(f.acts.RecordCallbacks, s.in); err != nil {
			t.Fatalf("%s: RecordCallbacks: %v", s.what, err)
		}
		got := 0
		for _, c := range m.got() {
			if c == "parked" {
				got++
			} else {
				t.Fatalf("%s: unexpected metrics call %q", s.what, c)
			}
		}
		if got != s.want {
			t.Fatalf("after %s: parks counted = %d, want %d", s.what, got, s.want)
		}
	}
	if events := f.events(); len(events) != 1 || events[0].Callback != "skipped" {
		t.Fatalf("events = %+v, want seq 1 skipped", events)
	}
}

func TestRetriedClassesAreRetryableErrorTypes(t *testing.T) {
	for _, class := range RetriedClasses() {
		if slices.Contains(NonRetryableErrorTypes(), class) || class == ErrorTypeInvalid {
			t.Errorf("retried class %q is a non-retryable error type", class)
		}
	}
	if got := strings.Join(RetriedClasses(), ","); got != "retryable,rate_limited,store" {
		t.Errorf("RetriedClasses = %s, want retryable,rate_limited,store", got)
	}
}
