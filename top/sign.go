package top

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strings"
	"time"
)

// TimestampLayout is the layout of the timestamp system parameter (and of the
// API's time_of_occurrence): yyyy-MM-dd HH:mm:ss.
const TimestampLayout = "2006-01-02 15:04:05"

// MaxClockSkew is how far the gateway lets a request's timestamp stray from
// its own clock before rejecting it with CodeInvalidTimestamp.
const MaxClockSkew = 10 * time.Minute

// gmt8 is TOP's clock zone. A fixed offset rather than Asia/Shanghai so the
// result never depends on the host's tzdata (China has had no DST since 1991).
var gmt8 = time.FixedZone("GMT+8", 8*60*60)

// Timestamp formats t as TOP expects: TimestampLayout in GMT+8, whatever
// time.Local is. Two public Go SDKs use host-local time here and are rejected
// by the gateway on any host not set to China time.
func Timestamp(t time.Time) string { return t.In(gmt8).Format(TimestampLayout) }

// ParseTimestamp parses a TimestampLayout string as a GMT+8 time.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.ParseInLocation(TimestampLayout, s, gmt8)
	if err != nil {
		return time.Time{}, fmt.Errorf("top: timestamp %q is not %q in GMT+8: %w", s, TimestampLayout, err)
	}
	return t, nil
}

// SignMethod is the sign_method system parameter.
type SignMethod string

// The sign methods TOP accepts.
const (
	SignMD5        SignMethod = "md5"         // MD5(secret + s + secret)
	SignHMAC       SignMethod = "hmac"        // HMAC-MD5, key = secret
	SignHMACSHA256 SignMethod = "hmac-sha256" // HMAC-SHA256, key = secret
)

// DefaultSignMethod is used when none is configured: the strongest of the three.
const DefaultSignMethod = SignHMACSHA256

// SignMethods returns every supported sign method.
func SignMethods() []SignMethod { return []SignMethod{SignMD5, SignHMAC, SignHMACSHA256} }

// Valid reports whether m is a sign method TOP accepts.
func (m SignMethod) Valid() bool { return slices.Contains(SignMethods(), m) }

// SignMethodError is returned for a sign method TOP does not know.
type SignMethodError struct {
	Value string // the rejected value
}

func (e *SignMethodError) Error() string {
	return fmt.Sprintf("top: unsupported sign method %q (want md5, hmac or hmac-sha256)", e.Value)
}

// ParseSignMethod reads a configured sign method, ignoring case and
// surrounding space; "" means DefaultSignMethod (hmac-sha256).
func ParseSignMethod(s string) (SignMethod, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" {
		return DefaultSignMethod, nil
	}
	if m := SignMethod(v); m.Valid() {
		return m, nil
	}
	return "", &SignMethodError{Value: s}
}

// Sign computes the TOP signature of params with the official SDK algorithm:
// every parameter except "sign" whose (first) value is non-empty, sorted by
// name in byte order, concatenated as name+value, then digested by method and
// written as upper-case hex. The secret is not part of any error.
func Sign(params url.Values, secret Secret, method SignMethod) (string, error) {
	var h hash.Hash
	switch method {
	case SignMD5:
		h = md5.New()
	case SignHMAC:
		h = hmac.New(md5.New, []byte(secret.Reveal()))
	case SignHMACSHA256:
		h = hmac.New(sha256.New, []byte(secret.Reveal()))
	default:
		return "", &SignMethodError{Value: string(method)}
	}
	if method == SignMD5 {
		h.Write([]byte(secret.Reveal()))
	}
	h.Write([]byte(signingString(params)))
	if method == SignMD5 {
		h.Write([]byte(secret.Reveal()))
	}
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil))), nil
}

// signingString is the sorted name+value concatenation that Sign digests.
func signingString(params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		// Empty names and values are skipped because the SDKs skip them:
		// signing them would make our signature differ from the gateway's.
		if name != ParamSign && name != "" && params.Get(name) != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names) // byte order, as Java's TreeMap and PHP's ksort use
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteString(params.Get(name))
	}
	return b.String()
}

// SignatureProblem says what is wrong with a request's signature.
type SignatureProblem int

// The signature problems VerifySignature reports.
const (
	SignatureMissing           SignatureProblem = iota + 1 // no sign parameter
	SignatureMethodMissing                                 // no sign_method parameter
	SignatureMethodUnsupported                             // sign_method not md5, hmac or hmac-sha256
	SignatureMismatch                                      // sign differs from the expected signature
)

func (p SignatureProblem) String() string {
	switch p {
	case SignatureMissing:
		return "missing signature"
	case SignatureMethodMissing:
		return "missing sign_method"
	case SignatureMethodUnsupported:
		return "unsupported sign_method"
	case SignatureMismatch:
		return "signature mismatch"
	default:
		return fmt.Sprintf("signature problem(%d)", int(p))
	}
}

// SignatureError is returned by VerifySignature. It carries the sign method
// as received but never the secret nor the expected signature, which would
// let a caller forge requests.
type SignatureError struct {
	Problem SignatureProblem
	Method  string // the sign_method parameter as received, possibly empty
}

func (e *SignatureError) Error() string {
	if e.Method == "" {
		return "top: " + e.Problem.String()
	}
	return fmt.Sprintf("top: %s (sign_method %q)", e.Problem, e.Method)
}

// Code is the TOP error code a gateway answers this problem with.
func (e *SignatureError) Code() int {
	if e.Problem == SignatureMissing {
		return CodeMissingSignature
	}
	return CodeInvalidSignature
}

// VerifySignature checks params' sign against the signature computed with
// params' own sign_method, as a gateway does. The comparison is constant-time
// so response timing reveals nothing about the expected value; it is exact,
// because every SDK sends upper-case hex.
func VerifySignature(params url.Values, secret Secret) error {
	method := params.Get(ParamSignMethod)
	got := params.Get(ParamSign)
	switch {
	case got == "":
		return &SignatureError{Problem: SignatureMissing, Method: method}
	case method == "":
		return &SignatureError{Problem: SignatureMethodMissing}
	case !SignMethod(method).Valid():
		return &SignatureError{Problem: SignatureMethodUnsupported, Method: method}
	}
	want, err := Sign(params, secret, SignMethod(method))
	if err != nil {
		return &SignatureError{Problem: SignatureMethodUnsupported, Method: method}
	}
	if !hmac.Equal([]byte(got), []byte(want)) {
		return &SignatureError{Problem: SignatureMismatch, Method: method}
	}
	return nil
}
