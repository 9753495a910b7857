package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/insuranceflow/insuranceflow/api"
)

// TestOpenAPIServed checks that the ingress serves the embedded document,
// unauthenticated, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	resp, err := httpClient.Get(env.IngressURL + api.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, api.OpenAPI()) {
		t.Fatalf("GET %s: status=%d, %d bytes; want 200 and the embedded %d bytes", api.OpenAPIPath, resp.StatusCode, len(body), len(api.OpenAPI()))
	}
}

// TestIdempotencyKeyHeader reports through the real stack with the
// Idempotency-Key header as the request id, re-sends it as a duplicate, and
// is refused when the body's request_id says otherwise.
func TestIdempotencyKeyHeader(t *testing.T) {
	bizID := newBizID("IK")
	post := func(body map[string]any, key string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, env.IngressURL+"/v1/insurance-results", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	ev := event(bizID, 1, 1, 0)
	if status, out := post(ev, "idem-"+bizID); status != http.StatusAccepted || out["request_id"] != "idem-"+bizID {
		t.Fatalf("first report: status=%d body=%v, want 202 with request_id idem-%s", status, out, bizID)
	}
	if status, out := post(ev, "idem-"+bizID); status != http.StatusOK || out["duplicate"] != true {
		t.Fatalf("same key again: status=%d body=%v, want 200 duplicate", status, out)
	}
	ev["request_id"] = "body-" + bizID
	status, out := post(ev, "idem-"+bizID)
	e, _ := out["error"].(map[string]any)
	fields, _ := e["fields"].([]any)
	if status != http.StatusBadRequest || e["code"] != "invalid_request" || len(fields) != 1 ||
		fields[0].(map[string]any)["field"] != "Idempotency-Key" {
		t.Fatalf("key and body differ: status=%d body=%v, want 400 invalid_request naming Idempotency-Key", status, out)
	}
}
