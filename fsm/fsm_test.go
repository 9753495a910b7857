package fsm

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// wantAllowed is the lifecycle table from the specification, written out by
// hand so the tests do not derive expectations from the code under test.
var wantAllowed = map[State][]insurance.Stage{
	StateNew:          {insurance.StagePreInsure},
	StatePreInsured:   {insurance.StageUnderwrite},
	StateUnderwritten: {insurance.StageInsure},
	StateInsured:      {insurance.StageCancel, insurance.StageEndorse},
	StateCancelled:    {},
}

// startEndorsements is the count each state is restored with in the table
// test: non-zero where endorsements are possible, so a test would notice a
// count that is reset or changed by the wrong event.
func startEndorsements(s State) int {
	if s == StateInsured || s == StateCancelled {
		return 2
	}
	return 0
}

func TestLifecycleTransitionTable(t *testing.T) {
	tests := []struct {
		from             State
		stage            insurance.Stage
		status           insurance.Status
		wantState        State
		wantEndorsements int
		wantErr          string // "" where the event is legal
	}{
		{StateNew, insurance.StagePreInsure, insurance.StatusSuccess, StatePreInsured, 0, ""},
		{StateNew, insurance.StagePreInsure, insurance.StatusFailure, StateNew, 0, ""},
		{StateNew, insurance.StageUnderwrite, insurance.StatusSuccess, StateNew, 0, "stage underwrite is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageUnderwrite, insurance.StatusFailure, StateNew, 0, "stage underwrite is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageInsure, insurance.StatusSuccess, StateNew, 0, "stage insure is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageInsure, insurance.StatusFailure, StateNew, 0, "stage insure is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageCancel, insurance.StatusSuccess, StateNew, 0, "stage cancel is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageCancel, insurance.StatusFailure, StateNew, 0, "stage cancel is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageEndorse, insurance.StatusSuccess, StateNew, 0, "stage endorse is not allowed in state new (allowed: pre_insure)"},
		{StateNew, insurance.StageEndorse, insurance.StatusFailure, StateNew, 0, "stage endorse is not allowed in state new (allowed: pre_insure)"},

		{StatePreInsured, insurance.StagePreInsure, insurance.StatusSuccess, StatePreInsured, 0, "stage pre_insure is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StagePreInsure, insurance.StatusFailure, StatePreInsured, 0, "stage pre_insure is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageUnderwrite, insurance.StatusSuccess, StateUnderwritten, 0, ""},
		{StatePreInsured, insurance.StageUnderwrite, insurance.StatusFailure, StatePreInsured, 0, ""},
		{StatePreInsured, insurance.StageInsure, insurance.StatusSuccess, StatePreInsured, 0, "stage insure is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageInsure, insurance.StatusFailure, StatePreInsured, 0, "stage insure is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageCancel, insurance.StatusSuccess, StatePreInsured, 0, "stage cancel is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageCancel, insurance.StatusFailure, StatePreInsured, 0, "stage cancel is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageEndorse, insurance.StatusSuccess, StatePreInsured, 0, "stage endorse is not allowed in state pre_insured (allowed: underwrite)"},
		{StatePreInsured, insurance.StageEndorse, insurance.StatusFailure, StatePreInsured, 0, "stage endorse is not allowed in state pre_insured (allowed: underwrite)"},

		{StateUnderwritten, insurance.StagePreInsure, insurance.StatusSuccess, StateUnderwritten, 0, "stage pre_insure is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StagePreInsure, insurance.StatusFailure, StateUnderwritten, 0, "stage pre_insure is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageUnderwrite, insurance.StatusSuccess, StateUnderwritten, 0, "stage underwrite is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageUnderwrite, insurance.StatusFailure, StateUnderwritten, 0, "stage underwrite is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageInsure, insurance.StatusSuccess, StateInsured, 0, ""},
		{StateUnderwritten, insurance.StageInsure, insurance.StatusFailure, StateUnderwritten, 0, ""},
		{StateUnderwritten, insurance.StageCancel, insurance.StatusSuccess, StateUnderwritten, 0, "stage cancel is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageCancel, insurance.StatusFailure, StateUnderwritten, 0, "stage cancel is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageEndorse, insurance.StatusSuccess, StateUnderwritten, 0, "stage endorse is not allowed in state underwritten (allowed: insure)"},
		{StateUnderwritten, insurance.StageEndorse, insurance.StatusFailure, StateUnderwritten, 0, "stage endorse is not allowed in state underwritten (allowed: insure)"},

		{StateInsured, insurance.StagePreInsure, insurance.StatusSuccess, StateInsured, 2, "stage pre_insure is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StagePreInsure, insurance.StatusFailure, StateInsured, 2, "stage pre_insure is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StageUnderwrite, insurance.StatusSuccess, StateInsured, 2, "stage underwrite is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StageUnderwrite, insurance.StatusFailure, StateInsured, 2, "stage underwrite is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StageInsure, insurance.StatusSuccess, StateInsured, 2, "stage insure is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StageInsure, insurance.StatusFailure, StateInsured, 2, "stage insure is not allowed in state insured (allowed: cancel, endorse)"},
		{StateInsured, insurance.StageCancel, insurance.StatusSuccess, StateCancelled, 2, ""},
		{StateInsured, insurance.StageCancel, insurance.StatusFailure, StateInsured, 2, ""},
		{StateInsured, insurance.StageEndorse, insurance.StatusSuccess, StateInsured, 3, ""},
		{StateInsured, insurance.StageEndorse, insurance.StatusFailure, StateInsured, 2, ""},

		{StateCancelled, insurance.StagePreInsure, insurance.StatusSuccess, StateCancelled, 2, "stage pre_insure is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StagePreInsure, insurance.StatusFailure, StateCancelled, 2, "stage pre_insure is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageUnderwrite, insurance.StatusSuccess, StateCancelled, 2, "stage underwrite is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageUnderwrite, insurance.StatusFailure, StateCancelled, 2, "stage underwrite is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageInsure, insurance.StatusSuccess, StateCancelled, 2, "stage insure is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageInsure, insurance.StatusFailure, StateCancelled, 2, "stage insure is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageCancel, insurance.StatusSuccess, StateCancelled, 2, "stage cancel is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageCancel, insurance.StatusFailure, StateCancelled, 2, "stage cancel is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageEndorse, insurance.StatusSuccess, StateCancelled, 2, "stage endorse is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
		{StateCancelled, insurance.StageEndorse, insurance.StatusFailure, StateCancelled, 2, "stage endorse is not allowed in state cancelled (allowed: none; the policy is cancelled)"},
	}

	// The table must cover every state × stage × status exactly once.
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[fmt.Sprintf("%s/%s/%s", tt.from, tt.stage, tt.status)] = true
	}
	if want := len(States()) * len(insurance.Stages()) * 2; len(tests) != want || len(seen) != want {
		t.Fatalf("table has %d rows (%d distinct), want %d", len(tests), len(seen), want)
	}

	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.from, tt.stage, tt.status), func(t *testing.T) {
			start := startEndorsements(tt.from)
			l, err := Restore(tt.from, start)
			if err != nil {
				t.Fatalf("Restore(%s, %d): %v", tt.from, start, err)
			}

			checkErr := l.Check(tt.stage, tt.status)
			if got := l.State(); got != tt.from {
				t.Fatalf("after Check state=%v, want %v (Check must change nothing)", got, tt.from)
			}
			if got := l.Endorsements(); got != start {
				t.Fatalf("after Check endorsements=%d, want %d (Check must change nothing)", got, start)
			}

			got, applyErr := l.Apply(tt.stage, tt.status)
			if got != tt.wantState {
				t.Errorf("Apply returned state=%v, want %v", got, tt.wantState)
			}
			if l.State() != tt.wantState {
				t.Errorf("State()=%v, want %v", l.State(), tt.wantState)
			}
			if l.Endorsements() != tt.wantEndorsements {
				t.Errorf("Endorsements()=%d, want %d", l.Endorsements(), tt.wantEndorsements)
			}

			if tt.wantErr == "" {
				if checkErr != nil {
					t.Fatalf("Check: %v, want nil", checkErr)
				}
				if applyErr != nil {
					t.Fatalf("Apply: %v, want nil", applyErr)
				}
				return
			}
			for name, err := range map[string]error{"Check": checkErr, "Apply": applyErr} {
				if err == nil {
					t.Fatalf("%s: nil error, want %q", name, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("%s error=%q, want %q", name, err.Error(), tt.wantErr)
				}
				var illegal *IllegalTransitionError
				if !errors.As(err, &illegal) {
					t.Fatalf("%s error %T is not an *IllegalTransitionError", name, err)
				}
				if illegal.State != tt.from || illegal.Stage != tt.stage || illegal.Status != tt.status {
					t.Errorf("%s error fields=(%v, %v, %v), want (%v, %v, %v)", name,
						illegal.State, illegal.Stage, illegal.Status, tt.from, tt.stage, tt.status)
				}
				if !slices.Equal(illegal.Allowed, wantAllowed[tt.from]) {
					t.Errorf("%s error Allowed=%v, want %v", name, illegal.Allowed, wantAllowed[tt.from])
				}
			}
		})
	}
}

func TestLifecycleWalk(t *testing.T) {
	l := New()
	steps := []struct {
		stage            insurance.Stage
		status           insurance.Status
		wantState        State
		wantEndorsements int
	}{
		{insurance.StagePreInsure, insurance.StatusFailure, StateNew, 0},
		{insurance.StagePreInsure, insurance.StatusSuccess, StatePreInsured, 0},
		{insurance.StageUnderwrite, insurance.StatusSuccess, StateUnderwritten, 0},
		{insurance.StageInsure, insurance.StatusFailure, StateUnderwritten, 0},
		{insurance.StageInsure, insurance.StatusSuccess, StateInsured, 0},
		{insurance.StageEndorse, insurance.StatusSuccess, StateInsured, 1},
		{insurance.StageEndorse, insurance.StatusFailure, StateInsured, 1},
		{insurance.StageEndorse, insurance.StatusSuccess, StateInsured, 2},
		{insurance.StageEndorse, insurance.StatusSuccess, StateInsured, 3},
		{insurance.StageCancel, insurance.StatusFailure, StateInsured, 3},
		{insurance.StageCancel, insurance.StatusSuccess, StateCancelled, 3},
	}
	for i, s := range steps {
		got, err := l.Apply(s.stage, s.status)
		if err != nil {
			t.Fatalf("step %d (%s %s): %v", i, s.stage, s.status, err)
		}
		if got != s.wantState || l.Endorsements() != s.wantEndorsements {
			t.Fatalf("step %d (%s %s): state=%v endorsements=%d, want %v %d",
				i, s.stage, s.status, got, l.Endorsements(), s.wantState, s.wantEndorsements)
		}
	}
	if got := l.Allowed(); len(got) != 0 {
		t.Fatalf("Allowed() after cancel=%v, want none", got)
	}
	for _, stage := range insurance.Stages() {
		for _, status := range []insurance.Status{insurance.StatusSuccess, insurance.StatusFailure} {
			if _, err := l.Apply(stage, status); err == nil {
				t.Errorf("Apply(%s, %s) in cancelled: nil error, want refusal", stage, status)
			}
		}
	}
	if l.State() != StateCancelled || l.Endorsements() != 3 {
		t.Fatalf("after refused events state=%v endorsements=%d, want cancelled 3", l.State(), l.Endorsements())
	}
}

func TestAllowedIsStable(t *testing.T) {
	for _, s := range States() {
		t.Run(string(s), func(t *testing.T) {
			l, err := Restore(s, 0)
			if err != nil {
				t.Fatalf("Restore(%s, 0): %v", s, err)
			}
			for i := range 100 {
				got := l.Allowed()
				if got == nil || !slices.Equal(got, wantAllowed[s]) {
					t.Fatalf("call %d: Allowed()=%#v, want %v (non-nil)", i, got, wantAllowed[s])
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	l := New()
	if l.State() != StateNew || l.Endorsements() != 0 {
		t.Fatalf("New(): state=%v endorsements=%d, want new 0", l.State(), l.Endorsements())
	}
}

func TestRestore(t *testing.T) {
	for _, s := range States() {
		n := startEndorsements(s) + 1 // 1 or 3: a count that is not a default
		if n == 1 {
			n = 0 // states before insured cannot carry endorsements
		}
		t.Run(string(s), func(t *testing.T) {
			l, err := Restore(s, n)
			if err != nil {
				t.Fatalf("Restore(%s, %d): %v", s, n, err)
			}
			if l.State() != s || l.Endorsements() != n {
				t.Fatalf("state=%v endorsements=%d, want %v %d", l.State(), l.Endorsements(), s, n)
			}
			if got := l.Allowed(); !slices.Equal(got, wantAllowed[s]) {
				t.Fatalf("Allowed()=%v, want %v", got, wantAllowed[s])
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name         string
			state        State
			endorsements int
			wantErr      string
			wantUnknown  bool // *UnknownStateError, else *InvalidEndorsementsError
		}{
			{"unknown state", "issued", 0,
				`restore lifecycle: unknown state "issued" (want one of new, pre_insured, underwritten, insured, cancelled)`, true},
			{"empty state", "", 0,
				`restore lifecycle: unknown state "" (want one of new, pre_insured, underwritten, insured, cancelled)`, true},
			{"wrong case", "Insured", 0,
				`restore lifecycle: unknown state "Insured" (want one of new, pre_insured, underwritten, insured, cancelled)`, true},
			{"negative count", StateInsured, -1,
				"restore lifecycle: endorsement count -1 is negative", false},
			{"endorsed before insured", StateUnderwritten, 1,
				"restore lifecycle: endorsement count 1 is impossible in state underwritten (only insured or cancelled policies have endorsements)", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				l, err := Restore(tt.state, tt.endorsements)
				if err == nil {
					t.Fatalf("Restore(%q, %d)=%v, want error %q", tt.state, tt.endorsements, l, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Fatalf("error=%q, want %q", err.Error(), tt.wantErr)
				}
				var unknown *UnknownStateError
				var badCount *InvalidEndorsementsError
				switch {
				case tt.wantUnknown && (!errors.As(err, &unknown) || unknown.Value != string(tt.state)):
					t.Fatalf("error %#v is not an *UnknownStateError for %q", err, tt.state)
				case !tt.wantUnknown && (!errors.As(err, &badCount) || badCount.Endorsements != tt.endorsements || badCount.State != tt.state):
					t.Fatalf("error %#v is not an *InvalidEndorsementsError for %s/%d", err, tt.state, tt.endorsements)
				}
			})
		}
	})
}

func TestInvalidEvent(t *testing.T) {
	tests := []struct {
		name    string
		stage   insurance.Stage
		status  insurance.Status
		wantErr string
	}{
		{"stage too high", 9, insurance.StatusSuccess, "stage(9) is not a stage"},
		{"stage zero", 0, insurance.StatusFailure, "stage(0) is not a stage"},
		{"status zero", insurance.StagePreInsure, 0, "status(0) is not a status"},
		{"status too high", insurance.StagePreInsure, 3, "status(3) is not a status"},
		{"both", -1, 7, "stage(-1) is not a stage and status(7) is not a status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New()
			checkErr := l.Check(tt.stage, tt.status)
			got, applyErr := l.Apply(tt.stage, tt.status)
			if got != StateNew || l.State() != StateNew || l.Endorsements() != 0 {
				t.Fatalf("after Apply state=%v (returned %v) endorsements=%d, want new 0", l.State(), got, l.Endorsements())
			}
			_, _, nextErr := Next(StateNew, 0, tt.stage, tt.status)
			for name, err := range map[string]error{"Check": checkErr, "Apply": applyErr, "Next": nextErr} {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("%s error=%v, want %q", name, err, tt.wantErr)
				}
				var invalid *InvalidEventError
				if !errors.As(err, &invalid) || invalid.Stage != tt.stage || invalid.Status != tt.status {
					t.Fatalf("%s error %#v is not an *InvalidEventError{%d, %d}", name, err, tt.stage, tt.status)
				}
			}
		})
	}
}

func TestNextAgreesWithLifecycle(t *testing.T) {
	// Include out-of-range enums so the two agree on refusals too.
	stages := append([]insurance.Stage{0}, insurance.Stages()...)
	statuses := []insurance.Status{0, insurance.StatusSuccess, insurance.StatusFailure, 3}
	for _, s := range States() {
		for _, n := range []int{0, startEndorsements(s)} {
			for _, stage := range stages {
				for _, status := range statuses {
					t.Run(fmt.Sprintf("%s/%d/%s/%s", s, n, stage, status), func(t *testing.T) {
						l, err := Restore(s, n)
						if err != nil {
							t.Fatalf("Restore(%s, %d): %v", s, n, err)
						}
						wantState, wantErr := l.Apply(stage, status)
						gotState, gotCount, gotErr := Next(s, n, stage, status)
						if gotState != wantState || gotCount != l.Endorsements() {
							t.Fatalf("Next=(%v, %d), Lifecycle=(%v, %d)", gotState, gotCount, wantState, l.Endorsements())
						}
						if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
							t.Fatalf("Next error=%v, Lifecycle error=%v", gotErr, wantErr)
						}
					})
				}
			}
		}
	}
}

func TestNextRejectsBadInput(t *testing.T) {
	tests := []struct {
		name         string
		state        State
		endorsements int
		wantErr      string
	}{
		{"unknown state", "gone", 0, `restore lifecycle: unknown state "gone" (want one of new, pre_insured, underwritten, insured, cancelled)`},
		{"negative count", StateInsured, -2, "restore lifecycle: endorsement count -2 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, n, err := Next(tt.state, tt.endorsements, insurance.StageEndorse, insurance.StatusSuccess)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error=%v, want %q", err, tt.wantErr)
			}
			if s != tt.state || n != tt.endorsements {
				t.Fatalf("Next returned (%v, %d), want its inputs (%v, %d)", s, n, tt.state, tt.endorsements)
			}
		})
	}
}
