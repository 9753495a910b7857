package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// frontend is a Temporal frontend with just what the worker's startup and
// the ingress's readiness use: system info, the namespace's search
// attributes and the gRPC health service.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	operatorservice.UnimplementedOperatorServiceServer

	attributes map[string]enumspb.IndexedValueType
	health     *health.Server

	// The sweeper's calls: the status Describe answers for it, and every
	// signal-with-start received.
	mu            sync.Mutex
	sweeperStatus enumspb.WorkflowExecutionStatus
	signalStarts  []*workflowservice.SignalWithStartWorkflowExecutionRequest
}

func (f *frontend) DescribeWorkflowExecution(_ context.Context, req *workflowservice.DescribeWorkflowExecutionRequest) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: req.GetExecution(), Status: f.sweeperStatus,
	}}, nil
}

func (f *frontend) SignalWithStartWorkflowExecution(_ context.Context, req *workflowservice.SignalWithStartWorkflowExecutionRequest) (*workflowservice.SignalWithStartWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signalStarts = append(f.signalStarts, req)
	return &workflowservice.SignalWithStartWorkflowExecutionResponse{RunId: "sweeper-run", Started: true}, nil
}

func (f *frontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "fake"}, nil
}

func (f *frontend) ListSearchAttributes(_ context.Context, req *operatorservice.ListSearchAttributesRequest) (*operatorservice.ListSearchAttributesResponse, error) {
	return &operatorservice.ListSearchAttributesResponse{
		CustomAttributes: f.attributes,
		SystemAttributes: map[string]enumspb.IndexedValueType{"WorkflowType": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}, nil
}

// startFrontend serves f on a free port and returns its address.
func startFrontend(t *testing.T, f *frontend) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	operatorservice.RegisterOperatorServiceServer(srv, f)
	f.health = health.NewServer()
	f.health.SetServingStatus("temporal.api.workflowservice.v1.WorkflowService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, f.health)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func allKeywords() map[string]enumspb.IndexedValueType {
	m := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames() {
		m[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	return m
}

// lister answers ListSearchAttributes from a map, for the check alone.
type lister map[string]enumspb.IndexedValueType

func (l lister) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: l}, nil
}

func TestCheckSearchAttributes(t *testing.T) {
	t.Run("all present", func(t *testing.T) {
		if err := checkSearchAttributes(context.Background(), lister(allKeywords()), "default", false); err != nil {
			t.Fatalf("check: %v", err)
		}
	})
	t.Run("missing ones are listed with the command that creates them", func(t *testing.T) {
		have := allKeywords()
		delete(have, "PolicyState")
		delete(have, "CallbackState")
		err := checkSearchAttributes(context.Background(), lister(have), "insurance", false)
		var serr *SearchAttributesError
		if !errors.As(err, &serr) {
			t.Fatalf("err=%v, want *SearchAttributesError", err)
		}
		if want := []string{"PolicyState", "CallbackState"}; strings.Join(serr.Missing, ",") != strings.Join(want, ",") {
			t.Fatalf("missing=%v, want %v", serr.Missing, want)
		}
		for _, cmd := range []string{
			"temporal operator search-attribute create --namespace insurance --name PolicyState --type Keyword",
			"temporal operator search-attribute create --namespace insurance --name CallbackState --type Keyword",
		} {
			if !strings.Contains(err.Error(), cmd) {
				t.Errorf("error does not show %q:\n%v", cmd, err)
			}
		}
		if strings.Contains(err.Error(), "--name BizId") {
			t.Errorf("error asks to create BizId, which exists:\n%v", err)
		}
		cloudCmd := "tcld namespace search-attributes add --namespace insurance --search-attribute PolicyState=Keyword --search-attribute CallbackState=Keyword"
		if !strings.Contains(err.Error(), cloudCmd) {
			t.Errorf("error does not show the Temporal Cloud command %q:\n%v", cloudCmd, err)
		}
		if strings.Index(err.Error(), "self-hosted") > strings.Index(err.Error(), "Temporal Cloud") {
			t.Errorf("self-hosted address: the self-hosted command should come first:\n%v", err)
		}
	})
	t.Run("on Temporal Cloud the tcld command comes first", func(t *testing.T) {
		have := allKeywords()
		delete(have, "BizId")
		err := checkSearchAttributes(context.Background(), lister(have), "insurance.acct", true)
		msg := err.Error()
		cloud := strings.Index(msg, "tcld namespace search-attributes add --namespace insurance.acct --search-attribute BizId=Keyword")
		self := strings.Index(msg, "temporal operator search-attribute create --namespace insurance.acct --name BizId")
		if cloud < 0 || self < 0 || cloud > self {
			t.Fatalf("want the tcld command before the operator command:\n%v", msg)
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		have := allKeywords()
		have["InsuranceType"] = enumspb.INDEXED_VALUE_TYPE_INT
		err := checkSearchAttributes(context.Background(), lister(have), "default", false)
		var serr *SearchAttributesError
		if !errors.As(err, &serr) || serr.WrongType["InsuranceType"] != "Int" || len(serr.Missing) != 0 {
			t.Fatalf("err=%v, want InsuranceType reported as Int", err)
		}
		if !strings.Contains(err.Error(), "InsuranceType has type Int, want Keyword") {
			t.Errorf("error text: %v", err)
		}
	})
}

// logSink collects log output from several goroutines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

var listeningURL = regexp.MustCompile(`"msg":"ingress listening","url":"(http://127\.0\.0\.1:\d+)"`)

// waitForURL waits for the "ingress listening" line and returns its URL.
func waitForURL(t *testing.T, logs *logSink, done <-chan error) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if m := listeningURL.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\nlogs: %s", err, logs.String())
		case <-deadline:
			t.Fatalf("no ingress listening line; logs: %s", logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func ingressOnlyConfig(t *testing.T, temporalAddr string) config {
	t.Helper()
	cfg, err := parseConfig([]string{"--no-worker"}, env(map[string]string{
		"TEMPORAL_ADDRESS": temporalAddr,
		"DATABASE_URL":     "sqlite://" + filepath.Join(t.TempDir(), "flow.db"),
		"HTTP_ADDR":        "127.0.0.1:0",
		"INGRESS_TOKENS":   ingressToken,
		"LOG_FORMAT":       "json",
	}), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	return cfg
}

func TestServeIngressOnly(t *testing.T) {
	f := &frontend{attributes: allKeywords()}
	cfg := ingressOnlyConfig(t, startFrontend(t, f))
	logs := &logSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, newLogger(cfg, logs), noOTel) }()
	base := waitForURL(t, logs, done)

	get := func(path string, auth bool) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+ingressToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: decode: %v", path, err)
		}
		return resp.StatusCode, body
	}
	if status, _ := get("/healthz", false); status != http.StatusOK {
		t.Fatalf("healthz=%d, want 200", status)
	}
	if status, body := get("/readyz", false); status != http.StatusOK {
		t.Fatalf("readyz=%d %v, want 200 with Temporal and the database up", status, body)
	}
	if status, _ := get("/v1/policies/B1", false); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated status=%d, want 401", status)
	}

	f.health.SetServingStatus("temporal.api.workflowservice.v1.WorkflowService", healthpb.HealthCheckResponse_NOT_SERVING)
	if status, _ := get("/readyz", false); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Temporal unhealthy=%d, want 503", status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not stop after cancellation")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatalf("the ingress still answers after shutdown")
	}
	if strings.Contains(logs.String(), ingressToken) {
		t.Fatalf("the logs contain the ingress token")
	}
}

func TestServeRefusesANamespaceWithoutSearchAttributes(t *testing.T) {
	have := allKeywords()
	delete(have, "BizId")
	cfg := ingressOnlyConfig(t, startFrontend(t, &frontend{attributes: have}))
	err := serve(context.Background(), cfg, slog.New(slog.DiscardHandler), noOTel)
	var serr *SearchAttributesError
	if !errors.As(err, &serr) || len(serr.Missing) != 1 || serr.Missing[0] != "BizId" {
		t.Fatalf("err=%v, want BizId missing", err)
	}
}

func TestRunHTTPFinishesRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runHTTP(ctx, srv, ln) }()

	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			answer <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-started
	cancel() // shutdown begins while the request is in flight
	select {
	case err := <-done:
		t.Fatalf("runHTTP returned (%v) before the request in flight finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != "finished" {
		t.Fatalf("in-flight request got %q, want finished", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("runHTTP: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	t.Run("bad value exits 2 naming the variable", func(t *testing.T) {
		var stderr bytes.Buffer
		code := run(nil, env(with(minimal(), "RETRY_BUDGET", "forever")), &stderr)
		if code != exitConfig {
			t.Fatalf("exit=%d, want %d", code, exitConfig)
		}
		if !strings.Contains(stderr.String(), `RETRY_BUDGET: "forever" is not a duration`) {
			t.Fatalf("stderr=%q, want the variable named", stderr.String())
		}
		if strings.Contains(stderr.String(), appSecret) {
			t.Fatalf("stderr shows the app secret")
		}
	})
	t.Run("help exits 0", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := run([]string{"--help"}, env(minimal()), &stderr); code != exitOK {
			t.Fatalf("exit=%d, want 0", code)
		}
		if !strings.Contains(stderr.String(), "Usage: worker") {
			t.Fatalf("no usage printed: %q", stderr.String())
		}
	})
	t.Run("missing search attributes exit 1 with the command", func(t *testing.T) {
		var stderr bytes.Buffer
		addr := startFrontend(t, &frontend{attributes: map[string]enumspb.IndexedValueType{}})
		code := run([]string{"--no-worker", "--http-addr", "127.0.0.1:0"}, env(map[string]string{
			"TEMPORAL_ADDRESS": addr,
			"DATABASE_URL":     "sqlite://" + filepath.Join(t.TempDir(), "flow.db"),
			"INGRESS_TOKENS":   ingressToken,
		}), &stderr)
		if code != exitFailure {
			t.Fatalf("exit=%d, want %d; stderr: %s", code, exitFailure, stderr.String())
		}
		if !strings.Contains(stderr.String(), "search-attribute create --namespace default --name BizId --type Keyword") {
			t.Fatalf("stderr does not show the create command: %s", stderr.String())
		}
	})
}

// noOTel is an environment without OpenTelemetry variables: tests export no
// spans, whatever the developer's shell has set.
func noOTel(string) string { return "" }
