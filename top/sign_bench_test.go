package top_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/top"
)

// benchResult is a complete result as a business system would report it.
func benchResult() insurance.Result {
	return insurance.Result{
		BizID:                  "24010900100YSKSSG",
		PolicyNumber:           "12345678A",
		InsuranceCompany:       insurance.CompanyCPIC,
		Stage:                  insurance.StageInsure,
		Status:                 insurance.StatusSuccess,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: "张三",
		InsuranceDocument:      "oss:aakkloi122",
		InsuranceType:          insurance.TypeHomeProperty,
		RequestID:              "r-0123456789abcdef0123456789abcdef",
	}
}

// BenchmarkSign signs a callback's form (its eight system and API
// parameters) with each method.
func BenchmarkSign(b *testing.B) {
	payload, err := benchResult().APIJSON()
	if err != nil {
		b.Fatal(err)
	}
	form := url.Values{
		top.ParamMethod:     {top.APIMethod},
		top.ParamAppKey:     {"12345678"},
		top.ParamTimestamp:  {"2025-04-08 09:55:00"},
		top.ParamFormat:     {top.FormatJSON},
		top.ParamVersion:    {top.Version},
		top.ParamRequest:    {payload},
		top.ParamSignMethod: {""},
	}
	for _, m := range top.SignMethods() {
		b.Run(string(m), func(b *testing.B) {
			form.Set(top.ParamSignMethod, string(m))
			b.ReportAllocs()
			var sig string
			for b.Loop() {
				sig, err = top.Sign(form, "benchmark-secret", m)
			}
			if err != nil || sig == "" {
				b.Fatalf("Sign(%s) = %q, %v; want a signature", m, sig, err)
			}
		})
	}
}

// BenchmarkClientForm builds the whole signed form of one callback:
// validation, the API JSON and the signature.
func BenchmarkClientForm(b *testing.B) {
	r := benchResult()
	now := time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC)
	for _, m := range top.SignMethods() {
		b.Run(string(m), func(b *testing.B) {
			c, err := top.New(top.Config{GatewayURL: "http://127.0.0.1:1/router/rest", AppKey: "12345678", AppSecret: "benchmark-secret", SignMethod: m})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var form url.Values
			for b.Loop() {
				form, err = c.Form(r, now)
			}
			if err != nil || form.Get(top.ParamSign) == "" {
				b.Fatalf("Form = %v, %v; want a signed form", form, err)
			}
		})
	}
}
