package insurance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestEnumsUnmarshalNumbersAndNumericStrings(t *testing.T) {
	tests := []struct {
		name string
		json string
		want Result
	}{
		{"numbers", `{"stage":2,"status":2,"insurance_type":2,"insurance_company":1}`,
			Result{Stage: StageUnderwrite, Status: StatusFailure, InsuranceType: TypePerformanceBond, InsuranceCompany: CompanyCPIC}},
		{"numeric strings", `{"stage":"2","status":"2","insurance_type":"2","insurance_company":"1"}`,
			Result{Stage: StageUnderwrite, Status: StatusFailure, InsuranceType: TypePerformanceBond, InsuranceCompany: CompanyCPIC}},
		{"null leaves zero", `{"stage":null,"status":null,"insurance_type":null,"insurance_company":null}`, Result{}},
		{"out of range is left to Validate", `{"stage":9}`, Result{Stage: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Result
			if err := json.Unmarshal([]byte(tt.json), &got); err != nil {
				t.Fatalf("json.Unmarshal() error = %v", err)
			}
			if got != tt.want {
				t.Fatalf("json.Unmarshal() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnumsUnmarshalRejects(t *testing.T) {
	const wantInt = "must be an integer or a string holding a decimal integer, got "
	tests := []struct {
		name string
		json string
		want FieldError
	}{
		{"stage float", `{"stage":1.5}`, FieldError{"stage", wantInt + "number 1.5"}},
		{"status boolean", `{"status":true}`, FieldError{"status", wantInt + "boolean"}},
		{"insurance_type word", `{"insurance_type":"home"}`, FieldError{"insurance_type", wantInt + `string "home"`}},
		{"insurance_company object", `{"insurance_company":{}}`, FieldError{"insurance_company", wantInt + "object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Result
			err := json.Unmarshal([]byte(tt.json), &r)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("json.Unmarshal() error = %v (%T), want a *ValidationError", err, err)
			}
			if len(ve.Problems) != 1 || ve.Problems[0] != tt.want {
				t.Fatalf("problems = %q, want [%q]", ve.Problems, tt.want)
			}
		})
	}
}

func TestEnumsMarshalAsNumbers(t *testing.T) {
	// TOP receives numbers; a MarshalText or MarshalJSON that wrote names
	// would break every callback, so pin the encoding.
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"stage", StageEndorse, `5`},
		{"status", StatusFailure, `2`},
		{"insurance_type", TypePerformanceBond, `2`},
		{"insurance_company", CompanyCPIC, `1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("json.Marshal() error = %v", err)
			}
			if string(b) != tt.want {
				t.Fatalf("json.Marshal() = %s, want %s", b, tt.want)
			}
		})
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	// The path a Result takes through Temporal payloads and the store.
	in := validResult()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("json.Marshal() error = %v", err)
	}
	var out Result
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("json.Unmarshal() error = %v", err)
	}
	if out != in {
		t.Fatalf("round trip = %v, want %v", out, in)
	}
}

func TestAPIJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		want string
	}{
		{"full", validResult(), apiExample},
		{"empty optional fields left out",
			Result{BizID: "B1", Stage: StageInsure, Status: StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: TypeHomeProperty},
			`{"biz_id":"B1","stage":3,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`},
		{"derived request id included",
			Result{BizID: "B1", Stage: StageInsure, Status: StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: TypeHomeProperty}.WithRequestID(),
			`{"biz_id":"B1","stage":3,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"request_id":"r-79ff3e1ceb1c70a6533ec2c15294bf8e"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.APIJSON()
			if err != nil {
				t.Fatalf("APIJSON() error = %v", err)
			}
			if got != tt.want {
				t.Fatalf("APIJSON() =\n %s\nwant\n %s", got, tt.want)
			}
		})
	}
}

func TestPersonalDataStaysOutOfLogsAndStrings(t *testing.T) {
	r := validResult()
	var jsonOut, textOut bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonOut, nil)).Info("event accepted", "result", r)
	slog.New(slog.NewTextHandler(&textOut, nil)).Info("event accepted", "result", r)
	outputs := map[string]string{
		"slog JSON": jsonOut.String(),
		"slog text": textOut.String(),
		"%v":        fmt.Sprintf("%v", r),
		"%+v":       fmt.Sprintf("%+v", r),
		"%s":        fmt.Sprintf("%s", r),
		"wrapped":   fmt.Errorf("send %v: %w", r, errors.New("boom")).Error(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, managerName) {
				t.Fatalf("output contains the account manager's name: %s", out)
			}
			// Not empty by accident: the output still identifies the event.
			if !strings.Contains(out, r.BizID) || !strings.Contains(out, "pre_insure") {
				t.Fatalf("output %q lacks biz_id %q or stage", out, r.BizID)
			}
		})
	}
	t.Run("slog JSON fields", func(t *testing.T) {
		var line struct {
			Result map[string]string `json:"result"`
		}
		if err := json.Unmarshal(jsonOut.Bytes(), &line); err != nil {
			t.Fatalf("slog JSON output %q: %v", jsonOut.String(), err)
		}
		want := map[string]string{
			"biz_id": "24010900100YSKSSG", "stage": "pre_insure", "status": "success",
			"time_of_occurrence": "2025-04-08 09:55:00", "insurance_type": "home_property", "request_id": "xxxxx",
		}
		if fmt.Sprint(line.Result) != fmt.Sprint(want) {
			t.Fatalf("logged result = %v, want %v", line.Result, want)
		}
	})
	t.Run("String marks the name as redacted", func(t *testing.T) {
		want := `insurance.Result{biz_id="24010900100YSKSSG" stage=pre_insure status=success ` +
			`time_of_occurrence="2025-04-08 09:55:00" insurance_type=home_property insurance_company=cpic ` +
			`policy_number="12345678A" bank_account_manager_name=[redacted] request_id="xxxxx"}`
		if got := r.String(); got != want {
			t.Fatalf("String() =\n %s\nwant\n %s", got, want)
		}
	})
}

func TestParseEnums(t *testing.T) {
	tests := []struct {
		name string
		got  func() (fmt.Stringer, error)
		want string
	}{
		{"stage by name", func() (fmt.Stringer, error) { return ParseStage("underwrite") }, "underwrite"},
		{"stage by number", func() (fmt.Stringer, error) { return ParseStage("5") }, "endorse"},
		{"status by name", func() (fmt.Stringer, error) { return ParseStatus("failure") }, "failure"},
		{"type by number", func() (fmt.Stringer, error) { return ParseType("2") }, "performance_bond"},
		{"company by name", func() (fmt.Stringer, error) { return ParseCompany("cpic") }, "cpic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "0", "6", "pre-insure", "Underwrite"} {
		t.Run("stage rejects "+bad, func(t *testing.T) {
			_, err := ParseStage(bad)
			want := fmt.Sprintf("unknown stage %q (want one of pre_insure, underwrite, insure, cancel, endorse or 1-5)", bad)
			if err == nil || err.Error() != want {
				t.Fatalf("ParseStage(%q) error = %v, want %s", bad, err, want)
			}
		})
	}
}

func TestEnumStrings(t *testing.T) {
	var got []string
	for _, s := range Stages() {
		got = append(got, s.String())
	}
	got = append(got, Stage(9).String(), Status(0).String(), Type(3).String(), Company(2).String())
	want := "[pre_insure underwrite insure cancel endorse stage(9) status(0) insurance_type(3) insurance_company(2)]"
	if fmt.Sprint(got) != want {
		t.Fatalf("names = %v, want %s", got, want)
	}
}
