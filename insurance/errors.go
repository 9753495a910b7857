package insurance

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one problem with one field of an insurance result. Field is
// the API's JSON name ("biz_id"), or "body" for a problem with the body as a
// whole (not JSON, not an object, trailing data). Message never contains
// personal data.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is returned by Decode, Validate, OccurredAt and the enums'
// UnmarshalJSON when input is not an acceptable insurance result. It lists
// every problem found, not just the first, so a business system can fix its
// event in one round trip.
type ValidationError struct {
	Problems []FieldError `json:"problems"`
}

// Error reads like
// "invalid insurance result: biz_id: is required; stage: 9 is not a stage (...)".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid insurance result: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// problems collects FieldErrors; err returns nil when there are none, so a
// nil *ValidationError never hides inside a non-nil error.
type problems []FieldError

func (ps *problems) add(field, message string) {
	*ps = append(*ps, FieldError{Field: field, Message: message})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// maxEcho bounds how much of a caller's value a message repeats: enough to
// recognise it, not enough to flood a log line.
const maxEcho = 32

// quoteTrunc quotes s for a message, escaping control characters and invalid
// UTF-8 (so a message can't forge log lines) and cutting it to maxEcho bytes.
func quoteTrunc(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
