// Package webhook signs and verifies webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com): three headers, webhook-id,
// webhook-timestamp (unix seconds) and webhook-signature, the last being
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)) where
// the key is the base64-decoded part of a "whsec_…" secret. The worker signs
// its notifications with it, topsim's receiver and `starter notify verify`
// check them with it, so the three can never disagree on the format.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret in the form the specification's
// libraries print and read.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock, either way, before Verify calls it stale: the
// specification's libraries use five minutes.
const DefaultTolerance = 5 * time.Minute

// Key lengths the specification allows (24 to 64 random bytes).
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// Secret is a signing key. Its String and GoString never show it, so a
// Secret that reaches a log line or an error by mistake is harmless.
type Secret struct{ key []byte }

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "webhook.Secret{[redacted]}" }

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// SecretError says why a secret cannot be used. It never holds the secret.
type SecretError struct{ Problem string }

func (e *SecretError) Error() string { return "webhook secret " + e.Problem }

// ParseSecret reads a "whsec_" + base64 secret. Surrounding white space (a
// file's trailing newline) is ignored.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Secret{}, &SecretError{Problem: "is empty"}
	}
	if !strings.HasPrefix(s, SecretPrefix) {
		return Secret{}, &SecretError{Problem: "does not start with " + SecretPrefix + " (the form is whsec_ followed by base64 of 24 to 64 random bytes)"}
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return Secret{}, &SecretError{Problem: "is not whsec_ followed by standard base64"}
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return Secret{}, &SecretError{Problem: fmt.Sprintf("decodes to %d bytes; use 24 to 64 random bytes", len(key))}
	}
	return Secret{key: key}, nil
}

// NewSecret makes a Secret from raw key bytes (e.g. 32 from crypto/rand);
// Encode gives its whsec_ form.
func NewSecret(key []byte) (Secret, error) {
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return Secret{}, &SecretError{Problem: fmt.Sprintf("has %d bytes; use 24 to 64", len(key))}
	}
	return Secret{key: append([]byte(nil), key...)}, nil
}

// Encode is the whsec_ form of s: what a receiver is given to configure.
func (s Secret) Encode() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// Sign is the webhook-signature value for id, ts and body: "v1," + base64
// of the HMAC-SHA256 over "id.timestamp.body".
func (s Secret) Sign(id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte("."))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SetHeaders signs body for id at ts and sets the three headers on h.
func (s Secret) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	unix := ts.Unix()
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, s.Sign(id, unix, body))
}

// VerifyError says why a webhook failed verification: Reason is one of the
// Reason constants, Detail what exactly.
type VerifyError struct {
	Reason string
	Detail string
}

// Verification failure reasons.
const (
	ReasonMissingHeader = "missing_header"
	ReasonBadTimestamp  = "bad_timestamp"
	ReasonStale         = "stale_timestamp"
	ReasonBadSignature  = "bad_signature"
)

func (e *VerifyError) Error() string { return e.Reason + ": " + e.Detail }

// Signed is a received webhook as Verify needs it: the three header values
// and the raw body.
type Signed struct {
	ID        string
	Timestamp string
	Signature string // one or more space-separated "v1,…" values
	Body      []byte
}

// FromRequest takes the three headers of r; the body is the caller's to read.
func FromRequest(h http.Header, body []byte) Signed {
	return Signed{ID: h.Get(HeaderID), Timestamp: h.Get(HeaderTimestamp), Signature: h.Get(HeaderSignature), Body: body}
}

// Verify checks a received webhook: all three headers present, the
// timestamp within tolerance of now either way (a replayed or delayed
// webhook is refused), and at least one v1 signature matching, compared in
// constant time. The specification allows several signatures (a sender
// rotating its key signs with both), so each space-separated one is tried.
func (s Secret) Verify(w Signed, now time.Time, tolerance time.Duration) error {
	switch {
	case w.ID == "":
		return &VerifyError{Reason: ReasonMissingHeader, Detail: HeaderID + " is missing"}
	case w.Timestamp == "":
		return &VerifyError{Reason: ReasonMissingHeader, Detail: HeaderTimestamp + " is missing"}
	case w.Signature == "":
		return &VerifyError{Reason: ReasonMissingHeader, Detail: HeaderSignature + " is missing"}
	}
	ts, err := strconv.ParseInt(w.Timestamp, 10, 64)
	if err != nil {
		return &VerifyError{Reason: ReasonBadTimestamp, Detail: fmt.Sprintf("%s %q is not unix seconds", HeaderTimestamp, w.Timestamp)}
	}
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return &VerifyError{Reason: ReasonStale, Detail: fmt.Sprintf("%s %d is %s from now, beyond the tolerance of %s",
			HeaderTimestamp, ts, d.Round(time.Second), tolerance)}
	}
	want := []byte(s.Sign(w.ID, ts, w.Body))
	for _, sig := range strings.Fields(w.Signature) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return &VerifyError{Reason: ReasonBadSignature, Detail: "no " + HeaderSignature + " value matches the body signed with this secret"}
}
