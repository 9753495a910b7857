package policyclient

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/serviceerror"
	updatepb "go.temporal.io/api/update/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"
)

// frontend is a Temporal frontend that answers the calls policyclient
// makes, over real gRPC, so tests run the real SDK client end to end: its
// request encoding, its retries and its decoding of failures. Each handler
// field decides one RPC's answer; the requests are recorded for assertions.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer

	multiOp func(*workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error)
	update  func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error)
	query   func(*workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error)
	list    func(*workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	// lastRunOf, when set, overrides lastRun per workflow ID.
	lastRunOf map[string]enumspb.WorkflowExecutionStatus
	// startRefused are the workflow IDs whose start is refused.
	startRefused map[string]bool
	// completedSinceDescribe are the workflow IDs whose latest run, by the
	// time a start comes, is a newer one that completed (a report opened
	// and closed it after the Describe): a start that only allows a
	// duplicate of a failed run is refused, as the server refuses it.
	completedSinceDescribe map[string]bool
	// openSinceDescribe are the workflow IDs with an open run by the time
	// a start comes (a report opened it after the Describe): a start with
	// conflict policy USE_EXISTING joins it, any other is refused.
	openSinceDescribe map[string]bool
	// lastRun is the status DescribeWorkflowExecution answers for the
	// latest run (run id "last-run"); unset means it completed.
	lastRun enumspb.WorkflowExecutionStatus

	mu        sync.Mutex
	multiOps  []*workflowservice.ExecuteMultiOperationRequest
	updates   []*workflowservice.UpdateWorkflowExecutionRequest
	queries   []*workflowservice.QueryWorkflowRequest
	lists     []*workflowservice.ListWorkflowExecutionsRequest
	starts    []*workflowservice.StartWorkflowExecutionRequest
	callCount int

	stop func() // stops serving, as if the frontend went down
}

// startFrontend serves f on a free port and returns an SDK client dialled to
// it; both are closed when the test ends.
func startFrontend(t *testing.T, f *frontend) client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	f.stop = srv.Stop
	t.Cleanup(srv.Stop)
	c, err := client.Dial(client.Options{
		HostPort: lis.Addr().String(),
		Logger:   log.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatalf("dial fake frontend: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f *frontend) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.callCount
}

func (f *frontend) record(add func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callCount++
	add()
}

func (f *frontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "fake"}, nil
}

func (f *frontend) ExecuteMultiOperation(_ context.Context, req *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
	f.record(func() { f.multiOps = append(f.multiOps, req) })
	if f.multiOp == nil {
		return nil, grpcError(serviceerror.NewUnimplemented("ExecuteMultiOperation"))
	}
	resp, err := f.multiOp(req)
	return resp, grpcError(err)
}

func (f *frontend) UpdateWorkflowExecution(_ context.Context, req *workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
	f.record(func() { f.updates = append(f.updates, req) })
	if f.update == nil {
		return nil, grpcError(serviceerror.NewUnimplemented("UpdateWorkflowExecution"))
	}
	resp, err := f.update(req)
	return resp, grpcError(err)
}

func (f *frontend) DescribeWorkflowExecution(_ context.Context, req *workflowservice.DescribeWorkflowExecutionRequest) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.record(func() {})
	status := f.lastRun
	if st, ok := f.lastRunOf[req.GetExecution().GetWorkflowId()]; ok {
		status = st
	}
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: req.GetExecution().GetWorkflowId(), RunId: "last-run"},
			Status:    status,
		},
	}, nil
}

func (f *frontend) StartWorkflowExecution(_ context.Context, req *workflowservice.StartWorkflowExecutionRequest) (*workflowservice.StartWorkflowExecutionResponse, error) {
	f.record(func() { f.starts = append(f.starts, req) })
	if f.startRefused[req.GetWorkflowId()] {
		return nil, grpcError(serviceerror.NewInvalidArgument("refused by the test"))
	}
	if f.openSinceDescribe[req.GetWorkflowId()] {
		if req.GetWorkflowIdConflictPolicy() == enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
			return &workflowservice.StartWorkflowExecutionResponse{RunId: "open-run", Started: false}, nil
		}
		return nil, grpcError(serviceerror.NewWorkflowExecutionAlreadyStarted("running", req.GetRequestId(), "open-run"))
	}
	if f.completedSinceDescribe[req.GetWorkflowId()] && req.GetWorkflowIdReusePolicy() != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
		return nil, grpcError(serviceerror.NewWorkflowExecutionAlreadyStarted("completed since", req.GetRequestId(), "newer-run"))
	}
	return &workflowservice.StartWorkflowExecutionResponse{RunId: "new-run", Started: true}, nil
}

func (f *frontend) QueryWorkflow(_ context.Context, req *workflowservice.QueryWorkflowRequest) (*workflowservice.QueryWorkflowResponse, error) {
	f.record(func() { f.queries = append(f.queries, req) })
	if f.query == nil {
		return nil, grpcError(serviceerror.NewUnimplemented("QueryWorkflow"))
	}
	resp, err := f.query(req)
	return resp, grpcError(err)
}

func (f *frontend) ListWorkflowExecutions(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.record(func() { f.lists = append(f.lists, req) })
	if f.list == nil {
		return nil, grpcError(serviceerror.NewUnimplemented("ListWorkflowExecutions"))
	}
	resp, err := f.list(req)
	return resp, grpcError(err)
}

// grpcError turns a serviceerror into the gRPC status the real frontend
// sends, which the SDK turns back into the serviceerror.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	return serviceerror.ToStatus(err).Err()
}

// updateSuccess is a completed update whose result is v.
func updateSuccess(t *testing.T, updateID string, v any) *workflowservice.UpdateWorkflowExecutionResponse {
	t.Helper()
	payloads, err := converter.GetDefaultDataConverter().ToPayloads(v)
	if err != nil {
		t.Fatalf("encode update result: %v", err)
	}
	return &workflowservice.UpdateWorkflowExecutionResponse{
		UpdateRef: &updatepb.UpdateRef{UpdateId: updateID, WorkflowExecution: &commonpb.WorkflowExecution{RunId: "run-1"}},
		Stage:     enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
		Outcome:   &updatepb.Outcome{Value: &updatepb.Outcome_Success{Success: payloads}},
	}
}

// updateFailure is an update that ended with err, encoded as the worker's
// failure converter would encode a validator's rejection.
func updateFailure(updateID string, err error) *workflowservice.UpdateWorkflowExecutionResponse {
	return &workflowservice.UpdateWorkflowExecutionResponse{
		UpdateRef: &updatepb.UpdateRef{UpdateId: updateID, WorkflowExecution: &commonpb.WorkflowExecution{RunId: "run-1"}},
		Stage:     enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
		Outcome:   &updatepb.Outcome{Value: &updatepb.Outcome_Failure{Failure: temporal.GetDefaultFailureConverter().ErrorToFailure(err)}},
	}
}

// serverFailure is an update failure authored by the server itself, such as
// AcceptedUpdateCompletedWorkflow.
func serverFailure(updateID, failureType string) *workflowservice.UpdateWorkflowExecutionResponse {
	return &workflowservice.UpdateWorkflowExecutionResponse{
		UpdateRef: &updatepb.UpdateRef{UpdateId: updateID, WorkflowExecution: &commonpb.WorkflowExecution{RunId: "run-1"}},
		Stage:     enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
		Outcome: &updatepb.Outcome{Value: &updatepb.Outcome_Failure{Failure: &failurepb.Failure{
			Message: "Workflow Update failed because the Workflow completed before the Update completed.",
			Source:  "Server",
			FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{
				Type: failureType, NonRetryable: true,
			}},
		}}},
	}
}

// multiOpAnswer wraps an update response in the multi-operation response
// of an update-with-start.
func multiOpAnswer(update *workflowservice.UpdateWorkflowExecutionResponse) *workflowservice.ExecuteMultiOperationResponse {
	return &workflowservice.ExecuteMultiOperationResponse{Responses: []*workflowservice.ExecuteMultiOperationResponse_Response{
		{Response: &workflowservice.ExecuteMultiOperationResponse_Response_StartWorkflow{
			StartWorkflow: &workflowservice.StartWorkflowExecutionResponse{RunId: "run-1", Started: true},
		}},
		{Response: &workflowservice.ExecuteMultiOperationResponse_Response_UpdateWorkflow{UpdateWorkflow: update}},
	}}
}

// The messages of the NotFound the real frontend (dev server 1.29) answers
// an update with when the workflow id has no open run.
const (
	neverStarted  = "workflow not found for ID: policy-" + bizID
	alreadyClosed = "workflow execution already completed"
)

// noOpenRun answers every update as the real frontend does when the
// workflow id has no open run: NotFound with message.
func noOpenRun(message string) func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
	return func(*workflowservice.UpdateWorkflowExecutionRequest) (*workflowservice.UpdateWorkflowExecutionResponse, error) {
		return nil, serviceerror.NewNotFound(message)
	}
}

// rejection is the error a workflow's update validator returns.
func rejection(reason, message string, details ...any) error {
	return temporal.NewApplicationErrorWithOptions(message, reason, temporal.ApplicationErrorOptions{
		NonRetryable: true,
		Details:      details,
	})
}

// decode reads the first payload of ps into v.
func decode(t *testing.T, ps *commonpb.Payloads, v any) {
	t.Helper()
	if err := converter.GetDefaultDataConverter().FromPayloads(ps, v); err != nil {
		t.Fatalf("decode payloads: %v", err)
	}
}

// keywordAttr reads one Keyword search attribute of a request.
func keywordAttr(t *testing.T, sa *commonpb.SearchAttributes, name string) string {
	t.Helper()
	p, ok := sa.GetIndexedFields()[name]
	if !ok {
		t.Fatalf("search attribute %s missing (have %v)", name, sa.GetIndexedFields())
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		t.Fatalf("decode search attribute %s: %v", name, err)
	}
	return s
}

// shortContext bounds a call that is expected to give up.
func shortContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
