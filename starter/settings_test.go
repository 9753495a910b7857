package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// settingsEnv sets every workflow setting the worker reads.
var settingsEnv = map[string]string{
	"RETRY_INITIAL_INTERVAL": "2s",
	"RETRY_BACKOFF":          "1.5",
	"RETRY_MAX_INTERVAL":     "10m",
	"RETRY_BUDGET":           "2h",
	"IDLE_TIMEOUT":           "72h",
	"EMPTY_RUN_GRACE":        "30s",
	"CONTINUE_AS_NEW_AFTER":  "100",
}

var settingsFromEnv = workflows.Settings{
	RetryInitialInterval: 2 * time.Second, RetryBackoff: 1.5, RetryMaxInterval: 10 * time.Minute, RetryBudget: 2 * time.Hour,
	IdleTimeout: 72 * time.Hour, EmptyRunGrace: 30 * time.Second, ContinueAsNewAfter: 100, Pipeline: true,
}

// pipelined is the settings of an environment that sets none: only
// pipelining, which is on unless PIPELINE_DELIVERY says false.
var pipelined = workflows.Settings{Pipeline: true}

func TestWorkflowSettingsFromEnvironment(t *testing.T) {
	t.Run("read into the config", func(t *testing.T) {
		b := &fakeBackends{ops: newFakePolicies()}
		res := cli{backends: b, env: settingsEnv}.run(t, "list")
		if res.code != exitOK {
			t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
		}
		if b.cfg.Settings != settingsFromEnv {
			t.Fatalf("settings=%+v, want %+v", b.cfg.Settings, settingsFromEnv)
		}
	})
	t.Run("unusable values are bad input naming each variable", func(t *testing.T) {
		b := &fakeBackends{ops: newFakePolicies()}
		env := map[string]string{"RETRY_BUDGET": "soon", "EMPTY_RUN_GRACE": "-1m"}
		res := cli{backends: b, env: env}.run(t, "report", "--biz-id", "B1", "--stage", "1", "--status", "1", "--insurance-type", "1")
		if res.code != exitBadInput {
			t.Fatalf("exit=%d, want %d; stderr=%s", res.code, exitBadInput, res.stderr)
		}
		want := `error: RETRY_BUDGET: "soon" is not a duration (e.g. 30s, 5m, 24h); EMPTY_RUN_GRACE: "-1m" is negative` + "\n" +
			"Run 'starter report --help' for usage.\n"
		if res.stderr != want {
			t.Fatalf("stderr=%q, want %q", res.stderr, want)
		}
		if b.policiesCalls != 0 {
			t.Fatalf("connected to Temporal despite unusable settings")
		}
	})
}

// TestReportStartsRunsWithTheWorkerSettings runs `starter report` with the
// real backends (SDK client, SQLite store) against a Temporal frontend that
// records the Update-with-Start request, and checks the run it would start
// carries the settings from the environment rather than zero values.
func TestReportStartsRunsWithTheWorkerSettings(t *testing.T) {
	fe := &recordingFrontend{}
	addr := serveFrontend(t, fe)
	env := map[string]string{
		"TEMPORAL_ADDRESS": addr,
		"DATABASE_URL":     "sqlite://" + filepath.Join(t.TempDir(), "audit.db"),
	}
	for k, v := range settingsEnv {
		env[k] = v
	}
	c, _ := liveCLI()
	c.env = env
	res := c.run(t, "report", "--biz-id", "S1", "--stage", "pre_insure", "--status", "success", "--insurance-type", "home_property")
	if res.code != exitOK {
		t.Fatalf("exit=%d, stderr=%s", res.code, res.stderr)
	}
	req := fe.request(t)
	var in workflows.PolicyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(req.GetOperations()[0].GetStartWorkflow().GetInput(), &in); err != nil {
		t.Fatalf("decode start input: %v", err)
	}
	if in.BizID != "S1" || in.Settings != settingsFromEnv {
		t.Fatalf("start input biz_id=%q settings=%+v, want S1 with %+v", in.BizID, in.Settings, settingsFromEnv)
	}
}

// recordingFrontend is a Temporal frontend that accepts every report
// update-with-start and keeps the request.
type recordingFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer

	mu       sync.Mutex
	requests []*workflowservice.ExecuteMultiOperationRequest
}

func (f *recordingFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "fake"}, nil
}

// UpdateWorkflowExecution answers as the real frontend does for a policy
// with no open run, so the client falls back on Update-with-Start.
func (f *recordingFrontend) UpdateWorkflowExecution(context.Context, *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
	return nil, serviceerror.ToStatus(serviceerror.NewNotFound("workflow not found for ID: policy-S1")).Err()
}

func (f *recordingFrontend) ExecuteMultiOperation(_ context.Context, req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	upd := req.GetOperations()[1].GetUpdateWorkflow().GetRequest()
	var r insurance.Result
	if err := converter.GetDefaultDataConverter().FromPayloads(upd.GetInput().GetArgs(), &r); err != nil {
		return nil, err
	}
	result, err := converter.GetDefaultDataConverter().ToPayloads(workflows.Acceptance{
		BizID: r.BizID, RequestID: r.RequestID, Seq: 1, Stage: r.Stage, Status: r.Status, State: fsm.StatePreInsured,
	})
	if err != nil {
		return nil, err
	}
	return &workflowservice.ExecuteMultiOperationResponse{Responses: []*workflowservice.ExecuteMultiOperationResponse_Response{
		{Response: &workflowservice.ExecuteMultiOperationResponse_Response_StartWorkflow{
			StartWorkflow: &workflowservice.StartWorkflowExecutionResponse{RunId: "run-1", Started: true},
		}},
		{Response: &workflowservice.ExecuteMultiOperationResponse_Response_UpdateWorkflow{UpdateWorkflow: &workflowservice.UpdateWorkflowExecutionResponse{
			UpdateRef: &updatepb.UpdateRef{UpdateId: upd.GetMeta().GetUpdateId(), WorkflowExecution: &commonpb.WorkflowExecution{RunId: "run-1"}},
			Stage:     enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
			Outcome:   &updatepb.Outcome{Value: &updatepb.Outcome_Success{Success: result}},
		}}},
	}}, nil
}

// request is the one update-with-start the frontend received.
func (f *recordingFrontend) request(t *testing.T) *workflowservice.ExecuteMultiOperationRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != 1 {
		t.Fatalf("update-with-start requests=%d, want 1", len(f.requests))
	}
	return f.requests[0]
}

// serveFrontend serves f over real gRPC on a free port until the test ends.
func serveFrontend(t *testing.T, f workflowservice.WorkflowServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestRootHelpNamesTheSettingsVariables(t *testing.T) {
	res := runWith(t, newFakePolicies(), "--help")
	for name := range settingsEnv {
		if !strings.Contains(res.stdout, name) {
			t.Errorf("help does not mention %s", name)
		}
	}
}

func TestPayloadKeysFileDefault(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	none := func(string) (string, bool) { return "", false }
	if got := payloadKeysFile(none); got != "" {
		t.Fatalf("no variable, no dev key file: %q, want none", got)
	}
	if err := os.MkdirAll(".data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(devKeysFile, []byte("k:x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := payloadKeysFile(none); got != devKeysFile {
		t.Fatalf("dev key file present: %q, want %q", got, devKeysFile)
	}
	set := func(v string) func(string) (string, bool) { return func(string) (string, bool) { return v, true } }
	if got := payloadKeysFile(set("")); got != "" {
		t.Fatalf("PAYLOAD_KEYS_FILE set empty: %q, want encryption off", got)
	}
	if got := payloadKeysFile(set("/etc/keys")); got != "/etc/keys" {
		t.Fatalf("PAYLOAD_KEYS_FILE=/etc/keys: got %q", got)
	}
}
