package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/webhook"
)

func TestIDIsStablePerNotification(t *testing.T) {
	if got := ID("B1", 3, TypeParked, 2); got != "ntf_B1_3_callback.parked_2" {
		t.Fatalf("ID = %s", got)
	}
	if ID("B1", 3, TypeParked, 2) == ID("B1", 3, TypeParked, 4) {
		t.Fatal("a callback parked again after more attempts got the same webhook-id")
	}
}

func TestSenderSignsWhatItSends(t *testing.T) {
	secret, _ := webhook.NewSecret([]byte(strings.Repeat("s", 32)))
	at := time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)
	var got webhook.Signed
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = webhook.FromRequest(r.Header, body)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	s := &Sender{URL: srv.URL, Secret: secret, Now: func() time.Time { return at }}
	n := Notification{ID: ID("B1", 1, TypeDelivered, 1), Type: TypeDelivered, BizID: "B1", Seq: 1, RequestID: "r-1",
		Stage: "pre_insure", Status: "success", Callback: "delivered", Attempts: 1, OccurredAt: at}
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got.ID != n.ID || got.Timestamp != "1796389200" {
		t.Fatalf("headers = %+v", got)
	}
	if err := secret.Verify(got, at, webhook.DefaultTolerance); err != nil {
		t.Fatalf("the receiver cannot verify what was sent: %v", err)
	}
	want, _ := n.Body()
	if string(got.Body) != string(want) || !strings.Contains(string(got.Body), `"type":"callback.delivered"`) {
		t.Fatalf("body = %s, want %s", got.Body, want)
	}

	status = http.StatusServiceUnavailable
	var se *StatusError
	if err := s.Send(context.Background(), n); !errors.As(err, &se) || se.Status != 503 {
		t.Fatalf("Send to a 503 = %v, want a *StatusError 503", err)
	}
}

func TestSenderErrorsHideTheURLsCredentials(t *testing.T) {
	secret, _ := webhook.NewSecret([]byte(strings.Repeat("s", 32)))
	s := &Sender{URL: "http://user:hunter2@127.0.0.1:1/hooks/tok-s3cr3t?key=k3y", Secret: secret, Client: &http.Client{Timeout: time.Second}}
	err := s.Send(context.Background(), Notification{ID: "x", Type: TypeDelivered})
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
		t.Fatalf("Send = %v, want an error naming the receiver's host", err)
	}
	for _, secret := range []string{"hunter2", "tok-s3cr3t", "k3y"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("Send = %v, shows %s from the URL", err, secret)
		}
	}
}
