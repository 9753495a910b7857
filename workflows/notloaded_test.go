package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/activities"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// TestSnapshotQueryOfARunThatNeverLoaded: until a reopening run has
// loaded its policy, its snapshot query fails with an ApplicationError of
// type SnapshotNotLoaded, which tells the next run's loader to ask the run
// before it (policyclient.neverLoaded); once loaded it answers.
func TestSnapshotQueryOfARunThatNeverLoaded(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Policy, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	loaded := false
	env.RegisterActivityWithOptions(func(context.Context, LoadSnapshotInput) (*Snapshot, error) {
		if !loaded {
			return nil, errors.New("store unavailable")
		}
		return &Snapshot{State: "pre_insured", InsuranceType: insurance.TypeHomeProperty, LastSeq: 1}, nil
	}, activity.RegisterOptions{Name: LoadSnapshotActivity})
	var before, after error
	var snap Snapshot
	env.RegisterDelayedCallback(func() {
		_, before = env.QueryWorkflow(QuerySnapshot)
		loaded = true
	}, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QuerySnapshot)
		if after = err; err == nil {
			after = v.Get(&snap)
		}
		env.CancelWorkflow()
	}, 30*time.Second)
	env.ExecuteWorkflow(Policy, PolicyInput{BizID: testBizID, LoadSnapshot: true, PreviousRunID: "run-1"})
	var appErr *temporal.ApplicationError
	if !errors.As(before, &appErr) || appErr.Type() != SnapshotNotLoaded {
		t.Fatalf("query before the load: %v, want an ApplicationError of type %q", before, SnapshotNotLoaded)
	}
	if after != nil || snap.LastSeq != 1 || snap.State != "pre_insured" {
		t.Fatalf("query after the load: %+v, %v; want the loaded snapshot", snap, after)
	}
}
