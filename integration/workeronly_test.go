package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWorkerOnlyServesHealth runs a worker process with the ingress off, as
// the Helm chart's worker Deployment does (--no-ingress): its probes still
// answer (StartExtraWorker waits for /readyz), and the business API is not
// served there.
func TestWorkerOnlyServesHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url, stop, err := env.StartExtraWorker(ctx, "worker-only", []string{"INGRESS_ENABLED=false"})
	if err != nil {
		t.Fatalf("start a worker-only process: %v", err)
	}
	t.Cleanup(func() { _ = stop() })
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(url+"/v1/insurance-results", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("POST /v1/insurance-results: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /v1/insurance-results on a worker-only process = %d, want 404 (no ingress)", resp.StatusCode)
	}
}
