package fsm

import (
	"errors"
	"slices"
	"testing"
)

func TestStatesOrder(t *testing.T) {
	want := []State{"new", "pre_insured", "underwritten", "insured", "cancelled"}
	if got := States(); !slices.Equal(got, want) {
		t.Fatalf("States()=%v, want %v", got, want)
	}
}

func TestParseState(t *testing.T) {
	for _, s := range States() {
		t.Run(string(s), func(t *testing.T) {
			got, err := ParseState(string(s))
			if err != nil || got != s {
				t.Fatalf("ParseState(%q)=(%v, %v), want (%v, nil)", s, got, err, s)
			}
		})
	}
	for _, in := range []string{"", "NEW", "pre-insured", "3", " insured"} {
		t.Run("invalid "+in, func(t *testing.T) {
			got, err := ParseState(in)
			want := `unknown state "` + in + `" (want one of new, pre_insured, underwritten, insured, cancelled)`
			if err == nil || err.Error() != want {
				t.Fatalf("ParseState(%q)=(%q, %v), want error %q", in, got, err, want)
			}
			if got != "" {
				t.Fatalf("ParseState(%q) state=%q, want empty", in, got)
			}
			var unknown *UnknownStateError
			if !errors.As(err, &unknown) || unknown.Value != in {
				t.Fatalf("error %#v is not an *UnknownStateError{%q}", err, in)
			}
		})
	}
}

func TestStateValidAndTerminal(t *testing.T) {
	tests := []struct {
		state        State
		wantValid    bool
		wantTerminal bool
	}{
		{StateNew, true, false},
		{StatePreInsured, true, false},
		{StateUnderwritten, true, false},
		{StateInsured, true, false},
		{StateCancelled, true, true},
		{"", false, false},
		{"surrendered", false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			if got := tt.state.Valid(); got != tt.wantValid {
				t.Errorf("Valid()=%v, want %v", got, tt.wantValid)
			}
			if got := tt.state.Terminal(); got != tt.wantTerminal {
				t.Errorf("Terminal()=%v, want %v", got, tt.wantTerminal)
			}
		})
	}
}
