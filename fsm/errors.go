package fsm

import (
	"fmt"
	"strings"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// IllegalTransitionError is returned by Check, Apply and Next when the stage
// is not legal in the policy's current state. A failure report is illegal
// exactly where the same stage's success would be, so Status only says which
// kind of report was refused. Allowed lists the stages that are legal in
// State, in lifecycle order, so the caller can tell the business system what
// it may send instead.
type IllegalTransitionError struct {
	State   State
	Stage   insurance.Stage
	Status  insurance.Status
	Allowed []insurance.Stage
}

func (e *IllegalTransitionError) Error() string {
	var allowed string
	switch {
	case e.State.Terminal():
		// Spelled out so an operator reading the error knows retrying cannot help.
		allowed = "none; the policy is " + string(e.State)
	case len(e.Allowed) == 0:
		allowed = "none"
	default:
		names := make([]string, len(e.Allowed))
		for i, s := range e.Allowed {
			names[i] = s.String()
		}
		allowed = strings.Join(names, ", ")
	}
	return fmt.Sprintf("stage %s is not allowed in state %s (allowed: %s)", e.Stage, e.State, allowed)
}

// InvalidEventError is returned by Check, Apply and Next when the stage or
// the status is not one of the API's values, so no lifecycle rule applies.
type InvalidEventError struct {
	Stage  insurance.Stage
	Status insurance.Status
}

func (e *InvalidEventError) Error() string {
	var problems []string
	if !e.Stage.Valid() {
		problems = append(problems, e.Stage.String()+" is not a stage")
	}
	if !e.Status.Valid() {
		problems = append(problems, e.Status.String()+" is not a status")
	}
	if len(problems) == 0 {
		// Only reachable if someone builds the error by hand from valid values.
		return fmt.Sprintf("invalid event (stage %s, status %s)", e.Stage, e.Status)
	}
	return strings.Join(problems, " and ")
}

// UnknownStateError is returned by ParseState, Restore and Next when a
// state's name is not one of the lifecycle states.
type UnknownStateError struct {
	Value string
}

func (e *UnknownStateError) Error() string {
	return fmt.Sprintf("unknown state %q (want one of %s)", e.Value, stateList())
}

// InvalidEndorsementsError is returned by Restore and Next when an
// endorsement count cannot belong to the state it comes with: it is negative,
// or it is positive before the policy was ever insured.
type InvalidEndorsementsError struct {
	State        State
	Endorsements int
}

func (e *InvalidEndorsementsError) Error() string {
	if e.Endorsements < 0 {
		return fmt.Sprintf("endorsement count %d is negative", e.Endorsements)
	}
	return fmt.Sprintf("endorsement count %d is impossible in state %s (only insured or cancelled policies have endorsements)",
		e.Endorsements, e.State)
}
