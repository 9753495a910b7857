package main

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

// rssPoint is the worker's memory with a number of policies open.
type rssPoint struct {
	Open           int     `json:"open_policies"`
	RSSMiB         float64 `json:"rss_mib"`
	GrowthMiB      float64 `json:"growth_mib"`                      // RSS − RSS at 0 open
	GrowthPer1kMiB float64 `json:"growth_per_1k_open_mib"`          // growth per 1,000 open policies
	AtSeconds      float64 `json:"at_seconds"`                      // since the phase started
	Undelivered    int     `json:"undelivered_at_sample,omitempty"` // callbacks still in flight when sampled
}

// openFigures is the open-policies phase.
type openFigures struct {
	Target            int        `json:"target"`
	Opened            int        `json:"opened"`
	Failed            int        `json:"failed"`
	WorkflowCacheSize int        `json:"workflow_cache_size"`
	Points            []rssPoint `json:"points"`
	// GrowthRatio is growth(100%) ÷ growth(25%); linear growth gives 4.
	GrowthRatio float64 `json:"growth_ratio_100_25"`
	// Exponent is the local growth exponent between 25% and 100%:
	// log(growth(100%)/growth(25%)) / log 4; 1 is linear.
	Exponent  float64 `json:"growth_exponent"`
	SubLinear bool    `json:"sub_linear"`
	// Judged is false below minJudgedOpen policies, where a few MiB of
	// noise decide the ratio; the target is then not applied.
	Judged  bool     `json:"judged"`
	Seconds float64  `json:"seconds"`
	Resends int64    `json:"resends"`
	Errors  []string `json:"errors,omitempty"`
}

// subLinearLimit is the sub-linearity test: the growth from 0 to all open
// policies must be under subLinearLimit × the growth from 0 to a quarter of
// them. Linear growth gives 4; 3 demands that the last three quarters cost
// at least 25% less per policy than the first, i.e. a local growth exponent
// below log 3 / log 4 ≈ 0.79, so noise around linear growth cannot pass.
const subLinearLimit = 3.0

// minJudgedOpen is the fewest open policies the sub-linearity test is
// applied to.
const minJudgedOpen = 1000

// judgeGrowth fills GrowthRatio, Exponent and SubLinear from the points at
// 25% and 100% (Points[1] and Points[len-1]).
func judgeGrowth(f *openFigures) {
	if len(f.Points) < 3 {
		return
	}
	q, all := f.Points[1].GrowthMiB, f.Points[len(f.Points)-1].GrowthMiB
	switch {
	case q <= 0 && all <= 0:
		// No measurable growth at all: flat is sub-linear.
		f.GrowthRatio, f.Exponent, f.SubLinear = 0, 0, true
	case q <= 0:
		// Nothing for the first quarter but growth later: treat as linear
		// or worse rather than dividing by zero.
		f.GrowthRatio, f.Exponent, f.SubLinear = math.Inf(1), math.Inf(1), false
	default:
		r := all / q
		f.GrowthRatio = round2(r)
		if r > 0 {
			f.Exponent = round2(math.Log(r) / math.Log(4))
		}
		f.SubLinear = r < subLinearLimit
	}
	if math.IsInf(f.GrowthRatio, 0) {
		f.GrowthRatio, f.Exponent = -1, -1 // JSON has no infinity; -1 = undefined
	}
}

// openPolicies opens target policies (one pre_insure each, left open) at
// concurrency c and samples the worker's RSS with 0, 25%, 50% and 100% of
// them open, each time once their callbacks were delivered (up to a
// minute) and after a short settle, so the sample is the resting state.
//
// cacheSize is the worker's sticky workflow cache (WORKFLOW_CACHE_SIZE): up
// to that many open policy workflows stay in its memory between events;
// beyond it the least recently used are evicted and replayed from their
// history on their next event, which is what keeps RSS sub-linear.
func openPolicies(ctx context.Context, s *devstack.Stack, rl *receiptLog, prefix string, target, c, cacheSize int) (openFigures, error) {
	f := openFigures{Target: target, WorkflowCacheSize: cacheSize}
	start := time.Now()
	lcs := make([]lifecycle, target)
	for i := range lcs {
		lcs[i] = lifecycle{BizID: fmt.Sprintf("%s%06d", prefix, i), Steps: happySteps()[:1]}
	}
	marks := []int{0, target / 4, target / 2, target}
	var resends atomic.Int64
	send := ingressDriver([]reportFunc{s.Report}, &resends)
	var rss0 float64
	opened := 0
	bar := newBar(target, "open policies")
	for mi, m := range marks {
		if m > opened {
			runs := drive(ctx, lcs[opened:m], c, send, bar, nil)
			for _, r := range runs {
				if r.err != nil {
					f.Failed++
					if len(f.Errors) < 5 {
						f.Errors = append(f.Errors, r.err.Error())
					}
				}
			}
			opened = m
		}
		if ctx.Err() != nil {
			return f, ctx.Err()
		}
		undelivered := waitOpened(ctx, rl, lcs[:opened], time.Minute)
		time.Sleep(2 * time.Second)
		pid := s.WorkerPID()
		if pid == 0 {
			return f, fmt.Errorf("the worker is not running")
		}
		ps, err := readProc(pid)
		if err != nil {
			return f, err
		}
		rss := float64(ps.RSSKiB) / 1024
		if mi == 0 {
			rss0 = rss
		}
		p := rssPoint{Open: m, RSSMiB: round2(rss), GrowthMiB: round2(rss - rss0),
			AtSeconds: round2(time.Since(start).Seconds()), Undelivered: undelivered}
		if m > 0 {
			p.GrowthPer1kMiB = round2((rss - rss0) / (float64(m) / 1000))
		}
		f.Points = append(f.Points, p)
	}
	f.Opened = target - f.Failed
	f.Resends = resends.Load()
	f.Seconds = round2(time.Since(start).Seconds())
	judgeGrowth(&f)
	f.Judged = target >= minJudgedOpen
	return f, nil
}

// waitOpened waits until every policy in lcs has its pre_insure receipt or
// d passes, and returns how many have not.
func waitOpened(ctx context.Context, rl *receiptLog, lcs []lifecycle, d time.Duration) int {
	ids := make([]string, len(lcs))
	for i, l := range lcs {
		ids[i] = l.BizID
	}
	deadline := time.Now().Add(d)
	for {
		_ = rl.poll()
		missing := len(ids) - rl.count(ids, func(int) int { return 1 })
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
		time.Sleep(250 * time.Millisecond)
	}
}
