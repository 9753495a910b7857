package integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/workflows"
)

type listedPolicy struct {
	BizID          string `json:"biz_id"`
	State          string `json:"state"`
	WorkflowStatus string `json:"workflow_status"`
}

// starterList runs `starter --json list` with args and returns the rows of
// the given biz_ids, keyed by biz_id, with how often each appeared.
func starterList(t *testing.T, ids map[string]bool, args ...string) (map[string]listedPolicy, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := env.Starter(ctx, append([]string{"--json", "list", "--limit", "100000"}, args...)...).Output()
	if err != nil {
		t.Fatalf("starter list %v: %v\n%s", args, err, out)
	}
	var v struct {
		Policies []listedPolicy `json:"policies"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("starter list output: %v\n%s", err, out)
	}
	rows, counts := map[string]listedPolicy{}, map[string]int{}
	for _, p := range v.Policies {
		if ids[p.BizID] {
			rows[p.BizID] = p
			counts[p.BizID]++
		}
	}
	return rows, counts
}

// TestListOneRowPerPolicy: a policy whose first run was terminated and
// whose next event reopened it has two runs in visibility, and a policy
// whose workflow completed has no open run. `starter list` shows the
// reopened policy once (its open run) and not the closed one; with --all
// both show, once each, the closed one from the store.
func TestListOneRowPerPolicy(t *testing.T) {
	ctx := context.Background()
	reopened, closed := newBizID("LR"), newBizID("LX")

	mustAccept(t, event(reopened, 1, 1, 0), 1, "pre_insured")
	waitReceipts(t, reopened, 1, 30*time.Second)
	if err := env.Temporal.TerminateWorkflow(ctx, workflows.WorkflowID(reopened), "", "integration: close the first run"); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	mustAccept(t, event(reopened, 2, 1, 1), 2, "underwritten")

	for i, step := range lifecycle {
		mustAccept(t, event(closed, step.stage, step.status, i), int64(i+1), step.state)
	}
	waitReceipts(t, closed, len(lifecycle), 30*time.Second)

	ids := map[string]bool{reopened: true, closed: true}
	eventually(t, 30*time.Second, "list shows the reopened policy once and not the closed one", func() (bool, string) {
		rows, counts := starterList(t, ids)
		ok := counts[reopened] == 1 && rows[reopened].WorkflowStatus == "Running" && rows[reopened].State == "underwritten" &&
			counts[closed] == 0
		return ok, jsonOf(rows, counts)
	})
	eventually(t, 30*time.Second, "list --all shows both once", func() (bool, string) {
		rows, counts := starterList(t, ids, "--all")
		ok := counts[reopened] == 1 && rows[reopened].WorkflowStatus == "Running" &&
			counts[closed] == 1 && rows[closed].WorkflowStatus == "Closed" && rows[closed].State == "cancelled"
		return ok, jsonOf(rows, counts)
	})
	rows, counts := starterList(t, ids, "--all", "--state", "cancelled")
	if counts[closed] != 1 || counts[reopened] != 0 {
		t.Fatalf("list --all --state cancelled = %s, want only %s", jsonOf(rows, counts), closed)
	}
}

func jsonOf(v ...any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
