package fsm_test

import (
	"fmt"

	"github.com/insuranceflow/insuranceflow/fsm"
	"github.com/insuranceflow/insuranceflow/insurance"
)

func ExampleLifecycle() {
	l := fsm.New()
	events := []struct {
		stage  insurance.Stage
		status insurance.Status
	}{
		{insurance.StagePreInsure, insurance.StatusSuccess},
		{insurance.StageUnderwrite, insurance.StatusFailure},
		{insurance.StageUnderwrite, insurance.StatusSuccess},
		{insurance.StageInsure, insurance.StatusSuccess},
		{insurance.StageEndorse, insurance.StatusSuccess},
		{insurance.StageCancel, insurance.StatusSuccess},
	}
	for _, e := range events {
		state, err := l.Apply(e.stage, e.status)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %s -> %s (endorsements %d, allowed %v)\n", e.stage, e.status, state, l.Endorsements(), l.Allowed())
	}
	// Output:
	// pre_insure success -> pre_insured (endorsements 0, allowed [underwrite])
	// underwrite failure -> pre_insured (endorsements 0, allowed [underwrite])
	// underwrite success -> underwritten (endorsements 0, allowed [insure])
	// insure success -> insured (endorsements 0, allowed [cancel endorse])
	// endorse success -> insured (endorsements 1, allowed [cancel endorse])
	// cancel success -> cancelled (endorsements 1, allowed [])
}

func ExampleLifecycle_Check() {
	l := fsm.New()
	fmt.Println(l.Check(insurance.StageUnderwrite, insurance.StatusSuccess))

	cancelled, err := fsm.Restore(fsm.StateCancelled, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cancelled.Check(insurance.StageEndorse, insurance.StatusSuccess))
	// Output:
	// stage underwrite is not allowed in state new (allowed: pre_insure)
	// stage endorse is not allowed in state cancelled (allowed: none; the policy is cancelled)
}

func ExampleNext() {
	state, endorsements, err := fsm.Next(fsm.StateInsured, 4, insurance.StageEndorse, insurance.StatusSuccess)
	fmt.Println(state, endorsements, err)
	// Output:
	// insured 5 <nil>
}
