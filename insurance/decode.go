package insurance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBodyBytes is the largest body Decode reads. The largest acceptable
// result is a few KiB; the HTTP ingress should cap its reads at this too.
const MaxBodyBytes = 64 << 10

// fieldBody names problems with the body as a whole rather than one field.
const fieldBody = "body"

// wantInt starts every message about a malformed number field.
const wantInt = "must be an integer or a string holding a decimal integer"

// Decode reads one insurance result, as a business system sends it: a JSON
// object with the API's snake_case names. It is stricter than json.Unmarshal
// where strictness catches mistakes (unknown or duplicate keys, keys in the
// wrong case, strings where numbers belong and the reverse) and lenient where
// clients commonly differ (a number field may be 1 or "1"; null means absent
// for an optional field).
//
// On any problem it returns the zero Result and a *ValidationError. A body
// that is not one JSON object of valid UTF-8 gets a single problem with field
// "body". Otherwise every problem is listed at once: decoding and Validate
// problems in the API page's field order, then unknown keys in body order
// (at most 24, then a "body" summary of how many more). A Result it returns
// has passed Validate. Decode does not fill RequestID; see WithRequestID.
func Decode(data []byte) (Result, error) {
	var d decoder
	if msg := d.readObject(data); msg != "" {
		var ps problems
		ps.add(fieldBody, msg)
		return Result{}, ps.err()
	}
	var vs problems
	d.r.validate(&vs)
	for _, p := range vs {
		// Validate only sees the zero value of a field that did not decode;
		// "is required" next to "must be a string" would be noise.
		if !slices.Contains(d.undecoded, p.Field) {
			d.ps = append(d.ps, p)
		}
	}
	// The API's fields in page order, then unknown keys (the stable sort
	// keeps those in body order).
	order := fieldOrder()
	rank := func(field string) int {
		if i := slices.Index(order, field); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(d.ps, func(a, b FieldError) int { return rank(a.Field) - rank(b.Field) })
	if len(d.ps) > maxProblems {
		// A body of thousands of unknown keys must not become an error
		// message of the same size.
		more := len(d.ps) - maxProblems
		d.ps = append(d.ps[:maxProblems], FieldError{Field: fieldBody, Message: fmt.Sprintf("has %d more problems, not listed", more)})
	}
	if err := d.ps.err(); err != nil {
		return Result{}, err
	}
	return d.r, nil
}

// maxProblems bounds how many problems Decode lists. A real event has at
// most one per API field, plus a few stray keys.
const maxProblems = 24

type decoder struct {
	r         Result
	ps        problems
	seen      map[string]int // how often each key has been met, to report duplicates once
	undecoded []string       // API fields whose value could not be taken
}

// readObject checks the body as a whole, then walks its top-level object key
// by key, so that it can see duplicate and unknown keys and judge each value
// on its own. It returns a message when the body is unusable; field problems
// go to d.ps.
func (d *decoder) readObject(data []byte) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "is empty (want a JSON object)"
	}
	if len(data) > MaxBodyBytes {
		return fmt.Sprintf("is %d bytes, more than the %d allowed", len(data), MaxBodyBytes)
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, and TOP
	// would then store a value nobody sent.
	if !utf8.Valid(data) {
		return "is not valid UTF-8"
	}
	// One pass over the whole value first: only a decoder's first Decode
	// reports syntax errors at offsets from the start of the body.
	dec := json.NewDecoder(bytes.NewReader(data))
	var whole json.RawMessage
	if err := dec.Decode(&whole); err != nil {
		return syntaxMessage(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "has data after the JSON object"
	}
	if whole[0] != '{' {
		return "must be a JSON object, got " + rawKind(whole)
	}

	// whole is valid JSON now, so the walk below cannot meet a syntax error.
	obj := json.NewDecoder(bytes.NewReader(whole))
	if _, err := obj.Token(); err != nil {
		return syntaxMessage(err)
	}
	for obj.More() {
		tok, err := obj.Token()
		if err != nil {
			return syntaxMessage(err)
		}
		key, _ := tok.(string) // in key position Token yields only strings
		var raw json.RawMessage
		if err := obj.Decode(&raw); err != nil {
			return syntaxMessage(err)
		}
		d.field(key, raw)
	}
	return ""
}

// syntaxMessage describes a JSON syntax error by position only: the
// decoder's own text quotes the offending character, which could be part of
// a person's name.
func syntaxMessage(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("is not valid JSON: syntax error at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "is not valid JSON: unexpected end of input"
	default:
		return "is not valid JSON"
	}
}

func (d *decoder) field(key string, raw json.RawMessage) {
	if d.seen == nil {
		d.seen = make(map[string]int)
	}
	d.seen[key]++
	if n := d.seen[key]; n > 1 {
		// Report a repeated API field once; an unknown key already was.
		if n == 2 && slices.Contains(fieldOrder(), key) {
			d.problem(key, "appears more than once")
		}
		return
	}
	switch key {
	case fieldBizID:
		d.str(key, raw, &d.r.BizID, true)
	case fieldPolicyNumber:
		d.str(key, raw, &d.r.PolicyNumber, false)
	case fieldInsuranceCompany:
		d.num(key, raw, (*int)(&d.r.InsuranceCompany), false)
	case fieldStage:
		d.num(key, raw, (*int)(&d.r.Stage), true)
	case fieldStatus:
		d.num(key, raw, (*int)(&d.r.Status), true)
	case fieldTimeOfOccurrence:
		d.str(key, raw, &d.r.TimeOfOccurrence, true)
	case fieldBankAccountManagerName:
		d.str(key, raw, &d.r.BankAccountManagerName, false)
	case fieldInsuranceDocument:
		d.str(key, raw, &d.r.InsuranceDocument, false)
	case fieldInsuranceType:
		d.num(key, raw, (*int)(&d.r.InsuranceType), true)
	case fieldAppKey:
		d.str(key, raw, &d.r.AppKey, false)
	case fieldRequestID:
		d.str(key, raw, &d.r.RequestID, false)
	default:
		d.ps.add(keyForMessage(key), unknownFieldMessage(key))
	}
}

func (d *decoder) problem(field, msg string) {
	d.ps.add(field, msg)
	d.undecoded = append(d.undecoded, field)
}

// str takes a string field. Only the kind of a wrong value is named, never
// the value: one of these fields is a person's name.
func (d *decoder) str(field string, raw json.RawMessage, dst *string, required bool) {
	switch {
	case isNull(raw):
		if required {
			d.problem(field, "is required, got null")
		}
	case raw[0] != '"':
		d.problem(field, "must be a string, got "+rawKind(raw))
	case hasLoneSurrogate(raw):
		// encoding/json would silently turn it into U+FFFD, and TOP would
		// then store a value nobody sent (as with raw invalid UTF-8).
		d.problem(field, "must be valid UTF-16 text: an escaped surrogate (\\uD800-\\uDFFF) is not paired")
	default:
		if err := json.Unmarshal(raw, dst); err != nil {
			d.problem(field, "must be a string, got a malformed string")
		}
	}
}

// hasLoneSurrogate reports whether a raw JSON string holds a \uD800-\uDFFF
// escape that is not a high surrogate immediately followed by a low one.
func hasLoneSurrogate(raw json.RawMessage) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		r, ok := hexEscape(raw, i)
		if !ok {
			continue // json.Unmarshal reports the malformed escape
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low surrogate with no high one before it
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := hexEscape(raw, i+6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11 // past both escapes
		default:
			i += 5
		}
	}
	return false
}

// hexEscape decodes the \uXXXX escape starting at raw[i].
func hexEscape(raw json.RawMessage, i int) (rune, bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range raw[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (d *decoder) num(field string, raw json.RawMessage, dst *int, required bool) {
	if isNull(raw) {
		if required {
			d.problem(field, "is required, got null")
		}
		return
	}
	n, msg := parseJSONInt(raw)
	if msg != "" {
		d.problem(field, msg)
		return
	}
	if required && n == 0 {
		// Validate would call a zero "missing"; here it was sent.
		d.problem(field, enumMessage(field, n))
		return
	}
	*dst = n
}

// unmarshalEnum is the enums' UnmarshalJSON: the same number rules as
// Decode, so a Result read back from a Temporal payload or a database
// accepts what Decode accepts.
func unmarshalEnum(raw []byte, field string, dst *int) error {
	if isNull(raw) {
		return nil
	}
	n, msg := parseJSONInt(raw)
	if msg != "" {
		var ps problems
		ps.add(field, msg)
		return ps.err()
	}
	*dst = n
	return nil
}

// parseJSONInt reads a JSON integer (2) or a JSON string holding a decimal
// integer ("2"), and otherwise says what it got. Enum values are not
// personal, so a wrong one is echoed (truncated).
func parseJSONInt(raw []byte) (int, string) {
	if len(raw) == 0 {
		return 0, wantInt + ", got nothing"
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, wantInt + ", got a malformed string"
		}
		if !isDecimal(s) {
			return 0, wantInt + ", got string " + quoteTrunc(s)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, wantInt + ", got string " + quoteTrunc(s) + " (out of range)"
		}
		return n, ""
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		lit := string(raw)
		if strings.ContainsAny(lit, ".eE") {
			return 0, wantInt + ", got number " + truncate(lit)
		}
		n, err := strconv.Atoi(lit)
		if err != nil {
			return 0, wantInt + ", got number " + truncate(lit) + " (out of range)"
		}
		return n, ""
	default:
		return 0, wantInt + ", got " + rawKind(raw)
	}
}

// isDecimal accepts an optional minus sign and at least one ASCII digit:
// no spaces, no plus sign, no fractions, nothing strconv would also take.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// rawKind names the JSON kind of a raw value.
func rawKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// truncate cuts an ASCII literal to maxEcho bytes.
func truncate(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "..."
}

// keyForMessage makes an unknown key safe to report as a field name:
// control characters escaped, length bounded.
func keyForMessage(key string) string {
	q := quoteTrunc(key)
	if strings.HasSuffix(q, "...") {
		return q[1:len(q)-4] + "..."
	}
	return q[1 : len(q)-1]
}

// unknownFieldMessage says "unknown field", with a hint when the key is an
// API field in another spelling (the Java SDK's bizId, BIZ_ID) or the
// parameter name wrapped around the object.
func unknownFieldMessage(key string) string {
	if key == "insurance_result_a_p_i_request" {
		return "unknown field (send the result's fields at the top level, not wrapped in the API parameter)"
	}
	norm := normalizeKey(key)
	for _, f := range fieldOrder() {
		if normalizeKey(f) == norm {
			return fmt.Sprintf("unknown field (did you mean %q?)", f)
		}
	}
	return "unknown field"
}

// normalizeKey folds case and drops '_' and '-', so that "bizId", "BIZ_ID"
// and "biz-id" all meet "biz_id".
func normalizeKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, k)
}
