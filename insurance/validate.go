package insurance

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length limits of the string fields, in characters (runes). The API page
// gives none; these are generous bounds for identifiers and references, set
// so that a runaway value is refused here rather than by TOP after retries.
const (
	maxBizID             = 64
	maxPolicyNumber      = 64
	maxInsuranceDocument = 256
	maxManagerName       = 64
	maxAppKey            = 64
	maxRequestID         = 64
)

// Validate checks r against the API's rules and returns nil or a
// *ValidationError listing every problem: the required fields (biz_id, stage,
// status, time_of_occurrence, insurance_type), the enum ranges (an
// insurance_company of 0 means absent), the time format, and bounds and
// character sets of the strings. Messages never repeat the account
// manager's name, and repeat other values only in part.
func (r Result) Validate() error {
	var ps problems
	r.validate(&ps)
	return ps.err()
}

func (r Result) validate(ps *problems) {
	if r.BizID == "" {
		ps.add(fieldBizID, "is required")
	} else if msg := checkToken(r.BizID, maxBizID, isBizIDByte, "letters, digits, '_' and '-'"); msg != "" {
		ps.add(fieldBizID, msg)
	}
	checkText(ps, fieldPolicyNumber, r.PolicyNumber, maxPolicyNumber)
	if r.InsuranceCompany != 0 && !r.InsuranceCompany.Valid() {
		ps.add(fieldInsuranceCompany, enumMessage(fieldInsuranceCompany, int(r.InsuranceCompany)))
	}
	switch {
	case r.Stage == 0:
		ps.add(fieldStage, "is required")
	case !r.Stage.Valid():
		ps.add(fieldStage, enumMessage(fieldStage, int(r.Stage)))
	}
	switch {
	case r.Status == 0:
		ps.add(fieldStatus, "is required")
	case !r.Status.Valid():
		ps.add(fieldStatus, enumMessage(fieldStatus, int(r.Status)))
	}
	if _, msg := parseTimeOfOccurrence(r.TimeOfOccurrence); msg != "" {
		ps.add(fieldTimeOfOccurrence, msg)
	}
	checkText(ps, fieldBankAccountManagerName, r.BankAccountManagerName, maxManagerName)
	checkText(ps, fieldInsuranceDocument, r.InsuranceDocument, maxInsuranceDocument)
	switch {
	case r.InsuranceType == 0:
		ps.add(fieldInsuranceType, "is required")
	case !r.InsuranceType.Valid():
		ps.add(fieldInsuranceType, enumMessage(fieldInsuranceType, int(r.InsuranceType)))
	}
	checkText(ps, fieldAppKey, r.AppKey, maxAppKey)
	if msg := CheckRequestID(r.RequestID); msg != "" {
		ps.add(fieldRequestID, msg)
	}
}

// CheckRequestID holds a request id to request_id's rules (letters, digits,
// '_', '.', ':' and '-', at most 64) and says what is wrong, "" when
// nothing is; wherever a caller gives one (an Idempotency-Key header).
func CheckRequestID(id string) string {
	return checkToken(id, maxRequestID, isRequestIDByte, "letters, digits, '_', '.', ':' and '-'")
}

// enumMessage reads like "9 is not a stage (want 1-5: pre_insure, underwrite, ...)".
func enumMessage(field string, n int) string {
	var what string
	var names []string
	switch field {
	case fieldStage:
		what, names = "a stage", stageNames[1:]
	case fieldStatus:
		what, names = "a status", statusNames[1:]
	case fieldInsuranceType:
		what, names = "an insurance type", typeNames[1:]
	default:
		what, names = "an insurance company", companyNames[1:]
	}
	span := "1"
	if len(names) > 1 {
		span = fmt.Sprintf("1-%d", len(names))
	}
	return fmt.Sprintf("%d is not %s (want %s: %s)", n, what, span, strings.Join(names, ", "))
}

// checkToken checks an identifier made only of ASCII bytes that ok accepts.
// The value is echoed (truncated) because identifiers are not personal data
// and seeing the offending value saves a round trip. An empty v passes; the
// caller decides whether it is required.
func checkToken(v string, limit int, ok func(byte) bool, allowed string) string {
	if n := utf8.RuneCountInString(v); n > limit {
		return fmt.Sprintf("must be at most %d characters, got %d", limit, n)
	}
	for i := range len(v) {
		if !ok(v[i]) {
			return fmt.Sprintf("must contain only %s, got %s", allowed, quoteTrunc(v))
		}
	}
	return ""
}

// checkText checks a free-text field: valid UTF-8, no control characters
// (they break TOP's form encoding and forge log lines), at most limit runes.
// It never echoes the value, since one of these fields is a person's name.
func checkText(ps *problems, field, v string, limit int) {
	if !utf8.ValidString(v) {
		ps.add(field, "is not valid UTF-8")
		return
	}
	if n := utf8.RuneCountInString(v); n > limit {
		ps.add(field, fmt.Sprintf("must be at most %d characters, got %d", limit, n))
		return
	}
	pos := 0
	for _, c := range v {
		pos++
		if unicode.IsControl(c) {
			ps.add(field, fmt.Sprintf("must not contain control characters, found %U at character %d", c, pos))
			return
		}
	}
}

func isBizIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func isRequestIDByte(c byte) bool {
	return isBizIDByte(c) || c == '.' || c == ':'
}
