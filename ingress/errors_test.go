package ingress

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/policyclient"
	"github.com/insuranceflow/insuranceflow/top"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// contractError is how the policy client hands on a workflow's
// ApplicationError it does not turn into a *Rejection: wrapped, with what
// was being done.
func contractError(typ string) error {
	return fmt.Errorf("skip-callback on policy %s: %w", bizID,
		temporal.NewApplicationError("callback #3: the workflow says "+typ, typ))
}

// wantHTTP is what the JSON API answers for each contract error type.
var wantHTTP = map[string]struct {
	status int
	code   string
}{
	workflows.ReasonInvalidRequest:        {http.StatusBadRequest, "invalid_request"},
	workflows.ErrorTypeInvalidInput:       {http.StatusBadRequest, "invalid_input"},
	workflows.ReasonIllegalTransition:     {http.StatusConflict, "illegal_transition"},
	workflows.ReasonInsuranceTypeMismatch: {http.StatusConflict, "insurance_type_mismatch"},
	workflows.ReasonPolicyNumberMismatch:  {http.StatusConflict, "policy_number_mismatch"},
	workflows.ReasonTimeWentBackwards:     {http.StatusConflict, "time_went_backwards"},
	workflows.ReasonNoParkedCallback:      {http.StatusConflict, "no_parked_callback"},
	workflows.ReasonSeqMismatch:           {http.StatusConflict, "seq_mismatch"},
	workflows.ReasonOperatorActionPending: {http.StatusConflict, "operator_action_pending"},
	workflows.ReasonOperatorRepeated:      {http.StatusConflict, "operator_action_repeated"},
	workflows.ReasonDuplicate:             {http.StatusConflict, "duplicate"},
	workflows.ReasonImportOrder:           {http.StatusConflict, "import_order"},
	workflows.ReasonNothingToImport:       {http.StatusConflict, "nothing_to_import"},
	workflows.ErrorStoreUnavailable:       {http.StatusServiceUnavailable, "unavailable"},
	workflows.ErrorStoreConflict:          {http.StatusConflict, "store_conflict"},
}

// TestEveryContractErrorHasItsOwnAnswer sends every ApplicationError type
// of the workflow contract through an operator action and a report, and
// checks that none is answered as an internal error. A store outage during
// an operator action used to be a 500 "internal".
func TestEveryContractErrorHasItsOwnAnswer(t *testing.T) {
	for _, typ := range workflows.ContractErrorTypes() {
		want, ok := wantHTTP[typ]
		if !ok {
			t.Errorf("contract error type %q has no expected answer in this test: add it", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			s := start(t, &fakePolicies{err: contractError(typ)}, nil)
			e := wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/skip", `{"seq":3}`, nil), want.status, want.code)
			if want.status < 500 && !strings.Contains(e["message"].(string), "the workflow says") {
				t.Errorf("message %q is not the workflow's", e["message"])
			}
			r := s.do(t, "POST", "/v1/insurance-results", eventJSON(nil), nil)
			wantError(t, r, want.status, want.code)
			if want.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
}

// TestEveryContractErrorHasAMetricsReason checks that no contract error
// type is counted as "internal", and that every reason it is counted under
// is one the metrics pre-register.
func TestEveryContractErrorHasAMetricsReason(t *testing.T) {
	for _, typ := range workflows.ContractErrorTypes() {
		reason := rejectionReason(contractError(typ))
		if reason == reasonInternal {
			t.Errorf("%s is counted as %q", typ, reason)
		}
		if !slices.Contains(RejectionReasons(), reason) {
			t.Errorf("%s is counted as %q, which RejectionReasons does not list", typ, reason)
		}
	}
}

// TestTOPRouterAnswersEveryContractError checks the drop-in: a refusal is
// call_success=false with the type as fail_code, a store outage is a
// retryable isp.* error, and nothing is the "internal error" answer.
func TestTOPRouterAnswersEveryContractError(t *testing.T) {
	for _, typ := range workflows.ContractErrorTypes() {
		t.Run(typ, func(t *testing.T) {
			s := startRouter(t, &fakePolicies{err: contractError(typ)})
			out := s.client(t, top.SignHMAC, false).Callback(context.Background(), routerResult())
			if out.SubCode == subCodeServiceError {
				t.Fatalf("outcome = %s: answered as an internal error", out.Summary())
			}
			switch want := wantHTTP[typ]; want.status {
			case http.StatusServiceUnavailable:
				if out.Class != top.ClassRetryable || out.SubCode != subCodeServiceUnavailable {
					t.Fatalf("outcome = %s, want retryable %s", out.Summary(), subCodeServiceUnavailable)
				}
			default:
				if out.Class != top.ClassRejected || out.FailCode != strings.ToUpper(want.code) {
					t.Fatalf("outcome = %s, want call_success=false %s", out.Summary(), strings.ToUpper(want.code))
				}
			}
		})
	}
}

// The policy client's own errors keep their answers.
func TestClientErrorsKeepTheirAnswers(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"not found", fmt.Errorf("policy x: %w", policyclient.ErrNotFound), http.StatusNotFound, "not_found"},
		{"temporal unavailable", fmt.Errorf("report: %w", policyclient.ErrUnavailable), http.StatusServiceUnavailable, "unavailable"},
		{"timed out", context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
		{"argument", &policyclient.ArgumentError{Field: "reason", Message: "too long"}, http.StatusBadRequest, "invalid_request"},
		{"anything else", fmt.Errorf("boom password=hunter2"), http.StatusInternalServerError, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, &fakePolicies{err: tt.err}, nil)
			e := wantError(t, s.do(t, "POST", "/v1/policies/"+bizID+"/callbacks/retry", `{"seq":3}`, nil), tt.status, tt.code)
			if strings.Contains(e["message"].(string), "hunter2") {
				t.Errorf("message %q leaks the internal error", e["message"])
			}
		})
	}
}

func TestRejectionReasonsAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range RejectionReasons() {
		if seen[r] {
			t.Fatalf("RejectionReasons lists %q twice: %v", r, RejectionReasons())
		}
		seen[r] = true
	}
	for _, want := range []string{"invalid_request", "illegal_transition", "duplicate", "store_conflict", "unavailable", "internal"} {
		if !seen[want] {
			t.Errorf("RejectionReasons %v lacks %q", RejectionReasons(), want)
		}
	}
}
