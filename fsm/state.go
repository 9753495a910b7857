package fsm

// State is a policy lifecycle state.
type State string
