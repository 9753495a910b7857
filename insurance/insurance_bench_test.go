package insurance_test

import (
	"testing"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// benchBody is a full event as the ingress receives it.
var benchBody = []byte(`{"biz_id":"24010900100YSKSSG","policy_number":"12345678A","insurance_company":1,` +
	`"stage":3,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","bank_account_manager_name":"张三",` +
	`"insurance_document":"oss:aakkloi122","insurance_type":1,"request_id":"r-0123456789abcdef0123456789abcdef"}`)

// BenchmarkDecode decodes (and so checks types and unknown fields of) one
// ingress body.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	var r insurance.Result
	var err error
	for b.Loop() {
		r, err = insurance.Decode(benchBody)
	}
	if err != nil || r.BizID != "24010900100YSKSSG" || r.Stage != insurance.StageInsure {
		b.Fatalf("Decode = %+v, %v", r, err)
	}
}

// BenchmarkValidate validates one decoded event.
func BenchmarkValidate(b *testing.B) {
	r, err := insurance.Decode(benchBody)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		err = r.Validate()
	}
	if err != nil {
		b.Fatalf("Validate: %v", err)
	}
}

// BenchmarkDeriveRequestID derives the id of an event sent without one.
func BenchmarkDeriveRequestID(b *testing.B) {
	b.ReportAllocs()
	var id string
	for b.Loop() {
		id = insurance.DeriveRequestID("24010900100YSKSSG", insurance.StageInsure, insurance.StatusSuccess, "2025-04-08 09:55:00")
	}
	if len(id) != len("r-")+32 {
		b.Fatalf("DeriveRequestID = %q, want r- and 32 hex digits", id)
	}
}
