package simulator

import "strings"

// FieldProblem is one thing wrong with one configuration field.
type FieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (p FieldProblem) String() string { return p.Field + " " + p.Problem }

// ConfigError is returned by New when its Config is unusable. It names every
// bad field, never a secret's value.
type ConfigError struct {
	Problems []FieldProblem
}

func (e *ConfigError) Error() string {
	return "simulator config: " + joinProblems(e.Problems)
}

// FaultsError is returned by SetFaults (and New, inside a ConfigError) when
// a Faults value is invalid: a rate outside [0,1], rates that add up to more
// than 1, a negative duration or a pattern that does not compile.
type FaultsError struct {
	Problems []FieldProblem
}

func (e *FaultsError) Error() string {
	return "invalid faults: " + joinProblems(e.Problems)
}

func joinProblems(ps []FieldProblem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}
