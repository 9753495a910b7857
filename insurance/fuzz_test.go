package insurance

import (
	"errors"
	"strings"
	"testing"
)

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		apiExample,
		body(nil),
		body(map[string]string{"stage": `"3"`, "status": `"2"`, "insurance_type": `"2"`, "insurance_company": `"1"`}),
		body(map[string]string{"request_id": `"r-1.2:3"`, "appkey": `null`, "policy_number": `"保单\u2028号"`}),
		body(map[string]string{"stage": `1.5`, "status": `true`, "biz_id": `{}`, "time_of_occurrence": `"2025-02-30 09:55:00"`}),
		body(map[string]string{"bank_account_manager_name": `"王小丫\u0000"`}),
		strings.TrimSuffix(body(nil), "}") + `,"stage":2,"x":1}`,
		`{"stage":99999999999999999999}`,
		`{"biz_id":"B1",,}`, `{"biz_id":"B1"`, `[]`, `null`, ``, `{}{}`, "{\"a\xff\":1}", "\ufeff{}",
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		`{"biz\u005fid":"B1","stage":"-0","status":"01"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Decode() error = %v (%T), want a *ValidationError with problems", err, err)
			}
			if r != (Result{}) {
				t.Fatalf("Decode() returned %v alongside an error", r)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted result does not validate: %v", err)
		}
		// Nothing sent may be silently replaced: U+FFFD in a decoded field
		// must have been in the input (raw or as the escape \ufffd).
		if s, _ := r.APIJSON(); strings.ContainsRune(s, '\uFFFD') &&
			!strings.ContainsRune(string(data), '\uFFFD') && !strings.Contains(strings.ToLower(string(data)), `\ufffd`) {
			t.Fatalf("accepted %q decodes to U+FFFD that was not sent", data)
		}
		s, err := r.APIJSON()
		if err != nil {
			t.Fatalf("APIJSON() error = %v", err)
		}
		back, err := Decode([]byte(s))
		if err != nil {
			t.Fatalf("Decode(APIJSON()) error = %v for %s", err, s)
		}
		if back != r {
			t.Fatalf("round trip = %v, want %v", back, r)
		}
	})
}
