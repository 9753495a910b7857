package fsm_test

import (
	"testing"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

// BenchmarkCheck is the Update validator's question: is this event legal now?
func BenchmarkCheck(b *testing.B) {
	cases := []struct {
		name  string
		stage insurance.Stage
		want  bool
	}{
		{name: "legal", stage: insurance.StageEndorse, want: true},
		{name: "illegal", stage: insurance.StagePreInsure, want: false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			l, err := fsm.Restore(fsm.StateInsured, 1)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				err = l.Check(tc.stage, insurance.StatusSuccess)
			}
			if (err == nil) != tc.want {
				b.Fatalf("Check(%s) = %v, want legal=%v", tc.stage, err, tc.want)
			}
		})
	}
}

// BenchmarkApply applies an endorsement (a self-loop, so it can repeat).
func BenchmarkApply(b *testing.B) {
	l, err := fsm.Restore(fsm.StateInsured, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := l.Apply(insurance.StageEndorse, insurance.StatusSuccess); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if l.Endorsements() != n {
		b.Fatalf("endorsements=%d, want %d", l.Endorsements(), n)
	}
}

// BenchmarkLifecycle runs a whole 5-event lifecycle on a new Lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	steps := []insurance.Stage{insurance.StagePreInsure, insurance.StageUnderwrite, insurance.StageInsure, insurance.StageEndorse, insurance.StageCancel}
	b.ReportAllocs()
	var l *fsm.Lifecycle
	for b.Loop() {
		l = fsm.New()
		for _, s := range steps {
			if _, err := l.Apply(s, insurance.StatusSuccess); err != nil {
				b.Fatal(err)
			}
		}
	}
	if l.State() != fsm.StateCancelled {
		b.Fatalf("state=%s, want %s", l.State(), fsm.StateCancelled)
	}
}

// BenchmarkNext is Apply without a Lifecycle, as the policy client uses it.
func BenchmarkNext(b *testing.B) {
	b.ReportAllocs()
	var st fsm.State
	var err error
	for b.Loop() {
		st, _, err = fsm.Next(fsm.StateUnderwritten, 0, insurance.StageInsure, insurance.StatusSuccess)
	}
	if err != nil || st != fsm.StateInsured {
		b.Fatalf("Next = %s, %v; want %s", st, err, fsm.StateInsured)
	}
}

// BenchmarkRestore rebuilds a lifecycle from its record, as each workflow
// run and each status answer does.
func BenchmarkRestore(b *testing.B) {
	b.ReportAllocs()
	var l *fsm.Lifecycle
	var err error
	for b.Loop() {
		l, err = fsm.Restore(fsm.StateInsured, 2)
	}
	if err != nil || l.State() != fsm.StateInsured || l.Endorsements() != 2 {
		b.Fatalf("Restore = %v, %v", l, err)
	}
}
