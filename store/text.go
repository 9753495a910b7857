package store

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Every backend must accept and refuse exactly the same records. SQLite
// stores any bytes and any 64-bit integer, while PostgreSQL's TEXT refuses
// NUL bytes and invalid UTF-8 and its INTEGER holds 32 bits. So the store
// refuses such values itself, before any database sees them, with an error
// that names the field (and not the value, which may be personal data).

// field is one value to check, named as errors name it.
type field struct {
	name  string
	value string
}

// checkTexts returns an *InvalidError for the first field that no backend
// could store as TEXT.
func checkTexts(fields ...field) error {
	for _, f := range fields {
		switch {
		case strings.IndexByte(f.value, 0) >= 0:
			return &InvalidError{Field: f.name, Problem: "contains a NUL byte"}
		case !utf8.ValidString(f.value):
			return &InvalidError{Field: f.name, Problem: "is not valid UTF-8"}
		}
	}
	return nil
}

// intField is one value stored in an INTEGER column.
type intField struct {
	name  string
	value int
}

// checkInts returns an *InvalidError for the first value outside INTEGER's
// 32 bits.
func checkInts(fields ...intField) error {
	for _, f := range fields {
		if f.value < math.MinInt32 || f.value > math.MaxInt32 {
			return &InvalidError{Field: f.name, Problem: fmt.Sprintf("%d does not fit in 32 bits", f.value)}
		}
	}
	return nil
}

// cleanText makes diagnostic text storable. TOP's messages and the client's
// details come from outside and are kept only to be read, so a stray byte in
// them is replaced by U+FFFD rather than costing the record of an attempt.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
