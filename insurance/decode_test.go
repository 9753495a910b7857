package insurance

import (
	"fmt"
	"strings"
	"testing"
)

// apiExample is the API page's example object, as a business system sends it.
const apiExample = `{"biz_id":"24010900100YSKSSG","policy_number":"12345678A","insurance_company":1,` +
	`"stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","bank_account_manager_name":"王小丫",` +
	`"insurance_document":"oss:aakkloi122","insurance_type":1,"appkey":"xxxxx","request_id":"xxxxx"}`

func TestDecodeAccepts(t *testing.T) {
	minimal := Result{BizID: "B1", Stage: StageInsure, Status: StatusFailure,
		TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: TypePerformanceBond}
	tests := []struct {
		name string
		body string
		want Result
	}{
		{"api page example", apiExample, validResult()},
		{"required fields only",
			`{"biz_id":"B1","stage":3,"status":2,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":2}`, minimal},
		{"numeric strings",
			`{"biz_id":"B1","stage":"3","status":"2","time_of_occurrence":"2025-04-08 09:55:00","insurance_type":"2","insurance_company":"1"}`,
			func() Result { r := minimal; r.InsuranceCompany = CompanyCPIC; return r }()},
		{"whitespace around everything",
			" \n\t{ \"biz_id\" : \"B1\" , \"stage\" : 3 , \"status\" : 2 , \"time_of_occurrence\" : \"2025-04-08 09:55:00\" , \"insurance_type\" : 2 }\r\n ",
			minimal},
		{"null optional fields are absent",
			`{"biz_id":"B1","stage":3,"status":2,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":2,` +
				`"policy_number":null,"insurance_company":null,"bank_account_manager_name":null,"insurance_document":null,"appkey":null,"request_id":null}`,
			minimal},
		{"empty optional strings are absent",
			`{"biz_id":"B1","stage":3,"status":2,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":2,"policy_number":"","request_id":""}`,
			minimal},
		{"company zero is absent",
			`{"biz_id":"B1","stage":3,"status":2,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":2,"insurance_company":0}`,
			minimal},
		{"escaped key and unicode escapes",
			`{"biz\u005fid":"B1","stage":3,"status":2,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":2,"bank_account_manager_name":"\u738b\u5c0f\u4e2b"}`,
			func() Result { r := minimal; r.BankAccountManagerName = managerName; return r }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if got != tt.want {
				t.Fatalf("Decode() =\n %#v\nwant\n %#v", got, tt.want)
			}
		})
	}
}

// body builds a valid request body with some fields replaced (raw JSON
// values) or removed (value ""), in the API page's key order.
func body(replace map[string]string) string {
	fields := []struct{ key, value string }{
		{"biz_id", `"24010900100YSKSSG"`},
		{"stage", `1`},
		{"status", `1`},
		{"time_of_occurrence", `"2025-04-08 09:55:00"`},
		{"bank_account_manager_name", `"王小丫"`},
		{"insurance_type", `1`},
	}
	var parts []string
	for _, f := range fields {
		v, ok := replace[f.key]
		if !ok {
			v = f.value
		}
		if v != "" {
			parts = append(parts, `"`+f.key+`":`+v)
		}
	}
	for _, k := range []string{"policy_number", "insurance_company", "insurance_document", "appkey", "request_id"} {
		if v := replace[k]; v != "" {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestDecodeFieldProblems(t *testing.T) {
	const wantInt = "must be an integer or a string holding a decimal integer, got "
	tests := []struct {
		name    string
		replace map[string]string
		want    FieldError
	}{
		{"stage float", map[string]string{"stage": `1.5`}, FieldError{"stage", wantInt + "number 1.5"}},
		{"stage float with zero fraction", map[string]string{"stage": `1.0`}, FieldError{"stage", wantInt + "number 1.0"}},
		{"stage exponent", map[string]string{"stage": `1e0`}, FieldError{"stage", wantInt + "number 1e0"}},
		{"stage boolean", map[string]string{"stage": `true`}, FieldError{"stage", wantInt + "boolean"}},
		{"stage word", map[string]string{"stage": `"abc"`}, FieldError{"stage", wantInt + `string "abc"`}},
		{"stage name is not a number", map[string]string{"stage": `"underwrite"`}, FieldError{"stage", wantInt + `string "underwrite"`}},
		{"stage empty string", map[string]string{"stage": `""`}, FieldError{"stage", wantInt + `string ""`}},
		{"stage string with space", map[string]string{"stage": `" 1"`}, FieldError{"stage", wantInt + `string " 1"`}},
		{"stage string with plus", map[string]string{"stage": `"+1"`}, FieldError{"stage", wantInt + `string "+1"`}},
		{"stage string float", map[string]string{"stage": `"1.0"`}, FieldError{"stage", wantInt + `string "1.0"`}},
		{"stage object", map[string]string{"stage": `{"v":1}`}, FieldError{"stage", wantInt + "object"}},
		{"stage array", map[string]string{"stage": `[1]`}, FieldError{"stage", wantInt + "array"}},
		{"stage null", map[string]string{"stage": `null`}, FieldError{"stage", "is required, got null"}},
		{"stage missing", map[string]string{"stage": ``}, FieldError{"stage", "is required"}},
		{"stage out of range", map[string]string{"stage": `6`},
			FieldError{"stage", "6 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)"}},
		{"stage zero string", map[string]string{"stage": `"0"`},
			FieldError{"stage", "0 is not a stage (want 1-5: pre_insure, underwrite, insure, cancel, endorse)"}},
		{"status zero", map[string]string{"status": `0`}, FieldError{"status", "0 is not a status (want 1-2: success, failure)"}},
		{"insurance_type zero", map[string]string{"insurance_type": `0`},
			FieldError{"insurance_type", "0 is not an insurance type (want 1-2: home_property, performance_bond)"}},
		{"stage overflows int", map[string]string{"stage": `99999999999999999999`},
			FieldError{"stage", wantInt + "number 99999999999999999999 (out of range)"}},
		{"stage string overflows int", map[string]string{"stage": `"-99999999999999999999"`},
			FieldError{"stage", wantInt + `string "-99999999999999999999" (out of range)`}},
		{"stage huge literal truncated", map[string]string{"stage": strings.Repeat("9", 40)},
			FieldError{"stage", wantInt + "number " + strings.Repeat("9", 32) + "... (out of range)"}},
		{"status boolean", map[string]string{"status": `false`}, FieldError{"status", wantInt + "boolean"}},
		{"status out of range string", map[string]string{"status": `"3"`},
			FieldError{"status", "3 is not a status (want 1-2: success, failure)"}},
		{"insurance_type float", map[string]string{"insurance_type": `2.5`}, FieldError{"insurance_type", wantInt + "number 2.5"}},
		{"insurance_type null", map[string]string{"insurance_type": `null`}, FieldError{"insurance_type", "is required, got null"}},
		{"insurance_company boolean", map[string]string{"insurance_company": `true`},
			FieldError{"insurance_company", wantInt + "boolean"}},
		{"insurance_company out of range", map[string]string{"insurance_company": `"2"`},
			FieldError{"insurance_company", "2 is not an insurance company (want 1: cpic)"}},
		{"biz_id number", map[string]string{"biz_id": `24010900100`}, FieldError{"biz_id", "must be a string, got number"}},
		{"biz_id null", map[string]string{"biz_id": `null`}, FieldError{"biz_id", "is required, got null"}},
		{"biz_id empty", map[string]string{"biz_id": `""`}, FieldError{"biz_id", "is required"}},
		{"biz_id missing", map[string]string{"biz_id": ``}, FieldError{"biz_id", "is required"}},
		{"biz_id bad characters", map[string]string{"biz_id": `"a b"`},
			FieldError{"biz_id", `must contain only letters, digits, '_' and '-', got "a b"`}},
		{"time number", map[string]string{"time_of_occurrence": `1744077300`}, FieldError{"time_of_occurrence", "must be a string, got number"}},
		{"time null", map[string]string{"time_of_occurrence": `null`}, FieldError{"time_of_occurrence", "is required, got null"}},
		{"time impossible", map[string]string{"time_of_occurrence": `"2025-02-30 09:55:00"`},
			FieldError{"time_of_occurrence", `"2025-02-30 09:55:00" is not a real calendar time`}},
		{"manager name number", map[string]string{"bank_account_manager_name": `42`},
			FieldError{"bank_account_manager_name", "must be a string, got number"}},
		{"manager name object", map[string]string{"bank_account_manager_name": `{"name":"王小丫"}`},
			FieldError{"bank_account_manager_name", "must be a string, got object"}},
		{"manager name array", map[string]string{"bank_account_manager_name": `["王小丫"]`},
			FieldError{"bank_account_manager_name", "must be a string, got array"}},
		{"manager name escaped control", map[string]string{"bank_account_manager_name": `"王小丫\u0000"`},
			FieldError{"bank_account_manager_name", "must not contain control characters, found U+0000 at character 4"}},
		{"policy_number boolean", map[string]string{"policy_number": `true`}, FieldError{"policy_number", "must be a string, got boolean"}},
		{"insurance_document number", map[string]string{"insurance_document": `1`}, FieldError{"insurance_document", "must be a string, got number"}},
		{"appkey array", map[string]string{"appkey": `[]`}, FieldError{"appkey", "must be a string, got array"}},
		{"request_id number", map[string]string{"request_id": `7`}, FieldError{"request_id", "must be a string, got number"}},
		{"request_id bad characters", map[string]string{"request_id": `"r 1"`},
			FieldError{"request_id", `must contain only letters, digits, '_', '.', ':' and '-', got "r 1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(body(tt.replace)))
			assertProblems(t, err, []FieldError{tt.want})
			if got != (Result{}) {
				t.Fatalf("Decode() result = %v, want the zero Result alongside an error", got)
			}
		})
	}
}

func TestDecodeKeyProblems(t *testing.T) {
	valid := strings.TrimSuffix(body(nil), "}")
	tests := []struct {
		name string
		body string
		want []FieldError
	}{
		{"unknown field", valid + `,"colour":"red"}`, []FieldError{{"colour", "unknown field"}}},
		{"camelCase field", valid + `,"policyNumber":"P1"}`, []FieldError{{"policyNumber", `unknown field (did you mean "policy_number"?)`}}},
		{"upper-case field", valid + `,"APPKEY":"k"}`, []FieldError{{"APPKEY", `unknown field (did you mean "appkey"?)`}}},
		{"wrapped in the API parameter", `{"insurance_result_a_p_i_request":` + body(nil) + `}`, []FieldError{
			{"biz_id", "is required"}, {"stage", "is required"}, {"status", "is required"},
			{"time_of_occurrence", "is required"}, {"insurance_type", "is required"},
			{"insurance_result_a_p_i_request", "unknown field (send the result's fields at the top level, not wrapped in the API parameter)"},
		}},
		{"unknown key with control characters is escaped", valid + `,"a\nb":1}`, []FieldError{{`a\nb`, "unknown field"}}},
		{"long unknown key is truncated", valid + `,"` + strings.Repeat("k", 100) + `":1}`,
			[]FieldError{{strings.Repeat("k", 32) + "...", "unknown field"}}},
		{"unknown key repeated is reported once", valid + `,"x":1,"x":2}`, []FieldError{{"x", "unknown field"}}},
		{"duplicate known field", valid + `,"stage":2}`, []FieldError{{"stage", "appears more than once"}}},
		{"field repeated three times is reported once", valid + `,"status":1,"status":1}`, []FieldError{{"status", "appears more than once"}}},
		{"duplicate identical field", valid + `,"biz_id":"24010900100YSKSSG"}`, []FieldError{{"biz_id", "appears more than once"}}},
		{"duplicate of a bad field", `{"stage":true,"stage":1,"biz_id":"B","status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1}`,
			[]FieldError{
				{"stage", "must be an integer or a string holding a decimal integer, got boolean"},
				{"stage", "appears more than once"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			assertProblems(t, err, tt.want)
		})
	}
}

func TestDecodeBodyProblems(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", ``, "is empty (want a JSON object)"},
		{"whitespace", " \n ", "is empty (want a JSON object)"},
		{"array", `[` + body(nil) + `]`, "must be a JSON object, got array"},
		{"string", `"x"`, "must be a JSON object, got string"},
		{"number", `42`, "must be a JSON object, got number"},
		{"boolean", `true`, "must be a JSON object, got boolean"},
		{"null", `null`, "must be a JSON object, got null"},
		{"truncated", `{"biz_id":"B1"`, "is not valid JSON: unexpected end of input"},
		{"truncated string", `{"biz_id":"B1`, "is not valid JSON: unexpected end of input"},
		{"double comma", `{"biz_id":"B1",,}`, "is not valid JSON: syntax error at byte 16"},
		{"trailing comma", `{"biz_id":"B1",}`, "is not valid JSON: syntax error at byte 16"},
		{"single quotes", `{'biz_id':'B1'}`, "is not valid JSON: syntax error at byte 2"},
		{"bare word value hides the name", `{"bank_account_manager_name":王小丫}`, "is not valid JSON: syntax error at byte 30"},
		{"byte order mark", "\ufeff" + body(nil), "is not valid JSON: syntax error at byte 1"},
		{"trailing garbage", body(nil) + ` x`, "has data after the JSON object"},
		{"second object", body(nil) + body(nil), "has data after the JSON object"},
		{"invalid UTF-8 in value", `{"bank_account_manager_name":"` + "\xe7\x8e" + `"}`, "is not valid UTF-8"},
		{"invalid UTF-8 in key", "{\"a\xff\":1}", "is not valid UTF-8"},
		{"too large", `{"appkey":"` + strings.Repeat("k", MaxBodyBytes) + `"}`, "is 65549 bytes, more than the 65536 allowed"},
		{"too deep", `{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "is not valid JSON: syntax error at byte 10005"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			assertProblems(t, err, []FieldError{{"body", tt.want}})
		})
	}
}

func TestDecodeReportsEveryProblemTogether(t *testing.T) {
	b := `{"biz_id":17,"stage":1.5,"status":true,"time_of_occurrence":"2025-04-08 09:55",` +
		`"bank_account_manager_name":"王小丫","insurance_type":"2","colour":"red"}`
	_, err := Decode([]byte(b))
	assertProblems(t, err, []FieldError{
		{"biz_id", "must be a string, got number"},
		{"stage", "must be an integer or a string holding a decimal integer, got number 1.5"},
		{"status", "must be an integer or a string holding a decimal integer, got boolean"},
		{"time_of_occurrence", `must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08 09:55"`},
		{"colour", "unknown field"},
	})
	want := `invalid insurance result: biz_id: must be a string, got number; ` +
		`stage: must be an integer or a string holding a decimal integer, got number 1.5; ` +
		`status: must be an integer or a string holding a decimal integer, got boolean; ` +
		`time_of_occurrence: must be yyyy-MM-dd HH:mm:ss in GMT+8, got "2025-04-08 09:55"; colour: unknown field`
	if err.Error() != want {
		t.Fatalf("Error() =\n %s\nwant\n %s", err, want)
	}
}

func TestDecodeRoundTripsThroughAPIJSON(t *testing.T) {
	in, err := Decode([]byte(apiExample))
	if err != nil {
		t.Fatalf("Decode(api example) error = %v", err)
	}
	s, err := in.APIJSON()
	if err != nil {
		t.Fatalf("APIJSON() error = %v", err)
	}
	if s != apiExample {
		t.Fatalf("APIJSON() =\n %s\nwant the API page's example\n %s", s, apiExample)
	}
	out, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("Decode(APIJSON()) error = %v", err)
	}
	if out != in {
		t.Fatalf("round trip = %v, want %v", out, in)
	}
}

func TestDecodeCapsTheProblemList(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(body(nil), "}"))
	for i := range 1000 {
		fmt.Fprintf(&b, `,"k%d":1`, i)
	}
	b.WriteString("}")
	_, err := Decode([]byte(b.String()))
	got := problemsOf(t, err)
	if len(got) != 25 {
		t.Fatalf("got %d problems, want 24 listed and one summary", len(got))
	}
	if got[0] != (FieldError{"k0", "unknown field"}) || got[23] != (FieldError{"k23", "unknown field"}) {
		t.Fatalf("listed problems = %q, want k0..k23 in body order", got[:24])
	}
	if want := (FieldError{"body", "has 976 more problems, not listed"}); got[24] != want {
		t.Fatalf("summary = %q, want %q", got[24], want)
	}
}
