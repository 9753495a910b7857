package insurance

import (
	"fmt"
	"time"
)

// TimeLayout is the API's time format, yyyy-MM-dd HH:mm:ss, as a Go layout.
const TimeLayout = "2006-01-02 15:04:05"

// Location is the zone every API time is written in: a fixed GMT+8, because
// TOP reads times as Beijing time whatever the host's zone is, and a fixed
// zone needs no tzdata on the host.
func Location() *time.Location {
	return time.FixedZone("GMT+8", 8*60*60)
}

// OccurredAt is time_of_occurrence read as GMT+8. A malformed or impossible
// time is a *ValidationError naming time_of_occurrence.
func (r Result) OccurredAt() (time.Time, error) {
	t, msg := parseTimeOfOccurrence(r.TimeOfOccurrence)
	if msg != "" {
		var ps problems
		ps.add(fieldTimeOfOccurrence, msg)
		return time.Time{}, ps.err()
	}
	return t, nil
}

// parseTimeOfOccurrence returns the time, or the message saying why v is not
// one. The shape is checked by hand first because time.Parse is lenient
// where TOP may not be: it takes one-digit hours ("9:55:00") and fractional
// seconds ("09:55:00.5") that the layout doesn't spell.
func parseTimeOfOccurrence(v string) (time.Time, string) {
	if v == "" {
		return time.Time{}, "is required"
	}
	if !hasTimeShape(v) {
		return time.Time{}, fmt.Sprintf("must be yyyy-MM-dd HH:mm:ss in GMT+8, got %s", quoteTrunc(v))
	}
	t, err := time.ParseInLocation(TimeLayout, v, Location())
	if err != nil {
		// v is 19 ASCII bytes here, safe to echo whole.
		return time.Time{}, fmt.Sprintf("%q is not a real calendar time", v)
	}
	return t, ""
}

func hasTimeShape(v string) bool {
	const shape = "dddd-dd-dd dd:dd:dd"
	if len(v) != len(shape) {
		return false
	}
	for i := range len(shape) {
		c := v[i]
		if shape[i] == 'd' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != shape[i] {
			return false
		}
	}
	return true
}
