package insurance

import (
	"fmt"
	"time"
)

// CheckNotAhead refuses an event whose time_of_occurrence is more than
// maxSkew ahead of now, with a *ValidationError naming time_of_occurrence.
// A policy's times never go backwards, so one event dated far ahead would
// make every later real event of its policy illegal: it has to be refused
// before a workflow accepts it. The check needs a clock, so it runs in the
// clients that send events (never in workflow code, which must replay the
// same way at any time). An unparseable time is Validate's to report; it
// passes here.
func (r Result) CheckNotAhead(now time.Time, maxSkew time.Duration) error {
	t, msg := parseTimeOfOccurrence(r.TimeOfOccurrence)
	if msg != "" || !t.After(now.Add(maxSkew)) {
		return nil
	}
	var ps problems
	// Both times are formatted here, never echoed raw: r's is 19 ASCII
	// bytes once it parsed.
	ps.add(fieldTimeOfOccurrence, fmt.Sprintf("%s is more than %s ahead of the server's clock (%s GMT+8)",
		t.Format(TimeLayout), maxSkew, now.In(Location()).Format(TimeLayout)))
	return ps.err()
}
