package insurance

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRejectsLoneSurrogateEscapes(t *testing.T) {
	const base = `{"biz_id":"B1","stage":1,"status":1,"time_of_occurrence":"2025-04-08 09:55:00","insurance_type":1,"policy_number":%s}`
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"lone high", `"P-\ud800"`, false},
		{"lone low", `"P-\udc00"`, false},
		{"reversed pair", `"P-\udc00\ud800"`, false},
		{"high at end", `"\ud83d"`, false},
		{"high then letter", `"\ud83dx"`, false},
		{"valid pair", `"P-\ud83d\ude00"`, true},
		{"escaped backslash then u", `"P-\\ud800"`, true},
		{"plain escape", `"P-\u0041"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(base, "%s", tc.value, 1)
			r, err := Decode([]byte(body))
			if tc.ok {
				if err != nil {
					t.Fatalf("Decode(%s) = %v, want accepted", tc.value, err)
				}
				if strings.ContainsRune(r.PolicyNumber, '\uFFFD') {
					t.Fatalf("policy_number = %q holds U+FFFD", r.PolicyNumber)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0].Field != "policy_number" {
				t.Fatalf("Decode(%s) = %v, want one policy_number problem", tc.value, err)
			}
			if !strings.Contains(verr.Problems[0].Message, "surrogate") {
				t.Errorf("message = %q, want it to name the surrogate", verr.Problems[0].Message)
			}
		})
	}
}
