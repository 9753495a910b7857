// Package fsm owns the policy lifecycle: which insurance-result stages are
// legal in which state, the state a policy moves to when a stage succeeds,
// and how many endorsements it has had. The rules live in one transition
// table that drives a looplab/fsm machine and the Mermaid diagram in the
// README alike.
//
// The package runs inside Temporal workflow code, so everything here is
// deterministic: no callbacks, no goroutines, no clocks and no dependence on
// map iteration order.
package fsm

import (
	"context"
	"errors"
	"fmt"

	looplab "github.com/looplab/fsm"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// transition is one edge of the lifecycle: a successful report of stage moves
// a policy from one state to another.
type transition struct {
	stage    insurance.Stage
	from, to State
}

// transitions is the single definition of the lifecycle. The looplab machine
// and Diagram are both built from it, so the README cannot drift from the
// rules the workflow enforces. Failure reports are not listed: they are legal
// exactly where the same stage's success is and never move the state.
func transitions() []transition {
	return []transition{
		{insurance.StagePreInsure, StateNew, StatePreInsured},
		{insurance.StageUnderwrite, StatePreInsured, StateUnderwritten},
		{insurance.StageInsure, StateUnderwritten, StateInsured},
		{insurance.StageCancel, StateInsured, StateCancelled},
		// A self-loop: an endorsement changes the policy, not its state; it
		// is counted instead.
		{insurance.StageEndorse, StateInsured, StateInsured},
	}
}

// newMachine builds a looplab machine in state current from transitions().
// It registers no callbacks, so Event has no side effects beyond the state.
func newMachine(current State) *looplab.FSM {
	defs := transitions()
	events := make(looplab.Events, 0, len(defs))
	for _, t := range defs {
		events = append(events, looplab.EventDesc{
			Name: t.stage.String(),
			Src:  []string{string(t.from)},
			Dst:  string(t.to),
		})
	}
	return looplab.NewFSM(string(current), events, nil)
}

// Lifecycle is one policy's lifecycle: its state and its endorsement count.
// Create it with New or Restore; the zero value is not usable. A Lifecycle is
// not safe for concurrent use, which workflow code never needs.
type Lifecycle struct {
	machine      *looplab.FSM
	endorsements int
}

// New returns the lifecycle of a policy nothing has been reported for.
func New() *Lifecycle {
	return &Lifecycle{machine: newMachine(StateNew)}
}

// Restore rebuilds a lifecycle from a recorded state and endorsement count,
// as a workflow does after continue-as-new. It refuses an unknown state, a
// negative count, and endorsements on a policy that was never insured, since
// any of those means the record is corrupt.
func Restore(state State, endorsements int) (*Lifecycle, error) {
	if !state.Valid() {
		return nil, fmt.Errorf("restore lifecycle: %w", &UnknownStateError{Value: string(state)})
	}
	if endorsements < 0 || (endorsements > 0 && state != StateInsured && state != StateCancelled) {
		return nil, fmt.Errorf("restore lifecycle: %w", &InvalidEndorsementsError{State: state, Endorsements: endorsements})
	}
	return &Lifecycle{machine: newMachine(state), endorsements: endorsements}, nil
}

// State returns the current state.
func (l *Lifecycle) State() State { return State(l.machine.Current()) }

// Endorsements returns how many successful endorsements have been applied.
func (l *Lifecycle) Endorsements() int { return l.endorsements }

// Allowed returns the stages legal in the current state, in lifecycle order.
// It asks the machine about each stage in turn rather than using looplab's
// AvailableTransitions, whose order follows map iteration.
func (l *Lifecycle) Allowed() []insurance.Stage {
	allowed := make([]insurance.Stage, 0, len(insurance.Stages()))
	for _, stage := range insurance.Stages() {
		if l.machine.Can(stage.String()) {
			allowed = append(allowed, stage)
		}
	}
	return allowed
}

// Check reports whether a result with this stage and status may be applied
// now, without changing anything. It returns nil, an *InvalidEventError when
// the stage or status is not an API value, or an *IllegalTransitionError.
func (l *Lifecycle) Check(stage insurance.Stage, status insurance.Status) error {
	if !stage.Valid() || !status.Valid() {
		return &InvalidEventError{Stage: stage, Status: status}
	}
	if !l.machine.Can(stage.String()) {
		return &IllegalTransitionError{State: l.State(), Stage: stage, Status: status, Allowed: l.Allowed()}
	}
	return nil
}

// Apply records a result. A success moves the state along its transition (an
// endorsement stays in insured and adds one to the count); a failure changes
// nothing. It returns the state afterwards; when the event is refused (see
// Check) the lifecycle is unchanged and the current state is returned with
// the error.
func (l *Lifecycle) Apply(stage insurance.Stage, status insurance.Status) (State, error) {
	if err := l.Check(stage, status); err != nil {
		return l.State(), err
	}
	if status == insurance.StatusFailure {
		return l.State(), nil
	}
	// context.Background has no Done channel, so looplab's WithCancel starts
	// no goroutine, keeping this safe in workflow code.
	err := l.machine.Event(context.Background(), stage.String())
	var noTransition looplab.NoTransitionError
	// looplab reports a self-loop (endorse) as NoTransitionError; for this
	// lifecycle that is a successful event.
	if err != nil && !(errors.As(err, &noTransition) && noTransition.Err == nil) {
		return l.State(), fmt.Errorf("apply stage %s in state %s: %w", stage, l.State(), err)
	}
	if stage == insurance.StageEndorse {
		l.endorsements++
	}
	return l.State(), nil
}

// Next is Apply without a Lifecycle: the state and endorsement count after a
// result is applied to the given ones. On error it returns its inputs
// unchanged, together with an *UnknownStateError or *InvalidEndorsementsError
// (bad inputs) or the error Apply would return.
func Next(state State, endorsements int, stage insurance.Stage, status insurance.Status) (State, int, error) {
	l, err := Restore(state, endorsements)
	if err != nil {
		return state, endorsements, err
	}
	next, err := l.Apply(stage, status)
	if err != nil {
		return state, endorsements, err
	}
	return next, l.Endorsements(), nil
}
