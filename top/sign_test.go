package top

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// vectorParams are the parameters of the test vector published in the TOP
// signing documentation, with the given sign_method.
func vectorParams(method SignMethod) url.Values {
	return url.Values{
		"app_key":     {"12345678"},
		"fields":      {"num_iid,title,nick,price,num"},
		"format":      {"json"},
		"method":      {"taobao.item.seller.get"},
		"num_iid":     {"11223344"},
		"session":     {"test"},
		"sign_method": {string(method)},
		"timestamp":   {"2016-01-01 12:00:00"},
		"v":           {"2.0"},
	}
}

const vectorSecret Secret = "helloworld"

func TestSignPublishedMD5Vector(t *testing.T) {
	got, err := Sign(vectorParams(SignMD5), vectorSecret, SignMD5)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if want := "66987CB115214E59E6EC978214934FB8"; got != want {
		t.Fatalf("md5 sign=%s, want %s", got, want)
	}
}

func TestSignHMACAgainstIndependentDigest(t *testing.T) {
	// The sorted name+value concatenation, written out by hand.
	concat := func(method string) string {
		return "app_key12345678" + "fieldsnum_iid,title,nick,price,num" + "formatjson" +
			"methodtaobao.item.seller.get" + "num_iid11223344" + "sessiontest" +
			"sign_method" + method + "timestamp2016-01-01 12:00:00" + "v2.0"
	}
	tests := []struct {
		method SignMethod
		want   func() string
	}{
		{SignHMAC, func() string {
			m := hmac.New(md5.New, []byte("helloworld"))
			m.Write([]byte(concat("hmac")))
			return strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
		}},
		{SignHMACSHA256, func() string {
			m := hmac.New(sha256.New, []byte("helloworld"))
			m.Write([]byte(concat("hmac-sha256")))
			return strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
		}},
		{SignMD5, func() string {
			sum := md5.Sum([]byte("helloworld" + concat("md5") + "helloworld"))
			return strings.ToUpper(hex.EncodeToString(sum[:]))
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.method), func(t *testing.T) {
			got, err := Sign(vectorParams(tt.method), vectorSecret, tt.method)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if want := tt.want(); got != want {
				t.Fatalf("sign=%s, want %s", got, want)
			}
		})
	}
}

func TestSignParameterSelection(t *testing.T) {
	base := vectorParams(SignHMACSHA256)
	want, err := Sign(base, vectorSecret, SignHMACSHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	tests := []struct {
		name   string
		change func(url.Values)
		same   bool
	}{
		{"sign itself is not signed", func(v url.Values) { v.Set("sign", "ABCDEF") }, true},
		{"empty value is left out", func(v url.Values) { v.Set("partner_id", "") }, true},
		{"empty name is left out", func(v url.Values) { v.Set("", "x") }, true},
		{"only the first value counts", func(v url.Values) { v.Add("app_key", "99999999") }, true},
		{"a new non-empty param is signed", func(v url.Values) { v.Set("simplify", "true") }, false},
		{"a changed value changes the sign", func(v url.Values) { v.Set("num_iid", "11223345") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := url.Values{}
			for k, vs := range base {
				p[k] = append([]string(nil), vs...)
			}
			tt.change(p)
			got, err := Sign(p, vectorSecret, SignHMACSHA256)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if (got == want) != tt.same {
				t.Fatalf("sign=%s, base sign=%s, want same=%v", got, want, tt.same)
			}
		})
	}
}

func TestSignUnknownMethod(t *testing.T) {
	_, err := Sign(vectorParams("sha1"), vectorSecret, "sha1")
	var sme *SignMethodError
	if !errors.As(err, &sme) || sme.Value != "sha1" {
		t.Fatalf("err=%v, want *SignMethodError for sha1", err)
	}
	if strings.Contains(err.Error(), "helloworld") {
		t.Fatalf("error %q contains the secret", err)
	}
}

func TestVerifySignature(t *testing.T) {
	for _, m := range SignMethods() {
		t.Run(string(m), func(t *testing.T) {
			p := vectorParams(m)
			sign, err := Sign(p, vectorSecret, m)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			p.Set(ParamSign, sign)
			if err := VerifySignature(p, vectorSecret); err != nil {
				t.Fatalf("VerifySignature of a correct signature: %v", err)
			}

			// One byte of the signature changed (a hex digit to another digit).
			bad := []byte(sign)
			bad[5] = "01"[boolIndex(bad[5] == '0')]
			p.Set(ParamSign, string(bad))
			assertSignatureError(t, VerifySignature(p, vectorSecret), SignatureMismatch, sign)

			// One byte of a signed parameter changed.
			p.Set(ParamSign, sign)
			p.Set("num_iid", "11223345")
			assertSignatureError(t, VerifySignature(p, vectorSecret), SignatureMismatch, sign)

			// The wrong secret.
			p.Set("num_iid", "11223344")
			assertSignatureError(t, VerifySignature(p, "helloworle"), SignatureMismatch, sign)

			// Lower-case hex is not what the SDKs send.
			p.Set(ParamSign, strings.ToLower(sign))
			assertSignatureError(t, VerifySignature(p, vectorSecret), SignatureMismatch, sign)
		})
	}
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestVerifySignatureProblems(t *testing.T) {
	tests := []struct {
		name   string
		change func(url.Values)
		want   SignatureProblem
		code   int
	}{
		{"missing sign", func(v url.Values) { v.Del(ParamSign) }, SignatureMissing, CodeMissingSignature},
		{"empty sign", func(v url.Values) { v.Set(ParamSign, "") }, SignatureMissing, CodeMissingSignature},
		{"missing sign_method", func(v url.Values) { v.Del(ParamSignMethod) }, SignatureMethodMissing, CodeInvalidSignature},
		{"unsupported sign_method", func(v url.Values) { v.Set(ParamSignMethod, "sha1") }, SignatureMethodUnsupported, CodeInvalidSignature},
		{"upper-case sign_method", func(v url.Values) { v.Set(ParamSignMethod, "MD5") }, SignatureMethodUnsupported, CodeInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := vectorParams(SignMD5)
			p.Set(ParamSign, "66987CB115214E59E6EC978214934FB8")
			tt.change(p)
			err := VerifySignature(p, vectorSecret)
			se := assertSignatureError(t, err, tt.want, "66987CB115214E59E6EC978214934FB8")
			if se.Code() != tt.code {
				t.Fatalf("Code()=%d, want %d", se.Code(), tt.code)
			}
		})
	}
}

// assertSignatureError checks err is a *SignatureError with the problem want
// whose message reveals neither the secret nor the expected signature.
func assertSignatureError(t *testing.T, err error, want SignatureProblem, expected string) *SignatureError {
	t.Helper()
	var se *SignatureError
	if !errors.As(err, &se) {
		t.Fatalf("err=%v (%T), want *SignatureError", err, err)
	}
	if se.Problem != want {
		t.Fatalf("problem=%v, want %v", se.Problem, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, want.String()) {
		t.Fatalf("message %q does not name the problem %q", msg, want)
	}
	if strings.Contains(msg, string(vectorSecret)) || strings.Contains(msg, expected) {
		t.Fatalf("message %q reveals the secret or the expected signature", msg)
	}
	return se
}

func TestParseSignMethod(t *testing.T) {
	tests := []struct {
		in      string
		want    SignMethod
		wantErr bool
	}{
		{"", SignHMACSHA256, false},
		{"md5", SignMD5, false},
		{"hmac", SignHMAC, false},
		{"hmac-sha256", SignHMACSHA256, false},
		{" HMAC-SHA256 ", SignHMACSHA256, false},
		{"sha256", "", true},
		{"hmac_sha256", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSignMethod(tt.in)
			if tt.wantErr {
				var sme *SignMethodError
				if !errors.As(err, &sme) || sme.Value != tt.in {
					t.Fatalf("err=%v, want *SignMethodError{%q}", err, tt.in)
				}
				if !strings.Contains(err.Error(), "hmac-sha256") {
					t.Fatalf("message %q does not list the valid methods", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSignMethod(%q)=%q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTimestampIsGMT8WhateverTheLocalZone(t *testing.T) {
	instant := time.Date(2025, 4, 8, 1, 55, 0, 0, time.UTC) // 09:55 in GMT+8
	zones := []*time.Location{
		time.UTC,
		time.FixedZone("PDT", -7*60*60),
		time.FixedZone("NPT", 5*60*60+45*60),
		time.FixedZone("CST", 8*60*60),
	}
	saved := time.Local
	t.Cleanup(func() { time.Local = saved })
	for _, zone := range zones {
		t.Run(zone.String(), func(t *testing.T) {
			time.Local = zone
			for _, in := range []time.Time{instant, instant.In(zone), instant.Local()} {
				if got, want := Timestamp(in), "2025-04-08 09:55:00"; got != want {
					t.Fatalf("Timestamp(%v)=%s, want %s", in, got, want)
				}
			}
			parsed, err := ParseTimestamp("2025-04-08 09:55:00")
			if err != nil {
				t.Fatalf("ParseTimestamp: %v", err)
			}
			if !parsed.Equal(instant) {
				t.Fatalf("ParseTimestamp=%v, want %v", parsed, instant)
			}
		})
	}
}

func TestParseTimestampRejects(t *testing.T) {
	for _, in := range []string{"", "2025-04-08T09:55:00", "2025-04-08 09:55", "2025-13-08 09:55:00", "1744077300"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseTimestamp(in)
			if err == nil {
				t.Fatalf("ParseTimestamp(%q) succeeded, want an error", in)
			}
			if !strings.Contains(err.Error(), TimestampLayout) || !strings.Contains(err.Error(), "GMT+8") {
				t.Fatalf("message %q does not say the expected layout and zone", err)
			}
		})
	}
}
