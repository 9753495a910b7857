package main

import (
	"context"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// wantExit is the exit code of each contract error type.
var wantExit = map[string]exitCode{
	workflows.ReasonInvalidRequest:        exitBadInput,
	workflows.ErrorTypeInvalidInput:       exitBadInput,
	workflows.ReasonIllegalTransition:     exitRejected,
	workflows.ReasonInsuranceTypeMismatch: exitRejected,
	workflows.ReasonPolicyNumberMismatch:  exitRejected,
	workflows.ReasonTimeWentBackwards:     exitRejected,
	workflows.ReasonNoParkedCallback:      exitRejected,
	workflows.ReasonSeqMismatch:           exitRejected,
	workflows.ReasonOperatorActionPending: exitRejected,
	workflows.ReasonOperatorRepeated:      exitRejected,
	workflows.ReasonDuplicate:             exitRejected,
	workflows.ReasonImportOrder:           exitRejected,
	workflows.ReasonNothingToImport:       exitRejected,
	workflows.ErrorStoreUnavailable:       exitUnavailable,
	workflows.ErrorStoreConflict:          exitRejected,
}

// TestEveryContractErrorHasItsExitCode: no contract error type exits 1
// ("internal"). A retry or skip refused because the store was down used to.
func TestEveryContractErrorHasItsExitCode(t *testing.T) {
	for _, typ := range workflows.ContractErrorTypes() {
		want, ok := wantExit[typ]
		if !ok {
			t.Errorf("contract error type %q has no expected exit code in this test: add it", typ)
			continue
		}
		err := fmt.Errorf("skip-callback on policy X: %w", temporal.NewApplicationError("the workflow says "+typ, typ))
		if got := exitCodeOf(err); got != want {
			t.Errorf("%s: exit code %d (%s), want %d (%s)", typ, got, got.kind(), want, want.kind())
		}
	}
}

// TestStoreUnavailableOperatorAction runs `skip` against a workflow that
// could not record the decision: exit 4, and the JSON document names the
// contract's type.
func TestStoreUnavailableOperatorAction(t *testing.T) {
	ops := failingSkip{fakePolicies: newFakePolicies(), err: fmt.Errorf("skip-callback on policy P1: %w",
		temporal.NewApplicationError("callback #2: the store did not record the skip; try again", workflows.ErrorStoreUnavailable))}
	res := runWith(t, ops, "--json", "skip", "P1", "--seq", "2")
	if res.code != exitUnavailable {
		t.Fatalf("exit=%d, want %d\nstdout: %s\nstderr: %s", res.code, exitUnavailable, res.stdout, res.stderr)
	}
	var doc errorDoc
	decodeOne(t, res.stdout, &doc)
	if doc.Error.Kind != "unavailable" || doc.Error.Reason != workflows.ErrorStoreUnavailable ||
		doc.Error.Message != "callback #2: the store did not record the skip; try again" {
		t.Fatalf("error document = %+v", doc.Error)
	}
}

// failingSkip answers every Skip with err.
type failingSkip struct {
	*fakePolicies
	err error
}

func (f failingSkip) Skip(context.Context, string, workflows.OperatorRequest) (workflows.OperatorResult, error) {
	return workflows.OperatorResult{}, f.err
}
