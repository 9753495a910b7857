package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/insuranceflow/insuranceflow/tracing"
	"github.com/insuranceflow/insuranceflow/workflows"
)

const (
	encryptedQueue = "insuranceflow-encrypted-it"
	codecToken     = "integration-codec-token"
	encryptKeyID   = "it-2025"
)

// encryptedWorker is a second worker process of the stack with payload
// encryption on, polling its own task queue and serving its own ingress
// (and /codec) on its own port.
type encryptedWorker struct {
	url      string
	keysFile string
}

// startEncryptedWorker starts a worker with PAYLOAD_KEYS_FILE (a new key
// first, a retired one after it) and stops it when the test ends.
func startEncryptedWorker(t *testing.T) encryptedWorker {
	t.Helper()
	keysFile := filepath.Join(env.Dir, "payload-keys")
	content := fmt.Sprintf("# integration payload keys\n%s:%s\nit-2024:%s\n", encryptKeyID, randomKey(t), randomKey(t))
	if err := os.WriteFile(keysFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	const name = "worker-encrypted"
	// The log is checked for personal data even when the worker never got
	// ready, so it is read in a cleanup registered before the start.
	var stop func() error
	t.Cleanup(func() {
		if stop != nil {
			if err := stop(); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
		}
		log, _ := os.ReadFile(filepath.Join(env.Dir, name+".log"))
		if t.Failed() {
			t.Logf("----- %s log -----\n%s", name, log)
		}
		if bytes.Contains(log, []byte(managerA)) || bytes.Contains(log, []byte(managerB)) {
			t.Errorf("the encrypted worker logged personal data")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url, stopWorker, err := env.StartExtraWorker(ctx, name, []string{
		"TASK_QUEUE=" + encryptedQueue,
		"PAYLOAD_KEYS_FILE=" + keysFile,
		"CODEC_AUTH_TOKENS=" + codecToken,
		// On the ingress listener, which the tokens make allowed.
		"CODEC_ADDR=ingress",
	})
	if err != nil {
		t.Fatalf("encrypted worker not ready: %v", err)
	}
	stop = stopWorker
	return encryptedWorker{url: url, keysFile: keysFile}
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// send makes a request to base+path with a bearer token (when not empty)
// and returns the status and body.
func send(t *testing.T, method, url, token string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// Personal data of the encrypted policy; none of it may be in the history.
const (
	managerA     = "加密测试经理甲"
	managerB     = "轮换测试经理乙"
	document     = "oss:encrypted-doc-5521"
	policyNumber = "PN-ENCRYPTED-4412"
)

// runStarter runs the CLI against the encrypted worker's task queue, with
// keys as PAYLOAD_KEYS_FILE ("" for none), and returns its stdout, its
// stderr and its error.
func runStarter(keys string, args ...string) (stdout, stderr []byte, err error) {
	cmd := env.Starter(context.Background(), args...)
	cmd.Env = append(cmd.Env,
		"TASK_QUEUE="+encryptedQueue,
		"PAYLOAD_KEYS_FILE="+keys,
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

func TestPayloadEncryption(t *testing.T) {
	w := startEncryptedWorker(t)
	bizID := newBizID("EN")

	// Stage 1 through the encrypted worker's ingress.
	ev := event(bizID, 1, 1, 0)
	ev["bank_account_manager_name"] = managerA
	ev["insurance_document"] = document
	ev["policy_number"] = policyNumber
	body, _ := json.Marshal(ev)
	status, raw := send(t, http.MethodPost, w.url+"/v1/insurance-results", testToken, body)
	var acc acceptance
	if status != http.StatusAccepted || json.Unmarshal(raw, &acc) != nil || acc.Seq != 1 || acc.State != "pre_insured" {
		t.Fatalf("report through the encrypted ingress: %d %s, want 202 seq 1 pre_insured", status, raw)
	}

	// Stage 2 through the CLI with the same key file: it encrypts too.
	out, errOut, err := runStarter(w.keysFile, "report", "--json", "--biz-id", bizID, "--stage", "underwrite", "--status", "success",
		"--insurance-type", "home_property", "--time", "2025-04-08 09:05:00", "--manager-name", managerB)
	var reported struct {
		State string `json:"state"`
	}
	if err != nil || json.Unmarshal(out, &reported) != nil || reported.State != "underwritten" {
		t.Fatalf("starter report with PAYLOAD_KEYS_FILE: %v\n%s%s\nwant underwritten", err, out, errOut)
	}

	// An illegal event: its rejection, a failure encrypted by the worker,
	// still reads as the ingress's usual 409.
	body, _ = json.Marshal(event(bizID, 5, 1, 10))
	status, raw = send(t, http.MethodPost, w.url+"/v1/insurance-results", testToken, body)
	var e apiError
	if status != http.StatusConflict || json.Unmarshal(raw, &e) != nil || e.Error.Code != "illegal_transition" ||
		!strings.Contains(e.Error.Message, "not allowed in state underwritten") {
		t.Fatalf("illegal endorse: %d %s, want 409 illegal_transition with a readable message", status, raw)
	}

	// The activities decrypted their inputs: topsim got the plaintext.
	got := waitReceipts(t, bizID, 2, 30*time.Second)
	if len(got) != 2 || !strings.Contains(string(got[0].Payload), policyNumber) {
		t.Fatalf("receipts=%+v, want 2 with the policy number", got)
	}
	waitDelivered(t, w, bizID, 2)

	events := history(t, bizID)
	t.Run("history holds no plaintext personal data", func(t *testing.T) {
		var all []byte
		for _, he := range events {
			b, err := proto.Marshal(he)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		// The same bytes do hold what is not encrypted by design (the
		// workflow id, the search attributes), so the search below can
		// find a string when it is there.
		if !bytes.Contains(all, []byte(bizID)) {
			t.Fatalf("the history bytes do not contain the biz_id; the search is broken")
		}
		for _, secret := range []string{managerA, managerB, document, policyNumber} {
			if bytes.Contains(all, []byte(secret)) {
				t.Errorf("the history in Temporal contains %q in plaintext", secret)
			}
		}
	})

	payloads, traceHeaders := collectPayloads(events)
	t.Run("trace headers hold only the trace context", func(t *testing.T) {
		// The ingress traces every request, so the updates carry one.
		if len(traceHeaders) == 0 {
			t.Fatalf("no %s header in the history: the updates were not traced", tracing.HeaderKey)
		}
		for i, p := range traceHeaders {
			var m map[string]string
			if err := json.Unmarshal(p.GetData(), &m); err != nil {
				t.Fatalf("trace header %d: %v", i, err)
			}
			for k := range m {
				if k != "traceparent" && k != "tracestate" {
					t.Errorf("trace header %d carries %q: only the W3C trace context may go unencrypted", i, k)
				}
			}
		}
	})
	t.Run("every payload is encrypted with the first key", func(t *testing.T) {
		if len(payloads) < 6 {
			t.Fatalf("found %d payloads in the history, want the inputs and results of 2 updates and 2 activities at least", len(payloads))
		}
		for i, p := range payloads {
			enc, id := string(p.GetMetadata()["encoding"]), string(p.GetMetadata()["encryption-key-id"])
			if enc != "binary/encrypted" || id != encryptKeyID {
				t.Errorf("payload %d: encoding=%q key=%q, want binary/encrypted with %s", i, enc, id, encryptKeyID)
			}
		}
	})

	t.Run("the codec endpoint decrypts them", func(t *testing.T) {
		req, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
		if err != nil {
			t.Fatal(err)
		}
		if status, raw := send(t, http.MethodPost, w.url+"/codec/decode", "", req); status != http.StatusUnauthorized {
			t.Fatalf("decode without a token: %d %s, want 401", status, raw)
		}
		if status, raw := send(t, http.MethodPost, w.url+"/codec/decode", testToken, req); status != http.StatusUnauthorized {
			t.Fatalf("decode with the ingress token: %d %s, want 401", status, raw)
		}
		status, raw := send(t, http.MethodPost, w.url+"/codec/decode", codecToken, req, "Origin", "http://localhost:8233", "X-Namespace", "default")
		if status != http.StatusOK {
			t.Fatalf("decode: %d %s, want 200", status, raw)
		}
		var dec commonpb.Payloads
		if err := protojson.Unmarshal(raw, &dec); err != nil {
			t.Fatalf("decode answer: %v", err)
		}
		if len(dec.Payloads) != len(payloads) {
			t.Fatalf("decoded %d payloads, want %d", len(dec.Payloads), len(payloads))
		}
		var plain []byte
		for _, p := range dec.Payloads {
			if string(p.GetMetadata()["encoding"]) == "binary/encrypted" {
				t.Fatalf("a payload came back still encrypted")
			}
			plain = append(plain, p.GetData()...)
		}
		for _, want := range []string{managerA, managerB, document, policyNumber} {
			if !bytes.Contains(plain, []byte(want)) {
				t.Errorf("the decoded payloads lack %q", want)
			}
		}
	})

	t.Run("the UI's preflight is answered", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, w.url+"/codec/decode", nil)
		req.Header.Set("Origin", "http://127.0.0.1:8233")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace,authorization")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" {
			t.Fatalf("preflight: %d ACAO=%q, want 204 for the UI's origin", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("the CLI reads the policy with the key file only", func(t *testing.T) {
		out, errOut, err := runStarter(w.keysFile, "status", "--json", bizID)
		var st struct {
			State        string `json:"state"`
			PolicyNumber string `json:"policy_number"`
		}
		if err != nil || json.Unmarshal(out, &st) != nil || st.State != "underwritten" || st.PolicyNumber != policyNumber {
			t.Fatalf("starter status with PAYLOAD_KEYS_FILE: %v\n%s%s\nwant underwritten with the policy number", err, out, errOut)
		}
		out, errOut, err = runStarter("", "status", "--json", bizID)
		if err == nil {
			t.Fatalf("starter status without the key file succeeded:\n%s", out)
		}
		all := append(out, errOut...)
		if bytes.Contains(all, []byte(policyNumber)) || bytes.Contains(all, []byte(managerA)) {
			t.Fatalf("starter without the key file printed personal data:\n%s", all)
		}
	})
}

// waitDelivered waits until the encrypted ingress (whose status query
// result is encrypted too) shows n delivered callbacks, so the activities'
// results are in the history.
func waitDelivered(t *testing.T, w encryptedWorker, bizID string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, "callbacks delivered", func() (bool, string) {
		status, raw := send(t, http.MethodGet, w.url+"/v1/policies/"+bizID, testToken, nil)
		var st policyStatus
		if status != http.StatusOK || json.Unmarshal(raw, &st) != nil {
			return false, fmt.Sprintf("%d %s", status, raw)
		}
		delivered := 0
		for _, e := range st.Events {
			if e.Callback == "delivered" {
				delivered++
			}
		}
		return delivered >= n && st.State == "underwritten", fmt.Sprintf("%s, %d delivered", st.State, delivered)
	})
}

// history fetches a policy's whole history from the server, raw: the
// test's client has no codec.
func history(t *testing.T, bizID string) []*historypb.HistoryEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	it := env.Temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(bizID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", bizID, err)
		}
		events = append(events, e)
	}
	return events
}

// collectPayloads finds every payload in the events, except the search
// attributes', which Temporal indexes and so are never encoded.
// collectPayloads returns every payload of the history, and apart from them
// the tracing headers (tracing.HeaderKey), which hold only a W3C trace
// context and are not encrypted by design.
func collectPayloads(events []*historypb.HistoryEvent) (out, traceHeaders []*commonpb.Payload) {
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch v := m.Interface().(type) {
		case *commonpb.Payload:
			out = append(out, v)
			return
		case *commonpb.SearchAttributes:
			return
		case *commonpb.Header:
			for key, p := range v.GetFields() {
				if key == tracing.HeaderKey {
					traceHeaders = append(traceHeaders, p)
				} else {
					out = append(out, p)
				}
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsMap():
				if fd.MapValue().Message() != nil {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { walk(mv.Message()); return true })
				}
			case fd.IsList():
				if fd.Message() != nil {
					for i := 0; i < v.List().Len(); i++ {
						walk(v.List().Get(i).Message())
					}
				}
			case fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	for _, e := range events {
		walk(e.ProtoReflect())
	}
	return out, traceHeaders
}

func TestCodecEndpointOffWithoutKeys(t *testing.T) {
	// The stack's own worker runs without PAYLOAD_KEYS_FILE.
	status, raw := send(t, http.MethodPost, env.IngressURL+"/codec/decode", testToken, []byte(`{"payloads":[]}`))
	var e apiError
	if status != http.StatusNotFound || json.Unmarshal(raw, &e) != nil || e.Error.Code != "not_found" {
		t.Fatalf("POST /codec/decode on the plain worker: %d %s, want the ingress's 404", status, raw)
	}
}
