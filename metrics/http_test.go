package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/insuranceflow/insuranceflow/ingress"
)

func TestHandlerServesTheRegistry(t *testing.T) {
	reg := NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.EventAccepted(ingress.APIJSON)
	srv := httptest.NewServer(Handler(reg, nil))
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	code, body := get(Path)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", Path, code)
	}
	for _, want := range []string{
		`insuranceflow_events_accepted_total{api="json"} 1`,
		`insuranceflow_events_accepted_total{api="top"} 0`,
		"# TYPE insuranceflow_callback_duration_seconds histogram",
		"# TYPE insuranceflow_parked_callbacks gauge",
		"go_goroutines ",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", code)
	}
}
