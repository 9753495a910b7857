package insurance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// requestIDDomain separates these digests from any other SHA-256 use and
// versions the derivation: changing it would make re-sent events look new,
// so it must never change for running policies.
const requestIDDomain = "insuranceflow/request_id/v1"

// DeriveRequestID is the request id of an event that came without one: "r-"
// and 32 hex digits of SHA-256 over the four values that identify an event.
// The same event re-sent gets the same id, so the workflow can recognise it;
// events differing in any of the four get different ids. Each value is
// length-prefixed, so no two different inputs encode the same bytes.
// The result satisfies the request_id rules Validate applies.
func DeriveRequestID(bizID string, stage Stage, status Status, timeOfOccurrence string) string {
	h := sha256.New()
	for _, part := range []string{
		requestIDDomain, bizID, strconv.Itoa(int(stage)), strconv.Itoa(int(status)), timeOfOccurrence,
	} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return "r-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// WithRequestID returns r with RequestID set by DeriveRequestID when it is
// empty; a request id the caller gave is kept.
func (r Result) WithRequestID() Result {
	if r.RequestID == "" {
		r.RequestID = DeriveRequestID(r.BizID, r.Stage, r.Status, r.TimeOfOccurrence)
	}
	return r
}
