package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedIngress answers POST /v1/insurance-results from a script, one
// entry per request; "drop" closes the connection without an answer.
func scriptedIngress(t *testing.T, script ...string) (*ingressClient, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/v1/insurance-results" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		i := int(n.Add(1)) - 1
		if i >= len(script) {
			i = len(script) - 1
		}
		switch script[i] {
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close()
		case "503":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"try later"}}`))
		case "202":
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"biz_id":"B","request_id":"r-1","seq":1,"state":"pre_insured","duplicate":false}`))
		case "200":
			_, _ = w.Write([]byte(`{"biz_id":"B","request_id":"r-1","seq":1,"state":"pre_insured","duplicate":true}`))
		case "409":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"illegal_transition","message":"no"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	return newIngressClient(srv.URL, "tok"), &n
}

// recordingSender is a sender whose waits are recorded, not slept.
func recordingSender(report reportFunc, giveUp time.Duration) (*sender, *[]time.Duration) {
	s := newSender(report, giveUp)
	var waits []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	return s, &waits
}

func TestSendRetriesUntilAnswered(t *testing.T) {
	t.Run("accepted after a 503 and a dropped connection: the retry answers duplicate", func(t *testing.T) {
		c, n := scriptedIngress(t, "503", "drop", "200")
		s, waits := recordingSender(c.report, time.Minute)
		o := s.send(context.Background(), []byte(`{}`), false)
		if o.HTTPStatus != 200 || o.Tries != 3 || n.Load() != 3 {
			t.Fatalf("outcome status %d after %d tries (%d requests), want 200 after 3", o.HTTPStatus, o.Tries, n.Load())
		}
		if o.Failures["503"] != 1 || o.Failures["connection"] != 1 {
			t.Errorf("failures = %v, want one 503 and one connection error", o.Failures)
		}
		if !o.LostAnswer {
			t.Errorf("LostAnswer = false; a first send answered duplicate on a retry lost its answer")
		}
		if len(*waits) != 2 || (*waits)[0] != 3*time.Second {
			t.Errorf("waits = %v, want the 503's Retry-After (3s) first, then a backoff", *waits)
		}
		if judge(expectation{HTTPStatus: 202, Seq: 1, RequestID: "r-1", State: "pre_insured"}, o) != "" {
			t.Errorf("judge: a lost answer recovered as a duplicate must agree with a predicted 202")
		}
	})
	t.Run("an intended re-send answered duplicate lost nothing", func(t *testing.T) {
		c, _ := scriptedIngress(t, "drop", "200")
		s, _ := recordingSender(c.report, time.Minute)
		o := s.send(context.Background(), []byte(`{}`), true)
		if o.HTTPStatus != 200 || o.LostAnswer {
			t.Fatalf("outcome %d LostAnswer=%v, want 200 and false", o.HTTPStatus, o.LostAnswer)
		}
	})
	t.Run("a 409 is a decision, not retried", func(t *testing.T) {
		c, n := scriptedIngress(t, "409", "202")
		s, _ := recordingSender(c.report, time.Minute)
		o := s.send(context.Background(), []byte(`{}`), false)
		if o.HTTPStatus != 409 || n.Load() != 1 || o.Answer.Error == nil || o.Answer.Error.Code != "illegal_transition" {
			t.Fatalf("outcome %d after %d requests (%+v), want one 409 illegal_transition", o.HTTPStatus, n.Load(), o.Answer.Error)
		}
	})
	t.Run("never answered: reported unresolved after the give-up time", func(t *testing.T) {
		c, _ := scriptedIngress(t, "503")
		s, _ := recordingSender(c.report, time.Minute)
		clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		s.now = func() time.Time { clock = clock.Add(10 * time.Second); return clock }
		o := s.send(context.Background(), []byte(`{}`), false)
		if !o.Unresolved || o.HTTPStatus != 0 || o.Tries < 5 {
			t.Fatalf("outcome unresolved=%v status=%d tries=%d, want unresolved after several tries", o.Unresolved, o.HTTPStatus, o.Tries)
		}
		if o.LastError == "" {
			t.Errorf("LastError is empty; an unresolved event must say why")
		}
	})
}

func TestBackoffGrowsToItsCap(t *testing.T) {
	c, _ := scriptedIngress(t, "drop", "drop", "drop", "drop", "drop", "drop", "202")
	s, waits := recordingSender(c.report, time.Minute)
	o := s.send(context.Background(), []byte(`{}`), false)
	if o.HTTPStatus != 202 || len(*waits) != 6 {
		t.Fatalf("outcome %d after %d waits, want 202 after 6", o.HTTPStatus, len(*waits))
	}
	for i, w := range *waits {
		if w < s.minWait || w > s.maxWait*3/2 {
			t.Errorf("wait %d = %s, want between %s and %s", i, w, s.minWait, s.maxWait*3/2)
		}
	}
	if (*waits)[5] < (*waits)[0] {
		t.Errorf("waits %v do not grow", *waits)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"0", 0}, {"soon", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := retryAfter(tc.in); got != tc.want {
				t.Fatalf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	accepted := expectation{HTTPStatus: 202, Seq: 2, RequestID: "r-2", State: "underwritten"}
	ok := outcome{HTTPStatus: 202, Answer: answer{Seq: 2, RequestID: "r-2", State: "underwritten"}}
	wrongSeq := ok
	wrongSeq.Answer.Seq = 3
	dupFlag := ok
	dupFlag.Answer.Duplicate = true
	rejected := outcome{HTTPStatus: 409, Answer: answer{Error: &struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{Code: "illegal_transition"}}}
	for _, tc := range []struct {
		name  string
		want  expectation
		o     outcome
		agree bool
	}{
		{"accepted as predicted", accepted, ok, true},
		{"another seq", accepted, wrongSeq, false},
		{"a first send flagged duplicate", accepted, dupFlag, false},
		{"rejected where accepted was predicted", accepted, rejected, false},
		{"rejected as predicted", expectation{HTTPStatus: 409, Code: "illegal_transition"}, rejected, true},
		{"rejected for another reason", expectation{HTTPStatus: 409, Code: "time_went_backwards"}, rejected, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := judge(tc.want, tc.o)
			if (msg == "") != tc.agree {
				t.Fatalf("judge = %q, want agreement %v", msg, tc.agree)
			}
		})
	}
}
