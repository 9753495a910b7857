package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/insuranceflow/insuranceflow/devstack"
	"github.com/insuranceflow/insuranceflow/top"
)

// spanSink is an in-memory OTLP/HTTP trace receiver: the stack's worker
// exports to it with the standard variables (OTEL_TRACES_EXPORTER=otlp,
// OTEL_EXPORTER_OTLP_ENDPOINT…), so the suite checks the configuration an
// operator uses as well as the spans.
type spanSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newSpanSink() *spanSink {
	s := &spanSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				s.spans = append(s.spans, ss.Spans...)
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	return s
}

// env is what the stack's worker needs to export to the sink.
func (s *spanSink) env() []string {
	return []string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.srv.URL,
		"OTEL_SERVICE_NAME=insuranceflow-it",
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms: spans reach the sink quickly
	}
}

// trace returns the spans of one trace received so far.
func (s *spanSink) trace(traceID string) []*tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tracepb.Span
	for _, sp := range s.spans {
		if hex.EncodeToString(sp.TraceId) == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// sink is the suite's receiver, started before the stack (harness_test.go).
var sink *spanSink

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// reportTraced reports body with the caller's traceparent and returns the
// answer's traceparent.
func reportTraced(t *testing.T, body map[string]any, traceparent string) string {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, env.IngressURL+"/v1/insurance-results", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("report: %d %s", resp.StatusCode, answer)
	}
	return resp.Header.Get("Traceparent")
}

// traceView indexes one trace's spans.
type traceView struct {
	byID map[string]*tracepb.Span
}

func viewOf(spans []*tracepb.Span) traceView {
	v := traceView{byID: map[string]*tracepb.Span{}}
	for _, sp := range spans {
		v.byID[hex.EncodeToString(sp.SpanId)] = sp
	}
	return v
}

func (v traceView) named(name string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, sp := range v.byID {
		if sp.Name == name {
			out = append(out, sp)
		}
	}
	return out
}

// chain names span and its ancestors up to the root, or to a parent this
// trace does not hold (the caller's own span).
func (v traceView) chain(span *tracepb.Span) []string {
	var names []string
	for sp := span; sp != nil; sp = v.byID[hex.EncodeToString(sp.ParentSpanId)] {
		names = append(names, sp.Name)
		if len(names) > 20 {
			break
		}
	}
	return names
}

func (v traceView) names() []string {
	var out []string
	for _, sp := range v.byID {
		out = append(out, sp.Name)
	}
	return out
}

const topSpan = "TOP " + top.APIMethod

// TestOneEventIsOneTrace: an event reported with the caller's traceparent
// yields one connected trace from the ingress request to the TOP call,
// which carries the trace's traceparent; the answer quotes the trace; the
// worker's log lines for the delivery carry its trace_id; and a callback
// retried after a ban keeps every attempt in the event's trace.
func TestOneEventIsOneTrace(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })
	clearFaults(t)
	bizID := newBizID("TR")
	traceID, callerSpan := randomHex(t, 16), randomHex(t, 8)
	answer := reportTraced(t, event(bizID, 1, 1, 0), "00-"+traceID+"-"+callerSpan+"-01")
	if !strings.HasPrefix(answer, "00-"+traceID+"-") || strings.Contains(answer, callerSpan) {
		t.Fatalf("answer traceparent %q: want the caller's trace %s with the ingress's own span", answer, traceID)
	}
	got := waitReceipts(t, bizID, 1, 30*time.Second)
	if tp := got[0].TraceParent; !strings.HasPrefix(tp, "00-"+traceID+"-") {
		t.Fatalf("TOP got traceparent %q, want one in trace %s", tp, traceID)
	}

	// The whole path, each span the child of the one before it.
	want := []string{"HTTP POST", topSpan, "RunActivity:DeliverCallback", "StartActivity:DeliverCallback",
		"UpdateWithStartWorkflow:report", "POST /v1/insurance-results"}
	var v traceView
	eventually(t, 15*time.Second, "the delivery's spans exported", func() (bool, string) {
		v = viewOf(sink.trace(traceID))
		https := v.named("HTTP POST")
		if len(https) != 1 {
			return false, fmt.Sprintf("spans %v", v.names())
		}
		chain := v.chain(https[0])
		return strings.Join(chain, " <- ") == strings.Join(want, " <- "), strings.Join(chain, " <- ")
	})
	root := v.named("POST /v1/insurance-results")[0]
	if hex.EncodeToString(root.ParentSpanId) != callerSpan {
		t.Errorf("ingress span's parent = %x, want the caller's span %s", root.ParentSpanId, callerSpan)
	}
	if answer != "00-"+traceID+"-"+hex.EncodeToString(root.SpanId)+"-01" {
		t.Errorf("answer traceparent %q is not the ingress span %x", answer, root.SpanId)
	}
	for _, name := range []string{"store.BeginDelivery", "store.RecordAttempt", "HandleUpdate:report"} {
		if len(v.named(name)) == 0 {
			t.Errorf("no %s span in the event's trace (spans: %v)", name, v.names())
		}
	}
	// No personal data or secret in any attribute of the trace.
	for _, sp := range v.byID {
		for _, kv := range sp.Attributes {
			val := kv.Value.String()
			if strings.Contains(val, "王小丫") || strings.Contains(val, testAppSecret) {
				t.Errorf("span %s attribute %s = %s", sp.Name, kv.Key, val)
			}
		}
	}

	// The worker's log lines for this delivery name the trace.
	logged := false
	b, err := os.ReadFile(filepath.Join(env.Dir, devstack.ProcWorker+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "callback attempt") && strings.Contains(line, bizID) {
			logged = true
			if !strings.Contains(line, traceID) {
				t.Errorf("log line without the event's trace_id %s: %s", traceID, line)
			}
		}
	}
	if !logged {
		t.Errorf("no callback attempt logged for %s", bizID)
	}

	// A second event, reported while TOP bans the app: its first attempt
	// fails, the retry delivers, and both are in the second event's trace.
	setFaults(t, `{"ban_seconds":2}`)
	retryTrace := randomHex(t, 16)
	reportTraced(t, event(bizID, 2, 1, 1), "00-"+retryTrace+"-"+randomHex(t, 8)+"-01")
	got = waitReceipts(t, bizID, 2, 30*time.Second)
	if tp := got[1].TraceParent; !strings.HasPrefix(tp, "00-"+retryTrace+"-") {
		t.Fatalf("the retried callback reached TOP with traceparent %q, want trace %s", tp, retryTrace)
	}
	eventually(t, 15*time.Second, "every attempt in the event's trace", func() (bool, string) {
		v := viewOf(sink.trace(retryTrace))
		runs, calls := v.named("RunActivity:DeliverCallback"), v.named(topSpan)
		return len(runs) >= 2 && len(calls) >= 2 && len(v.named("UpdateWorkflow:report")) == 1,
			fmt.Sprintf("%d attempts, %d TOP calls; spans %v", len(runs), len(calls), v.names())
	})
	if spans := sink.trace(traceID); len(viewOf(spans).named("RunActivity:DeliverCallback")) != 1 {
		t.Errorf("the first event's trace holds another event's attempts")
	}
	// A history whose commands carry trace headers, for the replay test.
	recordHistoryOf(t, "traced-retry", bizID)
}
