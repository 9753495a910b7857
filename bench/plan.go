package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/insuranceflow/insuranceflow/insurance"
)

// step is one event of a planned lifecycle.
type step struct {
	Stage  insurance.Stage
	Status insurance.Status
}

// lifecycle is one policy's planned events, in the order they are sent.
type lifecycle struct {
	BizID string
	Steps []step
}

// happySteps is the 5-event lifecycle: pre_insure, underwrite, insure,
// one endorse, cancel.
func happySteps() []step {
	return []step{
		{insurance.StagePreInsure, insurance.StatusSuccess},
		{insurance.StageUnderwrite, insurance.StatusSuccess},
		{insurance.StageInsure, insurance.StatusSuccess},
		{insurance.StageEndorse, insurance.StatusSuccess},
		{insurance.StageCancel, insurance.StatusSuccess},
	}
}

// retrySteps is the 6-event lifecycle with a failed underwrite that is then
// retried successfully (a failure is legal where the success is and leaves
// the state unchanged).
func retrySteps() []step {
	s := happySteps()
	return append(s[:1:1], append([]step{{insurance.StageUnderwrite, insurance.StatusFailure}}, s[1:]...)...)
}

// plan builds n lifecycles; a share of them (chosen by seed) has the
// failure-then-retry step. The same seed plans the same run, so the
// baseline gets exactly the same number of updates per lifecycle.
func plan(prefix string, n int, failureShare float64, seed uint64) []lifecycle {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]lifecycle, n)
	for i := range out {
		steps := happySteps()
		if rng.Float64() < failureShare {
			steps = retrySteps()
		}
		out[i] = lifecycle{BizID: fmt.Sprintf("%s%06d", prefix, i), Steps: steps}
	}
	return out
}

// eventTimeBase is the time_of_occurrence of a lifecycle's first event;
// later events are a minute apart, so time never goes backwards.
var eventTimeBase = time.Date(2025, 4, 8, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))

// body is the ingress request for step k of l.
func (l lifecycle) body(k int) []byte {
	st := l.Steps[k]
	b, _ := json.Marshal(map[string]any{
		"biz_id":             l.BizID,
		"stage":              int(st.Stage),
		"status":             int(st.Status),
		"time_of_occurrence": eventTimeBase.Add(time.Duration(k) * time.Minute).Format(time.DateTime),
		"insurance_type":     int(insurance.TypeHomeProperty),
	})
	return b
}
