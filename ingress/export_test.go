package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/auth"
	"github.com/insuranceflow/insuranceflow/store"
)

// TestEvents pages through a real store's events with GET /v1/events: every
// event once, in order, over pages joined by the keyset token, filters
// applied, bad parameters named, and the route needs the read scope.
func TestEvents(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "export.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	at := time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC)
	var want []string
	for i := range 5 {
		biz := fmt.Sprintf("E%d", i)
		for seq := int64(1); seq <= 2; seq++ {
			e := store.Event{Seq: seq, RequestID: fmt.Sprintf("r-%s-%d", biz, seq), Stage: int(seq), Status: 1,
				TimeOfOccurrence: "2025-04-08 09:55:00", Payload: `{"bank_account_manager_name":"王小丫"}`,
				AcceptedAt: at.Add(time.Duration(seq) * time.Minute), StateAfter: []string{"", "pre_insured", "underwritten"}[seq]}
			if err := st.RecordEvents(ctx, store.Policy{BizID: biz, InsuranceType: 1}, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	for seq := 1; seq <= 2; seq++ {
		for i := range 5 {
			want = append(want, fmt.Sprintf("E%d/%d", i, seq))
		}
	}
	srv, err := New(Config{Policies: &fakePolicies{}, Events: st, Tokens: []string{token},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	s := &testServer{url: ts.URL}

	var got []string
	path, pages := "/v1/events?page_size=3", 0
	for {
		r := s.do(t, "GET", path, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
		}
		if strings.Contains(r.raw, "王小丫") {
			t.Fatalf("the export carries personal data: %s", r.raw)
		}
		pages++
		for _, e := range r.body["events"].([]any) {
			m := e.(map[string]any)
			got = append(got, fmt.Sprintf("%s/%v", m["biz_id"], m["seq"]))
		}
		next, _ := r.body["next_page_token"].(string)
		if next == "" {
			break
		}
		path = "/v1/events?page_size=3&page_token=" + next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 4 {
		t.Fatalf("%d pages of %v, want 4 pages of %v", pages, got, want)
	}

	r := s.do(t, "GET", "/v1/events?since="+at.Add(2*time.Minute).Format(time.RFC3339)+"&callback=queued", "", nil)
	var page struct {
		Events []struct {
			Seq   int64  `json:"seq"`
			Stage string `json:"stage"`
		} `json:"events"`
		Next string `json:"next_page_token"`
	}
	if err := json.Unmarshal([]byte(r.raw), &page); err != nil || len(page.Events) != 5 || page.Events[0].Stage != "underwrite" || page.Next != "" {
		t.Fatalf("since: %s (%v), want the 5 underwrites and no token", r.raw, err)
	}
	r = s.do(t, "GET", "/v1/events?callback=sent&page_size=0&page_token=x&since=later", "", nil)
	e := wantError(t, r, http.StatusBadRequest, "invalid_request")
	var fields []string
	for _, f := range e["fields"].([]any) {
		fields = append(fields, f.(map[string]any)["field"].(string))
	}
	if fmt.Sprint(fields) != "[callback page_size page_token since]" {
		t.Fatalf("fields=%v, want every bad parameter named", fields)
	}

	t.Run("needs the read scope", func(t *testing.T) {
		clients, err := auth.ParseClients(strings.NewReader("claims-system:report:"+reporterToken+"\ndashboard:read:"+readerToken+"\n"), "clients")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Policies: &fakePolicies{}, Events: st, Clients: clients, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		s := &testServer{url: ts.URL}
		wantError(t, s.do(t, "GET", "/v1/events", "", map[string]string{"Authorization": "Bearer " + reporterToken}), http.StatusForbidden, "forbidden")
		if r := s.do(t, "GET", "/v1/events", "", map[string]string{"Authorization": "Bearer " + readerToken}); r.status != http.StatusOK {
			t.Fatalf("reader: status=%d %s, want 200", r.status, r.raw)
		}
	})
}
