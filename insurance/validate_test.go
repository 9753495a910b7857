package insurance

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// managerName is the personal value every test plants and then looks for in
// error text and log output.
const managerName = "王小丫"

// validResult is the API page's example, a result that passes Validate.
func validResult() Result {
	return Result{
		BizID:                  "24010900100YSKSSG",
		PolicyNumber:           "12345678A",
		InsuranceCompany:       CompanyCPIC,
		Stage:                  StagePreInsure,
		Status:                 StatusSuccess,
		TimeOfOccurrence:       "2025-04-08 09:55:00",
		BankAccountManagerName: managerName,
		InsuranceDocument:      "oss:aakkloi122",
		InsuranceType:          TypeHomeProperty,
		AppKey:                 "xxxxx",
		RequestID:              "xxxxx",
	}
}

// problemsOf unwraps a *ValidationError, failing the test for any other error.
func problemsOf(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

func assertProblems(t *testing.T, err error, want []FieldError) {
	t.Helper()
	got := problemsOf(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems:\n got  %q\n want %q", got, want)
	}
	if err != nil && strings.Contains(err.Error(), managerName) {
		t.Fatalf("error %q contains the account manager's name", err)
	}
}

func TestValidateAcceptsValidResults(t *testing.T) {
	minimal := Result{BizID: "B-1_x", Stage: StageEndorse, Status: StatusFailure,
		TimeOfOccurrence: "2024-02-29 23:59:59", InsuranceType: TypePerformanceBond}
	tests := []struct {
		name string
		r    Result
	}{
		{"api page example", validResult()},
		{"required fields only", minimal},
		{"limits reached exactly", func() Result {
			r := validResult()
			r.BizID = strings.Repeat("a", 64)
			r.PolicyNumber = strings.Repeat("保", 64)
			r.InsuranceDocument = strings.Repeat("d", 256)
			r.BankAccountManagerName = strings.Repeat("王", 64)
			r.AppKey = strings.Repeat("k", 64)
			r.RequestID = strings.Repeat("r", 64)
			return r
		}()},
		{"request id punctuation", func() Result { r := minimal; r.RequestID = "req-1_2.3:4"; return r }()},
		{"every stage", func() Result { r := minimal; r.Stage = StageCancel; return r }()},
		{"name with spaces and non-BMP", func() Result { r := minimal; r.BankAccountManagerName = "Wang Xiao 𠀀"; return r }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		modify func(*Result)
		want   FieldError
	}{
		{"biz_id missing", func(r *Result) { r.BizID = "" }, FieldError{"biz_id", "is required"}},
		{"biz_id too long", func(r *Result) { r.BizID = long(65) }, FieldError{"biz_id", "must be at most 64 characters, got 65"}},
		{"biz_id with space", func(r *Result) { r.BizID = "2401 09" },
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got "2401 09"`}},
		{"biz_id with slash", func(r *Result) { r.BizID = "a/b" },
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got "a/b"`}},
		{"biz_id with newline is escaped", func(r *Result) { r.BizID = "a\nb" },
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got "a\nb"`}},
		{"biz_id echo truncated", func(r *Result) { r.BizID = "." + long(40) },
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got ".` + long(31) + `"...`}},
		{"biz_id echo cut at a character boundary", func(r *Result) { r.BizID = strings.Repeat("保", 20) },
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got "` + strings.Repeat("保", 10) + `"...`}},
		{"stage missing", func(r *Result) { r.Stage = 0 }, FieldError{"stage", "is required"}},
		{"stage out of range", func(r *Result) { r.Stage = 9 },
			FieldError{"stage", "9 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)"}},
		{"stage negative", func(r *Result) { r.Stage = -1 },
			FieldError{"stage", "-1 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)"}},
		{"status missing", func(r *Result) { r.Status = 0 }, FieldError{"status", "is required"}},
		{"status out of range", func(r *Result) { r.Status = 3 },
			FieldError{"status", "3 is not a status (want 1-2: success, failure)"}},
		{"insurance_type missing", func(r *Result) { r.InsuranceType = 0 }, FieldError{"insurance_type", "is required"}},
		{"insurance_type out of range", func(r *Result) { r.InsuranceType = 3 },
			FieldError{"insurance_type", "3 is not an insurance type (want 1-2: home_property, performance_bond)"}},
		{"insurance_company out of range", func(r *Result) { r.InsuranceCompany = 2 },
			FieldError{"insurance_company", "2 is not an insurance company (want 1: cpic)"}},
		{"insurance_company negative", func(r *Result) { r.InsuranceCompany = -1 },
			FieldError{"insurance_company", "-1 is not an insurance company (want 1: cpic)"}},
		{"time missing", func(r *Result) { r.TimeOfOccurrence = "" }, FieldError{"time_of_occurrence", "is required"}},
		{"time ISO 8601", func(r *Result) { r.TimeOfOccurrence = "2025-04-08T09:55:00" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08T09:55:00"`}},
		{"time one-digit hour", func(r *Result) { r.TimeOfOccurrence = "2025-04-08 9:55:00" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08 9:55:00"`}},
		{"time with fraction", func(r *Result) { r.TimeOfOccurrence = "2025-04-08 09:55:00.5" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08 09:55:00.5"`}},
		{"time with zone", func(r *Result) { r.TimeOfOccurrence = "2025-04-08 09:55:00+08" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08 09:55:00+08"`}},
		{"time date only", func(r *Result) { r.TimeOfOccurrence = "2025-04-08" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08"`}},
		{"time letter for a digit", func(r *Result) { r.TimeOfOccurrence = "2025-04-0a 09:55:00" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-0a 09:55:00"`}},
		{"time slashes", func(r *Result) { r.TimeOfOccurrence = "2025/04/08 09:55:00" },
			FieldError{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025/04/08 09:55:00"`}},
		{"time February 30", func(r *Result) { r.TimeOfOccurrence = "2025-02-30 09:55:00" },
			FieldError{"time_of_occurrence", `"2025-02-30 09:55:00" is not a real calendar time`}},
		{"time February 29 of a common year", func(r *Result) { r.TimeOfOccurrence = "2025-02-29 00:00:00" },
			FieldError{"time_of_occurrence", `"2025-02-29 00:00:00" is not a real calendar time`}},
		{"time month 13", func(r *Result) { r.TimeOfOccurrence = "2025-13-01 00:00:00" },
			FieldError{"time_of_occurrence", `"2025-13-01 00:00:00" is not a real calendar time`}},
		{"time hour 24", func(r *Result) { r.TimeOfOccurrence = "2025-04-08 24:00:00" },
			FieldError{"time_of_occurrence", `"2025-04-08 24:00:00" is not a real calendar time`}},
		{"time leap second", func(r *Result) { r.TimeOfOccurrence = "2016-12-31 23:59:60" },
			FieldError{"time_of_occurrence", `"2016-12-31 23:59:60" is not a real calendar time`}},
		{"policy_number too long", func(r *Result) { r.PolicyNumber = strings.Repeat("保", 65) },
			FieldError{"policy_number", "must be at most 64 characters, got 65"}},
		{"policy_number control char", func(r *Result) { r.PolicyNumber = "12\t34" },
			FieldError{"policy_number", "must not contain control characters, found U+0009 at character 3"}},
		{"policy_number invalid UTF-8", func(r *Result) { r.PolicyNumber = "12\xff" },
			FieldError{"policy_number", "is not valid UTF-8"}},
		{"insurance_document too long", func(r *Result) { r.InsuranceDocument = long(257) },
			FieldError{"insurance_document", "must be at most 256 characters, got 257"}},
		{"insurance_document C1 control", func(r *Result) { r.InsuranceDocument = "oss:\u0085x" },
			FieldError{"insurance_document", "must not contain control characters, found U+0085 at character 5"}},
		{"manager name too long", func(r *Result) { r.BankAccountManagerName = strings.Repeat(managerName, 22) },
			FieldError{"bank_account_manager_name", "must be at most 64 characters, got 66"}},
		{"manager name control char", func(r *Result) { r.BankAccountManagerName = managerName + "\x00" },
			FieldError{"bank_account_manager_name", "must not contain control characters, found U+0000 at character 4"}},
		{"manager name invalid UTF-8", func(r *Result) { r.BankAccountManagerName = managerName[:4] },
			FieldError{"bank_account_manager_name", "is not valid UTF-8"}},
		{"appkey too long", func(r *Result) { r.AppKey = long(65) }, FieldError{"appkey", "must be at most 64 characters, got 65"}},
		{"appkey DEL", func(r *Result) { r.AppKey = "k\x7f" },
			FieldError{"appkey", "must not contain control characters, found U+007F at character 2"}},
		{"request_id too long", func(r *Result) { r.RequestID = long(65) },
			FieldError{"request_id", "must be at most 64 characters, got 65"}},
		{"request_id with slash", func(r *Result) { r.RequestID = "r/1" },
			FieldError{"request_id", `must contain only letters, digits, '_', '.', ':' and '-', got "r/1"`}},
		{"request_id non-ASCII", func(r *Result) { r.RequestID = "请求" },
			FieldError{"request_id", `must contain only letters, digits, '_', '.', ':' and '-', got "请求"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validResult()
			tt.modify(&r)
			assertProblems(t, r.Validate(), []FieldError{tt.want})
		})
	}
}

func TestValidateReportsAllProblemsInFieldOrder(t *testing.T) {
	r := Result{
		BizID:                  "bad id",
		InsuranceCompany:       7,
		Stage:                  9,
		TimeOfOccurrence:       "yesterday",
		BankAccountManagerName: managerName + "\n",
		RequestID:              "r?",
	}
	err := r.Validate()
	assertProblems(t, err, []FieldError{
		{"biz_id", `must contain only letters, digits, '_' and '-', got "bad id"`},
		{"insurance_company", "7 is not an insurance company (want 1: cpic)"},
		{"stage", "9 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)"},
		{"status", "is required"},
		{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "yesterday"`},
		{"bank_account_manager_name", "must not contain control characters, found U+000A at character 4"},
		{"insurance_type", "is required"},
		{"request_id", `must contain only letters, digits, '_', '.', ':' and '-', got "r?"`},
	})
	want := `invalid insurance result: biz_id: must contain only letters, digits, '_' and '-', got "bad id"; ` +
		`insurance_company: 7 is not an insurance company (want 1: cpic); ` +
		`stage: 9 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse); status: is required; ` +
		`time_of_occurrence: must be yyyy-MM-dd HH:mm:ss in GMT+8, got "yesterday"; ` +
		`bank_account_manager_name: must not contain control characters, found U+000A at character 4; ` +
		`insurance_type: is required; request_id: must contain only letters, digits, '_', '.', ':' and '-', got "r?"`
	if err.Error() != want {
		t.Fatalf("Error() =\n %s\nwant\n %s", err, want)
	}
}

func TestValidateNilIsUntypedNil(t *testing.T) {
	// A nil *ValidationError inside an error interface would be non-nil.
	if err := validResult().Validate(); err != nil {
		t.Fatalf("Validate() = %#v, want untyped nil", err)
	}
}
