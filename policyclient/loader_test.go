package policyclient

import (
	"errors"
	"fmt"
	"testing"
	"time"

	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestMergePrevious: the newer of the two snapshots wins; with the store's,
// the previous run's unsent notifications are taken over, and a callback the
// previous run still held but the store has finished is handed over again,
// queued, so its outcome gets notified.
func TestMergePrevious(t *testing.T) {
	budget := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	cb := func(seq int64, state workflows.EventCallback) workflows.Callback {
		return workflows.Callback{Seq: seq, State: state, Attempts: 1, BudgetStartedAt: budget}
	}
	notes := []workflows.PendingNotification{{QueuedAt: budget}}
	t.Run("no previous run", func(t *testing.T) {
		stored := &workflows.Snapshot{LastSeq: 1}
		if got := mergePrevious(stored, nil); got != stored {
			t.Fatalf("got %+v, want the store's", got)
		}
	})
	t.Run("the previous run knew later events", func(t *testing.T) {
		prev := &workflows.Snapshot{LastSeq: 3}
		if got := mergePrevious(&workflows.Snapshot{LastSeq: 2}, prev); got != prev {
			t.Fatalf("got %+v, want the previous run's", got)
		}
	})
	t.Run("a callback finished after the run ended is handed over again", func(t *testing.T) {
		stored := &workflows.Snapshot{LastSeq: 3, PendingCallbacks: []workflows.Callback{cb(3, workflows.EventQueued)}}
		prev := &workflows.Snapshot{LastSeq: 3, PendingNotifications: notes, PendingCallbacks: []workflows.Callback{
			cb(2, workflows.EventSending), cb(3, workflows.EventQueued),
		}}
		got := mergePrevious(stored, prev)
		if len(got.PendingNotifications) != 1 {
			t.Errorf("notifications %+v, want the previous run's", got.PendingNotifications)
		}
		if len(got.PendingCallbacks) != 2 || got.PendingCallbacks[0].Seq != 2 || got.PendingCallbacks[1].Seq != 3 {
			t.Fatalf("pending callbacks %+v, want seq 2 then 3", got.PendingCallbacks)
		}
		if h := got.PendingCallbacks[0]; h.State != workflows.EventQueued || !h.BudgetStartedAt.IsZero() || h.Attempts != 1 {
			t.Errorf("handed-over callback %+v, want queued with a fresh budget and its attempts kept", h)
		}
	})
}

// TestNeverLoaded: a run that never started a workflow task, or that
// answers with a failure of type SnapshotNotLoaded, is looked past; any
// other failed query is not.
func TestNeverLoaded(t *testing.T) {
	typed := &failurepb.Failure{Message: "x", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{
		ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: workflows.SnapshotNotLoaded}}}
	other := &failurepb.Failure{Message: "x", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{
		ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "panic"}}}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"never ran a task", serviceerror.NewWorkflowNotReady("not ready"), true},
		{"typed failure", serviceerror.NewQueryFailedWithFailure("query failed", typed), true},
		{"wrapped", fmt.Errorf("query: %w", serviceerror.NewQueryFailedWithFailure("query failed", typed)), true},
		{"another query failure", serviceerror.NewQueryFailedWithFailure("boom", other), false},
		{"unknown query", serviceerror.NewQueryFailed("unknown queryType snapshot"), false},
		{"not found", serviceerror.NewNotFound("gone"), false},
		{"other", errors.New("unavailable"), false},
	} {
		if got := neverLoaded(tt.err); got != tt.want {
			t.Errorf("%s: neverLoaded=%v, want %v", tt.name, got, tt.want)
		}
	}
}
