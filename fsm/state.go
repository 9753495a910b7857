package fsm

import (
	"slices"
	"strings"
)

// State is where a policy stands in its lifecycle. Its value is the string
// the workflow records in search attributes and query results.
type State string

// The lifecycle states, in lifecycle order.
const (
	StateNew          State = "new"          // no result reported yet
	StatePreInsured   State = "pre_insured"  // 预保 succeeded
	StateUnderwritten State = "underwritten" // 核保 succeeded
	StateInsured      State = "insured"      // 投保 succeeded; endorsements keep it here
	StateCancelled    State = "cancelled"    // 退保 succeeded; nothing more may happen
)

// States returns every state in lifecycle order.
func States() []State {
	return []State{StateNew, StatePreInsured, StateUnderwritten, StateInsured, StateCancelled}
}

// ParseState accepts a state's name ("underwritten"); anything else is an
// *UnknownStateError that lists the valid names.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", &UnknownStateError{Value: s}
	}
	return st, nil
}

// Valid reports whether s is one of the lifecycle states.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// Terminal reports whether no event can ever be legal in s again.
func (s State) Terminal() bool { return s == StateCancelled }

// stateList is "new, pre_insured, ..." for error messages.
func stateList() string {
	names := make([]string, 0, len(States()))
	for _, s := range States() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}
