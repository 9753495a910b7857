package policyclient

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/store"
	"github.com/insuranceflow/insuranceflow/workflows"
)

// TestEveryContractErrorTypeHasAKind: every ApplicationError type of the
// workflow contract is classified, whether it arrives as a *Rejection or as
// the raw ApplicationError, wrapped, and none is "internal".
func TestEveryContractErrorTypeHasAKind(t *testing.T) {
	for _, typ := range workflows.ContractErrorTypes() {
		t.Run(typ, func(t *testing.T) {
			if _, ok := contractKind(typ); !ok {
				t.Fatalf("contractKind does not know %q", typ)
			}
			raw := fmt.Errorf("skip-callback on policy X: %w", temporal.NewApplicationError("the workflow says so", typ))
			c := Classify(raw)
			if c.Kind == KindInternal || c.Kind == 0 {
				t.Fatalf("Classify(%v) = %v", raw, c.Kind)
			}
			if c.Reason != typ || c.Message != "the workflow says so" {
				t.Fatalf("Classify = %+v, want reason %q and the workflow's message", c, typ)
			}
			rej := fmt.Errorf("report: %w", &Rejection{Reason: typ, Message: "m"})
			if got := Classify(rej); got.Kind != c.Kind || got.Reason != typ {
				t.Fatalf("as a Rejection: %+v, want kind %v", got, c.Kind)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		kind   ErrorKind
		reason string
	}{
		{"validation", &insurance.ValidationError{Problems: []insurance.FieldError{{Field: "stage", Message: "is required"}}}, KindInvalid, workflows.ReasonInvalidRequest},
		{"argument", &ArgumentError{Field: "reason", Message: "too long"}, KindInvalid, workflows.ReasonInvalidRequest},
		{"store unavailable", fmt.Errorf("retry: %w", temporal.NewApplicationError("m", workflows.ErrorStoreUnavailable)), KindUnavailable, workflows.ErrorStoreUnavailable},
		{"store conflict", temporal.NewNonRetryableApplicationError("m", workflows.ErrorStoreConflict, nil), KindConflict, workflows.ErrorStoreConflict},
		{"not found", fmt.Errorf("policy x: %w", ErrNotFound), KindNotFound, ""},
		{"store not found", fmt.Errorf("history: %w", store.ErrNotFound), KindNotFound, ""},
		{"temporal unavailable", fmt.Errorf("report: %w: %w", ErrUnavailable, errors.New("refused")), KindUnavailable, ""},
		{"deadline", fmt.Errorf("report: %w: %w", ErrUnavailable, context.DeadlineExceeded), KindTimeout, ""},
		{"canceled", fmt.Errorf("report: %w", context.Canceled), KindCanceled, ""},
		{"another application error", temporal.NewApplicationError("m", "SomethingElse"), KindInternal, ""},
		{"a rejection with an unknown reason", &Rejection{Reason: "made_up", Message: "m"}, KindInternal, ""},
		{"plain", errors.New("boom"), KindInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Classify(tt.err)
			if c.Kind != tt.kind || c.Reason != tt.reason {
				t.Fatalf("Classify(%v) = %v/%q, want %v/%q", tt.err, c.Kind, c.Reason, tt.kind, tt.reason)
			}
			if c.Kind == KindInternal && c.Message != "" {
				t.Fatalf("an internal error has a message to show: %q", c.Message)
			}
		})
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		n := k.String()
		if n == "unknown" || seen[n] {
			t.Fatalf("kind %d is named %q", k, n)
		}
		seen[n] = true
	}
	if ErrorKind(0).String() != "unknown" {
		t.Fatalf("the zero kind is named %q", ErrorKind(0))
	}
}
