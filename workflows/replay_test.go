package workflows

import (
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/insuranceflow/insuranceflow/tracing"
)

// TestReplay replays every history recorded from a real server in
// testdata/*.json against the current workflow code, so a change that would
// break running policies (a reordered command, a new activity before an old
// one) fails here instead of in production. Record a history with
//
//	temporal workflow show --workflow-id policy-<biz_id> --output json > workflows/testdata/<name>.json
//
// An empty directory fails the test: a replay test that checks nothing must
// not look like one that passed.
func TestReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatalf("list histories: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no workflow histories in testdata/*.json: record one from a real server (see the comment on TestReplay)")
	}
	// As the worker runs them: with the tracing interceptor, which must add
	// no command to any history, traced or not.
	tracer, err := tracing.New(sdktrace.NewTracerProvider()).Interceptor()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{tracer},
			})
			if err != nil {
				t.Fatal(err)
			}
			replayer.RegisterWorkflowWithOptions(Policy, workflow.RegisterOptions{Name: WorkflowName})
			replayer.RegisterWorkflowWithOptions(Sweeper, workflow.RegisterOptions{Name: SweeperWorkflowName})
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
