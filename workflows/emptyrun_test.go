package workflows

import (
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// reopened is a store snapshot of a policy whose first event was accepted
// and delivered by an earlier, closed run.
func reopened() *Snapshot {
	e := lifecycle()[0].WithRequestID()
	return &Snapshot{
		State: fsm.StatePreInsured, InsuranceType: insurance.TypeHomeProperty, PolicyNumber: "PN-001",
		LastSeq: 1, LastOccurredAt: e.TimeOfOccurrence,
		Accepted: []Acceptance{{BizID: testBizID, RequestID: e.RequestID, Seq: 1, Stage: e.Stage, Status: e.Status, State: fsm.StatePreInsured}},
	}
}

// withPendingCallback is a store snapshot of a policy whose run was
// terminated before its first callback was delivered.
func withPendingCallback() *Snapshot {
	s := reopened()
	s.PendingCallbacks = []Callback{{Seq: 1, Event: lifecycle()[0].WithRequestID(), State: EventQueued, StateAfter: fsm.StatePreInsured}}
	return s
}

func TestEmptyRunGrace(t *testing.T) {
	hour := Settings{IdleTimeout: time.Hour}
	illegal := ev(insurance.StageUnderwrite, insurance.StatusSuccess, "2024-01-09 10:00:00")
	tests := []struct {
		name  string
		setup func(h *harness) []*reply
		input PolicyInput
		// check looks at the replies the setup returned.
		check         func(t *testing.T, replies []*reply)
		wantCompleted time.Duration
		wantTimers    []time.Duration
		wantLastSeq   int64
		wantCalls     []string
	}{
		{
			name: "refused first event, custom grace",
			setup: func(h *harness) []*reply {
				return []*reply{h.report(0, illegal)}
			},
			input: PolicyInput{BizID: testBizID, Settings: Settings{EmptyRunGrace: 5 * time.Minute}},
			check: func(t *testing.T, r []*reply) {
				r[0].rejected(t, ReasonIllegalTransition)
			},
			wantCompleted: 5 * time.Minute,
			wantTimers:    []time.Duration{5 * time.Minute},
		},
		{
			name: "grace never exceeds the idle timeout",
			setup: func(h *harness) []*reply {
				return []*reply{h.report(0, illegal)}
			},
			input:         PolicyInput{BizID: testBizID, Settings: Settings{EmptyRunGrace: 5 * time.Minute, IdleTimeout: 30 * time.Second}},
			wantCompleted: 30 * time.Second,
			wantTimers:    []time.Duration{30 * time.Second},
		},
		{
			name: "duplicate after an idle close",
			setup: func(h *harness) []*reply {
				return []*reply{h.report(0, lifecycle()[0])}
			},
			input: PolicyInput{BizID: testBizID, Snapshot: reopened()},
			check: func(t *testing.T, r []*reply) {
				checkDuplicate(t, r[0], reopened().Accepted[0])
			},
			wantCompleted: DefaultEmptyRunGrace,
			wantTimers:    []time.Duration{DefaultEmptyRunGrace},
			wantLastSeq:   1,
		},
		{
			name: "event accepted within the grace keeps the run for the idle timeout",
			setup: func(h *harness) []*reply {
				return []*reply{h.report(0, illegal), h.report(30*time.Second, lifecycle()[0])}
			},
			input: PolicyInput{BizID: testBizID, Settings: hour},
			check: func(t *testing.T, r []*reply) {
				r[0].rejected(t, ReasonIllegalTransition)
				if a := r[1].acceptance(t); a.Seq != 1 {
					t.Errorf("acceptance = %+v, want seq 1", a)
				}
			},
			// The grace timer, when it fires, is re-armed for the rest of
			// the hour counted from the acceptance: still one timer at a time.
			wantCompleted: 30*time.Second + time.Hour,
			wantTimers:    []time.Duration{DefaultEmptyRunGrace, time.Hour + 30*time.Second - DefaultEmptyRunGrace},
			wantLastSeq:   1,
			wantCalls:     []string{"1/1"},
		},
		{
			name: "continued run keeps the idle timeout",
			setup: func(h *harness) []*reply {
				h.env.SetContinuedExecutionRunID("previous-run")
				return nil
			},
			input:         PolicyInput{BizID: testBizID, Settings: hour, Snapshot: reopened()},
			wantCompleted: time.Hour,
			wantTimers:    []time.Duration{time.Hour},
			wantLastSeq:   1,
		},
		{
			name: "restored callback delivered, then the grace",
			setup: func(h *harness) []*reply {
				h.fail(1, serviceDown) // attempt 1 fails; attempt 2 goes through after the 1s backoff
				return nil
			},
			input: PolicyInput{BizID: testBizID, Settings: hour, Snapshot: withPendingCallback()},
			// The grace timer fires at 1m; the FIFO emptied at 1s, so it is
			// re-armed for the 1s left of the grace counted from then.
			wantCompleted: time.Second + DefaultEmptyRunGrace,
			wantTimers:    []time.Duration{DefaultEmptyRunGrace, time.Second, time.Second},
			wantLastSeq:   1,
			wantCalls:     []string{"1/1", "1/2"},
		},
		{
			name: "restored callback in a history from before the grace",
			setup: func(h *harness) []*reply {
				h.fail(1, serviceDown)
				// A replayed history without the version marker: the run
				// keeps the idle timeout, as the code that recorded it did.
				h.env.OnGetVersion(changeEmptyRunGrace, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
				return nil
			},
			input:         PolicyInput{BizID: testBizID, Settings: hour, Snapshot: withPendingCallback()},
			wantCompleted: time.Second + time.Hour,
			wantTimers:    []time.Duration{DefaultEmptyRunGrace, time.Second, time.Hour + time.Second - DefaultEmptyRunGrace},
			wantLastSeq:   1,
			wantCalls:     []string{"1/1", "1/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			replies := tt.setup(h)
			h.run(tt.input)
			if tt.check != nil {
				tt.check(t, replies)
			}
			st := h.result()
			if got := h.env.Now().Sub(h.start); got != tt.wantCompleted {
				t.Errorf("completed after %s, want %s", got, tt.wantCompleted)
			}
			if !slices.Equal(h.timers, tt.wantTimers) {
				t.Errorf("timers = %v, want %v", h.timers, tt.wantTimers)
			}
			if st.LastSeq != tt.wantLastSeq {
				t.Errorf("last_seq = %d, want %d", st.LastSeq, tt.wantLastSeq)
			}
			if got := h.deliveries(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("deliveries = %v, want %v", got, tt.wantCalls)
			}
		})
	}
}
