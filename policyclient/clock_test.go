package policyclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// TestReportRefusesAFarFutureTime: an event dated a year ahead would wedge
// its policy (every later real event would be time_went_backwards), so it
// is refused before Temporal is asked, naming the field. The client here
// uses its default clock and skew.
func TestReportRefusesAFarFutureTime(t *testing.T) {
	f := &frontend{}
	c, snaps := newClient(t, f, nil)
	future := event(insurance.StagePreInsure, insurance.StatusSuccess)
	future.TimeOfOccurrence = time.Now().In(insurance.Location()).AddDate(1, 0, 0).Format(insurance.TimeLayout)
	_, err := c.Report(context.Background(), future)
	var verr *insurance.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err=%v, want *insurance.ValidationError", err)
	}
	if len(verr.Problems) != 1 || verr.Problems[0].Field != "time_of_occurrence" ||
		!strings.Contains(verr.Problems[0].Message, "ahead of the server's clock") {
		t.Fatalf("problems=%+v, want one for time_of_occurrence saying it is ahead of the clock", verr.Problems)
	}
	if f.calls() != 0 || snaps.loadCount() != 0 {
		t.Fatalf("temporal calls=%d snapshot loads=%d, want 0 and 0", f.calls(), snaps.loadCount())
	}
	if k := Kind(err); k != KindInvalid {
		t.Fatalf("kind=%v, want invalid", k)
	}
}

// TestReportFutureSkewBoundary checks the bound against an injected clock:
// up to MaxFutureSkew ahead is accepted (clocks differ), a second more is
// not, and the message gives the bound and the server's time.
func TestReportFutureSkewBoundary(t *testing.T) {
	now := time.Date(2025, 4, 8, 1, 55, 0, 0, time.UTC) // 09:55:00 GMT+8
	tests := []struct {
		name   string
		skew   time.Duration
		occurs string
		ok     bool
	}{
		{"in the past", 0, "2025-04-08 09:00:00", true},
		{"now", 0, "2025-04-08 09:55:00", true},
		{"exactly the default 10m ahead", 0, "2025-04-08 10:05:00", true},
		{"one second past the default", 0, "2025-04-08 10:05:01", false},
		{"within a wider bound", time.Hour, "2025-04-08 10:54:59", true},
		{"past a narrower bound", time.Minute, "2025-04-08 09:56:01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &frontend{update: acceptUpdates(t)}
			c, _ := newClient(t, f, nil)
			c.Now = func() time.Time { return now }
			c.MaxFutureSkew = tt.skew
			r := event(insurance.StagePreInsure, insurance.StatusSuccess)
			r.TimeOfOccurrence = tt.occurs
			_, err := c.Report(context.Background(), r)
			if tt.ok {
				if err != nil {
					t.Fatalf("err=%v, want accepted", err)
				}
				return
			}
			var verr *insurance.ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Field != "time_of_occurrence" {
				t.Fatalf("err=%v, want a validation error for time_of_occurrence", err)
			}
			msg := verr.Problems[0].Message
			if !strings.Contains(msg, "2025-04-08 09:55:00") || !strings.Contains(msg, "GMT+8") {
				t.Fatalf("message %q does not give the server's GMT+8 time", msg)
			}
		})
	}
}
