package integration

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/insuranceflow/insuranceflow/workflows"
)

var recordHistory = flag.Bool("record-history", false,
	"write the histories of the tests' policies to workflows/testdata for the replay test")

// recordHistoryOf saves a policy's history (from the real server) as
// workflows/testdata/<name>.json when -record-history is given, so the replay
// test guards exactly what a real server records.
func recordHistoryOf(t *testing.T, name, bizID string) {
	t.Helper()
	recordRunHistoryOf(t, name, bizID, "")
}

// recordRunHistoryOf is recordHistoryOf for one run of the policy ("" = the
// latest).
func recordRunHistoryOf(t *testing.T, name, bizID, runID string) {
	t.Helper()
	recordWorkflowHistory(t, name, workflows.WorkflowID(bizID), runID)
}

// recordWorkflowHistory records any workflow's run ("" = the latest): a
// running one's history so far, which replays as far as it goes.
func recordWorkflowHistory(t *testing.T, name, workflowID, runID string) {
	t.Helper()
	if !*recordHistory {
		return
	}
	args := []string{"workflow", "show", "--address", env.TemporalAddress,
		"--workflow-id", workflowID, "--output", "json"}
	if runID != "" {
		args = append(args, "--run-id", runID)
	}
	cmd := exec.Command(temporalBin(), args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("temporal workflow show %s: %v", workflowID, err)
	}
	path := filepath.Join("..", "workflows", "testdata", name+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}
