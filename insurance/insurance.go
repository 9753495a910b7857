// Package insurance owns the insurance-result event: the one message an insurer
// sends to Taobao through taobao.auction.insurance.insuranceresultcallback, its
// enumerations, its decoding and validation, and the request id that makes a
// re-sent event recognisable. Every other package speaks in these types.
package insurance

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Stage is the stage of a policy that a result reports (API field "stage").
type Stage int

// The stages, numbered as the API page numbers them.
const (
	StagePreInsure  Stage = iota + 1 // 1 预保
	StageUnderwrite                  // 2 核保
	StageInsure                      // 3 投保 (issue)
	StageCancel                      // 4 退保 (surrender)
	StageEndorse                     // 5 批改
)

// Stages returns every stage in lifecycle order.
func Stages() []Stage {
	return []Stage{StagePreInsure, StageUnderwrite, StageInsure, StageCancel, StageEndorse}
}

var stageNames = [...]string{"", "pre_insure", "underwrite", "insure", "cancel", "endorse"}

// Valid reports whether s is one of the API's stages.
func (s Stage) Valid() bool { return s >= StagePreInsure && s <= StageEndorse }

// String returns the readable name, e.g. "pre_insure".
func (s Stage) String() string {
	if !s.Valid() {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return stageNames[s]
}

// ParseStage accepts a stage name ("underwrite") or its API number ("2").
func ParseStage(v string) (Stage, error) {
	n, err := parseEnum(v, stageNames[:])
	if err != nil || !Stage(n).Valid() {
		return 0, fmt.Errorf("unknown stage %q (want one of pre_insure, underwrite, insure, cancel, endorse or 1-5)", v)
	}
	return Stage(n), nil
}

// UnmarshalJSON accepts the API number (1) or a string holding it ("1"), so
// events written by lenient clients still decode. Range is Validate's job;
// null leaves s unchanged, as encoding/json does for plain ints.
func (s *Stage) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, fieldStage, (*int)(s))
}

// Status says whether the reported stage succeeded (API field "status").
type Status int

// The statuses, numbered as the API page numbers them.
const (
	StatusSuccess Status = iota + 1 // 1 成功
	StatusFailure                   // 2 失败
)

var statusNames = [...]string{"", "success", "failure"}

// Valid reports whether s is one of the API's statuses.
func (s Status) Valid() bool { return s == StatusSuccess || s == StatusFailure }

// String returns the readable name, e.g. "success".
func (s Status) String() string {
	if !s.Valid() {
		return fmt.Sprintf("status(%d)", int(s))
	}
	return statusNames[s]
}

// ParseStatus accepts a status name ("failure") or its API number ("2").
func ParseStatus(v string) (Status, error) {
	n, err := parseEnum(v, statusNames[:])
	if err != nil || !Status(n).Valid() {
		return 0, fmt.Errorf("unknown status %q (want success, failure, 1 or 2)", v)
	}
	return Status(n), nil
}

// UnmarshalJSON accepts the API number (1) or a string holding it ("1").
func (s *Status) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, fieldStatus, (*int)(s))
}

// Type is the kind of insurance (API field "insurance_type").
type Type int

// The insurance types, numbered as the API page numbers them.
const (
	TypeHomeProperty    Type = iota + 1 // 1 家财险
	TypePerformanceBond                 // 2 履约险
)

var typeNames = [...]string{"", "home_property", "performance_bond"}

// Valid reports whether t is one of the API's insurance types.
func (t Type) Valid() bool { return t == TypeHomeProperty || t == TypePerformanceBond }

// String returns the readable name, e.g. "home_property".
func (t Type) String() string {
	if !t.Valid() {
		return fmt.Sprintf("insurance_type(%d)", int(t))
	}
	return typeNames[t]
}

// ParseType accepts an insurance type name ("performance_bond") or its API number ("2").
func ParseType(v string) (Type, error) {
	n, err := parseEnum(v, typeNames[:])
	if err != nil || !Type(n).Valid() {
		return 0, fmt.Errorf("unknown insurance type %q (want home_property, performance_bond, 1 or 2)", v)
	}
	return Type(n), nil
}

// UnmarshalJSON accepts the API number (1) or a string holding it ("1").
func (t *Type) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, fieldInsuranceType, (*int)(t))
}

// Company is the insurer (API field "insurance_company"); zero means not given.
type Company int

// The insurance companies the API page lists.
const (
	CompanyCPIC Company = 1 // 太保
)

var companyNames = [...]string{"", "cpic"}

// Valid reports whether c is one of the API's companies.
func (c Company) Valid() bool { return c == CompanyCPIC }

// String returns the readable name, e.g. "cpic".
func (c Company) String() string {
	if !c.Valid() {
		return fmt.Sprintf("insurance_company(%d)", int(c))
	}
	return companyNames[c]
}

// ParseCompany accepts a company name ("cpic") or its API number ("1").
func ParseCompany(v string) (Company, error) {
	n, err := parseEnum(v, companyNames[:])
	if err != nil || !Company(n).Valid() {
		return 0, fmt.Errorf("unknown insurance company %q (want cpic or 1)", v)
	}
	return Company(n), nil
}

// UnmarshalJSON accepts the API number (1) or a string holding it ("1").
func (c *Company) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, fieldInsuranceCompany, (*int)(c))
}

// Result mirrors the API's InsuranceResultApiRequest, with its exact JSON
// names. Marshalled, it is the compact JSON string that TOP expects in the
// insurance_result_a_p_i_request parameter: enums as numbers, empty optional
// fields left out.
type Result struct {
	BizID                  string  `json:"biz_id"`
	PolicyNumber           string  `json:"policy_number,omitempty"`
	InsuranceCompany       Company `json:"insurance_company,omitempty"`
	Stage                  Stage   `json:"stage"`
	Status                 Status  `json:"status"`
	TimeOfOccurrence       string  `json:"time_of_occurrence"`
	BankAccountManagerName string  `json:"bank_account_manager_name,omitempty"` // personal data: never logged
	InsuranceDocument      string  `json:"insurance_document,omitempty"`
	InsuranceType          Type    `json:"insurance_type"`
	AppKey                 string  `json:"appkey,omitempty"`
	RequestID              string  `json:"request_id,omitempty"`
}

// The API's field names, in the order the API page lists them. Problems are
// reported in this order so that the same body always yields the same error.
const (
	fieldBizID                  = "biz_id"
	fieldPolicyNumber           = "policy_number"
	fieldInsuranceCompany       = "insurance_company"
	fieldStage                  = "stage"
	fieldStatus                 = "status"
	fieldTimeOfOccurrence       = "time_of_occurrence"
	fieldBankAccountManagerName = "bank_account_manager_name"
	fieldInsuranceDocument      = "insurance_document"
	fieldInsuranceType          = "insurance_type"
	fieldAppKey                 = "appkey"
	fieldRequestID              = "request_id"
)

func fieldOrder() []string {
	return []string{
		fieldBizID, fieldPolicyNumber, fieldInsuranceCompany, fieldStage, fieldStatus,
		fieldTimeOfOccurrence, fieldBankAccountManagerName, fieldInsuranceDocument,
		fieldInsuranceType, fieldAppKey, fieldRequestID,
	}
}

// APIJSON returns the compact JSON string TOP receives in the
// insurance_result_a_p_i_request parameter: exactly json.Marshal(r), enums as
// numbers, empty optional fields left out. It is the string that gets signed,
// so every sender must use this one spelling. It does not validate; call
// Validate first.
func (r Result) APIJSON() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode insurance result %s: %w", r.BizID, err)
	}
	return string(b), nil
}

// String describes r for humans without its personal data, so a Result that
// slips into fmt.Errorf("%v") or a log line cannot leak the manager's name.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "insurance.Result{biz_id=%s stage=%s status=%s time_of_occurrence=%s insurance_type=%s",
		quoteTrunc(r.BizID), r.Stage, r.Status, quoteTrunc(r.TimeOfOccurrence), r.InsuranceType)
	if r.InsuranceCompany != 0 {
		fmt.Fprintf(&b, " insurance_company=%s", r.InsuranceCompany)
	}
	if r.PolicyNumber != "" {
		fmt.Fprintf(&b, " policy_number=%s", quoteTrunc(r.PolicyNumber))
	}
	if r.BankAccountManagerName != "" {
		b.WriteString(" bank_account_manager_name=[redacted]")
	}
	if r.RequestID != "" {
		fmt.Fprintf(&b, " request_id=%s", quoteTrunc(r.RequestID))
	}
	b.WriteString("}")
	return b.String()
}

// LogValue keeps personal data out of logs: the account manager's name is
// never part of a logged Result.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("biz_id", r.BizID),
		slog.String("stage", r.Stage.String()),
		slog.String("status", r.Status.String()),
		slog.String("time_of_occurrence", r.TimeOfOccurrence),
		slog.String("insurance_type", r.InsuranceType.String()),
		slog.String("request_id", r.RequestID),
	)
}

// parseEnum resolves a readable name or a decimal API number to its number.
func parseEnum(v string, names []string) (int, error) {
	for i, name := range names {
		if i > 0 && v == name {
			return i, nil
		}
	}
	return strconv.Atoi(v)
}
