package ingress

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/insuranceflow/insuranceflow/api"
	"github.com/insuranceflow/insuranceflow/codec"
	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestOpenAPICoversEveryRoute checks that the contract and the mux agree
// route for route, both ways: a route added to the ingress without its
// document, or a documented route nobody serves, fails CI. The codec
// routes are the codec server's, mounted on the ingress listener with
// CODEC_ADDR=ingress.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	// Events and Imports only have to be set for GET /v1/events and POST
	// /v1/imports to be routed.
	srv, err := New(Config{Policies: &fakePolicies{}, Tokens: []string{token}, Events: (*store.Store)(nil),
		Imports:   (*policyclient.Client)(nil),
		TOPAppKey: "k", TOPAppSecret: top.Secret("s")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	served := map[string]bool{}
	for _, rt := range srv.routes() {
		served[rt.method+" "+rt.path] = true
	}
	for _, op := range []string{"encode", "decode"} {
		served[http.MethodPost+" "+codec.PathPrefix+op] = true
		served[http.MethodOptions+" "+codec.PathPrefix+op] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("route %s is served but not in api/openapi.yaml", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("route %s is in api/openapi.yaml but not served", r)
		}
	}
}

// TestOpenAPIIsServed checks GET /openapi.yaml: no token, the embedded bytes.
func TestOpenAPIIsServed(t *testing.T) {
	s := start(t, &fakePolicies{}, nil)
	resp, err := http.Get(s.url + api.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status=%d, want 200 (body %s)", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != api.OpenAPIContentType {
		t.Errorf("Content-Type=%q, want %q", ct, api.OpenAPIContentType)
	}
	if !bytes.Equal(body, api.OpenAPI()) {
		t.Errorf("served %d bytes that differ from the embedded %d", len(body), len(api.OpenAPI()))
	}
}

// TestIdempotencyKey checks that the header is the event's request id, and
// that it may not contradict the body's.
func TestIdempotencyKey(t *testing.T) {
	t.Run("header alone is the request id", func(t *testing.T) {
		fake := &fakePolicies{acceptance: workflows.Acceptance{BizID: bizID, RequestID: "idem-1", Seq: 1}}
		s := start(t, fake, nil)
		r := s.do(t, http.MethodPost, "/v1/insurance-results", eventJSON(map[string]any{"request_id": nil}),
			map[string]string{"Idempotency-Key": "idem-1"})
		if r.status != http.StatusAccepted {
			t.Fatalf("status=%d, want 202 (body %s)", r.status, r.raw)
		}
		if got := fake.reported[0].RequestID; got != "idem-1" {
			t.Errorf("reported request_id=%q, want idem-1", got)
		}
	})
	t.Run("same as the body", func(t *testing.T) {
		fake := &fakePolicies{}
		s := start(t, fake, nil)
		r := s.do(t, http.MethodPost, "/v1/insurance-results", eventJSON(nil), map[string]string{"Idempotency-Key": "req-2"})
		if r.status != http.StatusAccepted {
			t.Fatalf("status=%d, want 202 (body %s)", r.status, r.raw)
		}
		if got := fake.reported[0].RequestID; got != "req-2" {
			t.Errorf("reported request_id=%q, want req-2", got)
		}
	})
	for name, c := range map[string]struct {
		key, msg string
		body     map[string]any
	}{
		"differs from the body": {"other-id", "differs from the body's request_id", nil},
		"not a request id":      {"has space", "must contain only", map[string]any{"request_id": nil}},
	} {
		t.Run(name, func(t *testing.T) {
			fake := &fakePolicies{}
			s := start(t, fake, nil)
			r := s.do(t, http.MethodPost, "/v1/insurance-results", eventJSON(c.body), map[string]string{"Idempotency-Key": c.key})
			e := wantError(t, r, http.StatusBadRequest, "invalid_request")
			fields, _ := e["fields"].([]any)
			if len(fields) != 1 {
				t.Fatalf("fields=%v, want one naming Idempotency-Key", e["fields"])
			}
			f := fields[0].(map[string]any)
			if f["field"] != "Idempotency-Key" || !strings.Contains(f["message"].(string), c.msg) {
				t.Errorf("field=%v message=%v, want Idempotency-Key: …%s…", f["field"], f["message"], c.msg)
			}
			if len(fake.reported) != 0 {
				t.Errorf("reported %d events, want none", len(fake.reported))
			}
		})
	}
}
