package top

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Class is what a caller should do after a callback attempt. Every Outcome has
// exactly one.
type Class int

// The outcome classes.
const (
	// ClassDelivered: TOP accepted the result (call_success=true). Done.
	ClassDelivered Class = iota + 1
	// ClassRejected: TOP answered call_success=false with a fail_code; the
	// business side refused this result, and sending it again will not help.
	ClassRejected
	// ClassRetryable: a platform fault or a transport failure; the same
	// request may succeed later.
	ClassRetryable
	// ClassRateLimited: the app is banned for Outcome.RetryAfter; retry after it.
	ClassRateLimited
	// ClassPermanent: the request itself is wrong (signature, app key,
	// session, arguments…); retrying it unchanged cannot succeed.
	ClassPermanent
)

var classNames = [...]string{"", "delivered", "rejected", "retryable", "rate_limited", "permanent"}

// Classes returns every class in declaration order.
func Classes() []Class {
	return []Class{ClassDelivered, ClassRejected, ClassRetryable, ClassRateLimited, ClassPermanent}
}

// Valid reports whether c is one of the declared classes.
func (c Class) Valid() bool { return c >= ClassDelivered && c <= ClassPermanent }

// String returns "delivered", "rejected", "retryable", "rate_limited" or "permanent".
func (c Class) String() string {
	if !c.Valid() {
		return fmt.Sprintf("class(%d)", int(c))
	}
	return classNames[c]
}

// ClassError is returned when a class name is not one of Class's names.
type ClassError struct {
	Value string
}

func (e *ClassError) Error() string {
	return fmt.Sprintf("top: unknown outcome class %q (want delivered, rejected, retryable, rate_limited or permanent)", e.Value)
}

// ParseClass reads a class from its String form.
func ParseClass(s string) (Class, error) {
	for _, c := range Classes() {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, &ClassError{Value: s}
}

// MarshalText writes the class name, so stored and recorded outcomes (JSON in
// workflow histories and the SQL store) read "retryable", not 3.
func (c Class) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, &ClassError{Value: c.String()}
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a class name written by MarshalText.
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Outcome is the classified result of one callback attempt. It holds what TOP
// said (codes, messages, TOP's request_id) and, for transport or parse
// problems, a Detail; it never holds a secret or the account manager's name.
type Outcome struct {
	Class       Class         `json:"class"`
	HTTPStatus  int           `json:"http_status,omitempty"` // 0 when no response arrived
	Code        int           `json:"code,omitempty"`        // error_response code
	Msg         string        `json:"msg,omitempty"`
	SubCode     string        `json:"sub_code,omitempty"`
	SubMsg      string        `json:"sub_msg,omitempty"`
	FailCode    string        `json:"fail_code,omitempty"` // business failure (call_success=false)
	FailMessage string        `json:"fail_message,omitempty"`
	RequestID   string        `json:"request_id,omitempty"`  // TOP's request_id, for support tickets
	RetryAfter  time.Duration `json:"retry_after,omitempty"` // ClassRateLimited: the ban to wait out
	Detail      string        `json:"detail,omitempty"`      // transport or parse problem
	Duration    time.Duration `json:"duration,omitempty"`    // time the attempt took
}

// Summary is one readable line, e.g. "delivered",
// "rejected: POLICY_NOT_FOUND: no such policy",
// "retryable: code 15 isp.remote-service-error: service down" or
// "rate_limited: code 7 accesscontrol.limited-by-app-access-count: This ban
// will last for 17 more seconds (retry after 17s)".
func (o Outcome) Summary() string {
	var b strings.Builder
	b.WriteString(o.Class.String())
	add := func(sep, s string) {
		if s != "" {
			b.WriteString(sep)
			b.WriteString(s)
		}
	}
	switch {
	case o.Class == ClassDelivered:
	case o.FailCode != "" || o.FailMessage != "":
		add(": ", o.FailCode)
		add(": ", o.FailMessage)
	case o.Code != 0 || o.SubCode != "":
		fmt.Fprintf(&b, ": code %d", o.Code)
		add(" ", o.SubCode)
		if o.SubMsg != "" {
			add(": ", o.SubMsg)
		} else {
			add(": ", o.Msg)
		}
	case o.HTTPStatus != 0 && o.HTTPStatus != http.StatusOK:
		fmt.Fprintf(&b, ": HTTP %d", o.HTTPStatus)
	}
	add(": ", o.Detail)
	if o.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", o.RetryAfter)
	}
	return b.String()
}

// LogValue lets an Outcome be logged as a group of its set fields.
func (o Outcome) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("class", o.Class.String())}
	addInt := func(k string, v int) {
		if v != 0 {
			attrs = append(attrs, slog.Int(k, v))
		}
	}
	addStr := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	addDur := func(k string, v time.Duration) {
		if v != 0 {
			attrs = append(attrs, slog.Duration(k, v))
		}
	}
	addInt("http_status", o.HTTPStatus)
	addInt("code", o.Code)
	addStr("msg", o.Msg)
	addStr("sub_code", o.SubCode)
	addStr("sub_msg", o.SubMsg)
	addStr("fail_code", o.FailCode)
	addStr("fail_message", o.FailMessage)
	addStr("top_request_id", o.RequestID)
	addDur("retry_after", o.RetryAfter)
	addStr("detail", o.Detail)
	addDur("duration", o.Duration)
	return slog.GroupValue(attrs...)
}

// Ban durations for code 7 (and HTTP 429).
const (
	// DefaultBan is waited when a ban does not say how long it lasts.
	DefaultBan = 30 * time.Second
	// maxBan caps a stated ban so an absurd number cannot stall a policy for years.
	maxBan = 24 * time.Hour
)

// banSeconds finds the ban length in sub_msg texts such as "This ban will
// last for 17 more seconds".
var banSeconds = regexp.MustCompile(`(?i)(\d+)\s*(?:more\s+)?(?:seconds?|secs?|秒)`)

// ParseBan returns the ban stated in msg, or DefaultBan when msg states none.
// A stated ban is at least one second (so a retry never spins) and at most a day.
func ParseBan(msg string) time.Duration {
	ban, _ := findBan(msg)
	return ban
}

// findBan is ParseBan that also reports whether msg stated a ban.
func findBan(msg string) (time.Duration, bool) {
	m := banSeconds.FindStringSubmatch(msg)
	if m == nil {
		return DefaultBan, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > int64(maxBan/time.Second) {
		// Too many digits for int64 is still a (very long) stated ban.
		return maxBan, true
	}
	return max(time.Duration(n)*time.Second, time.Second), true
}

// permanentCodes are the top-level codes that mean this request can never
// succeed as sent: method, permission, format, signature, session, app key,
// timestamp, version and argument errors.
func permanentCode(code int) bool {
	switch {
	case code == CodeHTTPActionNotAllowed,
		code >= CodeInsufficientISVPermissions && code <= CodeInsufficientPartnerPermissions,
		code >= CodeMissingMethod && code <= CodeUnsupportedVersion,
		code >= CodeMissingArguments && code <= CodeParameterError:
		return true
	}
	return false
}

// ParseResponse classifies a gateway's answer. It is pure, so the rules can be
// tested and fuzzed without a network; transport errors, which have no
// status or body, are classified by the Client. The rules, in order:
//
//  1. A body holding an error_response is classified by it, whatever the HTTP
//     status, since it is the gateway's own word: code 7 → rate_limited (ban
//     from sub_msg, DefaultBan when absent); then the sub_code prefix, as the
//     platform advises: isp.* → retryable, isv.* → permanent; then the code:
//     9, 11–13, 21–34, 40–43 → permanent; 10, 15, 50 and codes this package
//     does not know → retryable.
//  2. Any other non-200 status is a transport failure: 429 → rate_limited;
//     408, 425 and 5xx → retryable; 3xx and other 4xx → permanent, because a
//     redirect or a refusal of the request itself (wrong gateway URL, request
//     too large, forbidden) repeats until someone changes the configuration;
//     anything else → retryable.
//  3. A 200 with an empty or unparsable body, or without this API's response
//     object → retryable: the gateway or a proxy misbehaved, and the next
//     attempt may get a proper answer.
//  4. The response object: call_success=true → delivered; false → rejected.
//
// simplify says which success shape to expect first (the bare object or the
// {"<root>":{...}} envelope); the other shape is accepted too, so a gateway
// that ignores the simplify parameter is still understood.
func ParseResponse(httpStatus int, body []byte, simplify bool) Outcome {
	o := Outcome{HTTPStatus: httpStatus}
	obj, objErr := decodeObject(body)
	if objErr == nil {
		if raw, ok := obj[errorRoot]; ok {
			return classifyError(o, raw)
		}
	}
	if httpStatus != http.StatusOK {
		return classifyStatus(o, body)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		o.Class, o.Detail = ClassRetryable, "empty response body"
		return o
	}
	if objErr != nil {
		o.Class = ClassRetryable
		o.Detail = fmt.Sprintf("unparsable response body (%s): %s", objErr, snippet(body))
		return o
	}

	root := ResponseRoot(APIMethod)
	nested, hasNested := obj[root]
	_, hasFlat := obj["call_success"]
	var fields map[string]json.RawMessage
	switch {
	case hasFlat && (simplify || !hasNested):
		fields = obj
	case hasNested:
		var err error
		if fields, err = decodeObject(nested); err != nil {
			o.Class = ClassRetryable
			o.Detail = fmt.Sprintf("unparsable %s (%s): %s", root, err, snippet(nested))
			return o
		}
	default:
		o.Class = ClassRetryable
		o.Detail = fmt.Sprintf("response has neither %s nor error_response: %s", root, snippet(body))
		return o
	}

	o.FailCode = jsonText(fields["fail_code"])
	o.FailMessage = jsonText(fields["fail_message"])
	o.RequestID = jsonText(fields["request_id"])
	success, ok := jsonBool(fields["call_success"])
	switch {
	case !ok:
		o.Class = ClassRetryable
		o.Detail = fmt.Sprintf("call_success missing or not a boolean: %s", snippet(fields["call_success"]))
	case success:
		o.Class = ClassDelivered
	default:
		o.Class = ClassRejected
	}
	return o
}

// classifyError applies rule 1 of ParseResponse.
func classifyError(o Outcome, raw json.RawMessage) Outcome {
	fields, err := decodeObject(raw)
	if err != nil {
		o.Class = ClassRetryable
		o.Detail = fmt.Sprintf("unparsable error_response (%s): %s", err, snippet(raw))
		return o
	}
	code, codeOK := jsonInt(fields["code"])
	o.Code = code
	o.Msg = jsonText(fields["msg"])
	o.SubCode = jsonText(fields["sub_code"])
	o.SubMsg = jsonText(fields["sub_msg"])
	o.RequestID = jsonText(fields["request_id"])
	sub := strings.ToLower(o.SubCode)
	switch {
	case codeOK && code == CodeAppCallLimited:
		// A ban, whatever its sub_code says: the wait is what matters.
		o.Class = ClassRateLimited
		// The length is documented in sub_msg; msg is a fallback for
		// gateways that put it there.
		ban, found := findBan(o.SubMsg)
		if !found {
			ban = ParseBan(o.Msg)
		}
		o.RetryAfter = ban
	case strings.HasPrefix(sub, "isp."):
		o.Class = ClassRetryable
	case strings.HasPrefix(sub, "isv."):
		o.Class = ClassPermanent
	case !codeOK:
		o.Class = ClassRetryable
		o.Detail = fmt.Sprintf("error_response without a numeric code: %s", snippet(fields["code"]))
	case permanentCode(code):
		o.Class = ClassPermanent
	default:
		o.Class = ClassRetryable
	}
	return o
}

// classifyStatus applies rule 2 of ParseResponse.
func classifyStatus(o Outcome, body []byte) Outcome {
	s := o.HTTPStatus
	switch {
	case s == http.StatusTooManyRequests:
		o.Class, o.RetryAfter = ClassRateLimited, DefaultBan
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s >= 500 && s <= 599:
		o.Class = ClassRetryable
	case s >= 300 && s <= 499:
		o.Class = ClassPermanent
	default:
		o.Class = ClassRetryable
	}
	o.Detail = "unexpected HTTP status"
	if text := http.StatusText(s); text != "" {
		o.Detail += " " + text
	}
	if len(bytes.TrimSpace(body)) > 0 {
		o.Detail += ": " + snippet(body)
	}
	return o
}

// decodeObject decodes a JSON object into its raw members.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil { // the literal null
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// jsonText returns a member as text: a string unquoted, null or absent as "",
// anything else as its compact JSON, so an unexpected type is still shown.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
}

// jsonInt reads a JSON number, or a string holding one, as an int.
func jsonInt(raw json.RawMessage) (int, bool) {
	text := strings.TrimSpace(jsonText(raw))
	if text == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(text); err == nil {
		return n, true
	}
	// "7.0" or "7e0" is still code 7; fractions and huge values are not codes.
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// jsonBool reads a JSON boolean, or a string "true"/"false".
func jsonBool(raw json.RawMessage) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(jsonText(raw))) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// snippetLen bounds how much of an odd body goes into Detail: enough to
// recognise a proxy's error page, not enough to copy a whole document.
const snippetLen = 120

// snippet quotes the start of b for a Detail.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(empty)"
	}
	if len(b) <= snippetLen {
		return strconv.Quote(strings.ToValidUTF8(string(b), "\uFFFD"))
	}
	cut := snippetLen
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return strconv.Quote(strings.ToValidUTF8(string(b[:cut]), "\uFFFD")) + "…"
}
