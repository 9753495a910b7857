package main

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// The first check always signals-with-start the sweeper with the worker's
// interval (a running one takes the new interval); later checks start it
// only when no run is open, so a running sweeper's history gets nothing.
func TestEnsureSweeper(t *testing.T) {
	f := &frontend{attributes: allKeywords(), sweeperStatus: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
	tc, err := client.Dial(client.Options{HostPort: startFrontend(t, f)})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := config{TaskQueue: "q", SweepInterval: 30 * time.Second}
	signals := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.signalStarts)
	}

	if err := ensureSweeper(ctx, tc, cfg, false); err != nil || signals() != 1 {
		t.Fatalf("first ensure: %v, %d signal-with-starts, want 1", err, signals())
	}
	req := f.signalStarts[0]
	var interval time.Duration
	var in workflows.SweeperInput
	dc := converter.GetDefaultDataConverter()
	if err := dc.FromPayloads(req.GetSignalInput(), &interval); err != nil {
		t.Fatal(err)
	}
	if err := dc.FromPayloads(req.GetInput(), &in); err != nil {
		t.Fatal(err)
	}
	if req.GetWorkflowId() != workflows.SweeperWorkflowID("q") || req.GetSignalName() != workflows.SignalSweepInterval ||
		req.GetWorkflowType().GetName() != workflows.SweeperWorkflowName || req.GetTaskQueue().GetName() != "q" ||
		req.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		interval != 30*time.Second || in.Interval != 30*time.Second || in.TaskQueue != "q" || in.FirstLookBack != workflows.DefaultSweepFirstLookBack {
		t.Fatalf("signal-with-start = %v (signal %v, input %+v)", req, interval, in)
	}

	if err := ensureSweeper(ctx, tc, cfg, true); err != nil || signals() != 1 {
		t.Fatalf("check while it runs: %v, %d signal-with-starts, want still 1", err, signals())
	}
	f.mu.Lock()
	f.sweeperStatus = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
	f.mu.Unlock()
	if err := ensureSweeper(ctx, tc, cfg, true); err != nil || signals() != 2 {
		t.Fatalf("check after someone terminated it: %v, %d signal-with-starts, want 2", err, signals())
	}
}
