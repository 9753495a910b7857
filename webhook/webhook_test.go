package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks libraries' published test vector (the same in the
// Go, JavaScript, Python and PHP libraries' tests).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vector(t *testing.T) Secret {
	t.Helper()
	s, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatalf("ParseSecret(vector): %v", err)
	}
	return s
}

func TestSignMatchesSpecVector(t *testing.T) {
	if got := vector(t).Sign(vectorID, vectorTS, []byte(vectorBody)); got != vectorSig {
		t.Fatalf("Sign = %s, want %s", got, vectorSig)
	}
}

func TestVerifySpecVector(t *testing.T) {
	s := vector(t)
	at := time.Unix(vectorTS, 0)
	ok := Signed{ID: vectorID, Timestamp: fmt.Sprint(vectorTS), Signature: vectorSig, Body: []byte(vectorBody)}
	if err := s.Verify(ok, at.Add(time.Minute), DefaultTolerance); err != nil {
		t.Fatalf("Verify(vector) = %v, want nil", err)
	}
	// Several signatures, as during a key rotation: any one matching will do.
	multi := ok
	multi.Signature = "v1,bm9wZQ== " + vectorSig
	if err := s.Verify(multi, at, DefaultTolerance); err != nil {
		t.Fatalf("Verify(two signatures) = %v, want nil", err)
	}

	for _, tc := range []struct {
		name   string
		edit   func(*Signed)
		now    time.Time
		reason string
		detail string
	}{
		{"body changed", func(w *Signed) { w.Body = []byte(`{"test": 2432232315}`) }, at, ReasonBadSignature, "no webhook-signature value matches"},
		{"id changed", func(w *Signed) { w.ID = "msg_other" }, at, ReasonBadSignature, "no webhook-signature value matches"},
		{"timestamp changed", func(w *Signed) { w.Timestamp = fmt.Sprint(vectorTS + 1) }, at, ReasonBadSignature, "no webhook-signature value matches"},
		{"v2 scheme only", func(w *Signed) { w.Signature = strings.Replace(vectorSig, "v1,", "v2,", 1) }, at, ReasonBadSignature, "no webhook-signature value matches"},
		{"stale", func(*Signed) {}, at.Add(6 * time.Minute), ReasonStale, "is 6m0s from now, beyond the tolerance of 5m0s"},
		{"from the future", func(*Signed) {}, at.Add(-6 * time.Minute), ReasonStale, "is -6m0s from now"},
		{"no id", func(w *Signed) { w.ID = "" }, at, ReasonMissingHeader, "webhook-id is missing"},
		{"no timestamp", func(w *Signed) { w.Timestamp = "" }, at, ReasonMissingHeader, "webhook-timestamp is missing"},
		{"no signature", func(w *Signed) { w.Signature = "" }, at, ReasonMissingHeader, "webhook-signature is missing"},
		{"timestamp not a number", func(w *Signed) { w.Timestamp = "yesterday" }, at, ReasonBadTimestamp, `"yesterday" is not unix seconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := ok
			tc.edit(&w)
			err := s.Verify(w, tc.now, DefaultTolerance)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if ve.Reason != tc.reason || !strings.Contains(ve.Detail, tc.detail) {
				t.Fatalf("Verify = %q/%q, want reason %q with %q", ve.Reason, ve.Detail, tc.reason, tc.detail)
			}
		})
	}
}

func TestSetHeadersRoundTrip(t *testing.T) {
	s := vector(t)
	h := http.Header{}
	at := time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"callback.delivered"}`)
	s.SetHeaders(h, "ntf_x_1_delivered", at, body)
	if got := h.Get(HeaderTimestamp); got != fmt.Sprint(at.Unix()) {
		t.Fatalf("webhook-timestamp = %s, want %d", got, at.Unix())
	}
	if err := s.Verify(FromRequest(h, body), at, DefaultTolerance); err != nil {
		t.Fatalf("Verify(own headers) = %v", err)
	}
	other, _ := NewSecret([]byte(strings.Repeat("k", 32)))
	if err := other.Verify(FromRequest(h, body), at, DefaultTolerance); err == nil {
		t.Fatal("another secret verified the signature")
	}
}

func TestParseSecretErrorsNeverShowTheSecret(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "is empty"},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start with whsec_"},
		{"whsec_not base64!!", "is not whsec_ followed by standard base64"},
		{"whsec_c2hvcnQ=", "decodes to 5 bytes; use 24 to 64 random bytes"},
	} {
		_, err := ParseSecret(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("ParseSecret(%q) = %v, want %q", tc.in, err, tc.want)
		}
		if tc.in != "" && strings.Contains(err.Error(), strings.TrimPrefix(tc.in, "whsec_")) {
			t.Fatalf("ParseSecret error %q shows the secret", err)
		}
	}
	s := vector(t)
	if got := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(got, "MfKQ") || !strings.Contains(got, "redacted") {
		t.Fatalf("formatting a Secret gave %q", got)
	}
	if s.Encode() != vectorSecret {
		t.Fatalf("Encode = %s, want %s", s.Encode(), vectorSecret)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(vectorSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, warn, err := ReadSecret("NOTIFY_SECRET", "", "NOTIFY_SECRET_FILE", file)
	if err != nil || warn != nil || s.Sign(vectorID, vectorTS, []byte(vectorBody)) != vectorSig {
		t.Fatalf("ReadSecret(file) = %v, %v; want the vector's secret", warn, err)
	}
	for _, tc := range []struct {
		name, value, path, want string
	}{
		{"both", vectorSecret, file, "NOTIFY_SECRET: set it or NOTIFY_SECRET_FILE, not both"},
		{"neither", "", "", "NOTIFY_SECRET: no webhook secret given"},
		{"bad value", "hunter2", "", "NOTIFY_SECRET: webhook secret does not start with whsec_"},
		{"bad file content", "", bad, "NOTIFY_SECRET_FILE: webhook secret does not start with whsec_"},
		{"missing file", "", filepath.Join(dir, "nope"), "NOTIFY_SECRET_FILE: open "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadSecret("NOTIFY_SECRET", tc.value, "NOTIFY_SECRET_FILE", tc.path)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("ReadSecret = %v, want prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
}
