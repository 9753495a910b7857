// Command qps measures what TOP_QPS guarantees (`make bench-qps`, part of
// `make bench`). It starts the whole stack as real processes with package
// devstack — the pinned Temporal dev server, topsim enforcing the limit as
// TOP does (code 7 on any call over it in a sliding second), and -workers
// worker processes on one task queue sharing one store — drives complete
// policy lifecycles through the workers' HTTP ingresses far faster than
// the limit lets callbacks out, and reports from topsim's own receipts and
// stats: the achieved callback rate against the limit, the most callbacks
// within any sliding second, and how many calls topsim had to ban. With
// -update-readme it writes the README's TOP_QPS section; no figure is
// typed in by hand.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

const (
	readmeStart = "<!-- qps:start -->"
	readmeEnd   = "<!-- qps:end -->"
)

type flags struct {
	qps, workers, policies, concurrency int
	binDir, temporalBin, readme, out    string
	margin                              time.Duration
	updateReadme                        bool
}

// results is everything the run measured; written as JSON beside the
// other benchmark results.
type results struct {
	Command         string    `json:"command"`
	FinishedAt      time.Time `json:"finished_at"`
	QPS             int       `json:"top_qps"`
	Workers         int       `json:"workers"`
	Policies        int       `json:"policies"`
	Callbacks       int       `json:"callbacks"`
	SpanSeconds     float64   `json:"span_seconds"`     // first to last receipt
	Rate            float64   `json:"rate_per_second"`  // (callbacks-1) / span
	Ratio           float64   `json:"rate_over_limit"`  // Rate / QPS
	MaxReceipts1s   int       `json:"max_receipts_1s"`  // most receipts within any sliding second
	MaxRequests1s   int       `json:"max_requests_1s"`  // topsim's max_per_second: every request
	QPSLimited      int64     `json:"qps_limited"`      // topsim's flow-control code-7 answers
	Bans            int64     `json:"injected_bans"`    // none are injected here
	TopsimRequests  int64     `json:"topsim_requests"`  //
	DriveSeconds    float64   `json:"drive_seconds"`    // reporting every event
	TotalSeconds    float64   `json:"total_seconds"`    // from the first report to the last receipt
	LoadAvgStart    string    `json:"load_avg_start"`   //
	CPUs            int       `json:"cpus"`             //
	Pass            bool      `json:"pass"`             //
	PassDescription string    `json:"pass_description"` //
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qps:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var f flags
	fs := flag.NewFlagSet("qps", flag.ContinueOnError)
	fs.IntVar(&f.qps, "qps", 5, "TOP_QPS of every worker, and topsim's -qps-limit")
	fs.IntVar(&f.workers, "workers", 2, "worker processes on the task queue")
	fs.IntVar(&f.policies, "policies", 100, "policy lifecycles of 5 events each (5 callbacks)")
	fs.IntVar(&f.concurrency, "c", 20, "lifecycles driven at once")
	fs.DurationVar(&f.margin, "margin", 0, "TOP_QPS_MARGIN of every worker (0: the worker's default)")
	fs.StringVar(&f.binDir, "bin-dir", "", "prebuilt worker, topsim and starter (default: build them)")
	fs.StringVar(&f.temporalBin, "temporal-bin", os.Getenv("TEMPORAL_BIN"), "the pinned Temporal CLI (env TEMPORAL_BIN)")
	fs.StringVar(&f.out, "out", "bench-results/qps.json", "where the results go")
	fs.StringVar(&f.readme, "readme", "README.md", "README whose TOP_QPS section -update-readme rewrites")
	fs.BoolVar(&f.updateReadme, "update-readme", false, "write the results into the README")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.qps < 1 || f.workers < 1 || f.policies < 1 || f.concurrency < 1 {
		return errors.New("-qps, -workers, -policies and -c must be at least 1")
	}
	res := results{
		Command: fmt.Sprintf("go run ./bench/qps -qps=%d -workers=%d -policies=%d -c=%d%s", f.qps, f.workers, f.policies, f.concurrency, marginFlag(f)),
		QPS:     f.qps, Workers: f.workers, Policies: f.policies, CPUs: runtime.NumCPU(), LoadAvgStart: loadAvg(),
	}

	s, err := devstack.Start(ctx, devstack.Options{
		TemporalBin: f.temporalBin,
		BinDir:      f.binDir,
		TOPQPS:      f.qps,
		WorkerEnv:   workerEnv(f),
		Log:         os.Stderr,
	})
	if err != nil {
		return err
	}
	defer s.Stop()
	ingresses := []string{s.IngressURL}
	for i := 2; i <= f.workers; i++ {
		url, _, err := s.StartExtraWorker(ctx, fmt.Sprintf("worker-%d", i), nil)
		if err != nil {
			return err
		}
		ingresses = append(ingresses, url)
	}

	// Drive: every policy's five events in order, c policies at once,
	// spread over the workers' ingresses.
	prefix := fmt.Sprintf("QPS%d", time.Now().UnixMilli())
	ids := make([]string, f.policies)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	start := time.Now()
	if err := drive(ctx, s.Token, ingresses, ids, f.concurrency); err != nil {
		return err
	}
	res.DriveSeconds = time.Since(start).Seconds()
	want := 5 * f.policies
	fmt.Fprintf(os.Stderr, "qps: %d events accepted in %.1fs; waiting for %d callbacks at TOP_QPS=%d\n", want, res.DriveSeconds, want, f.qps)

	var got []devstack.Receipt
	deadline := time.Now().Add(time.Duration(want/f.qps)*3*time.Second + 2*time.Minute)
	for {
		all, err := s.Callbacks(ctx, "")
		if err != nil {
			return err
		}
		got = got[:0]
		for _, r := range all {
			if strings.HasPrefix(r.BizID, prefix) {
				got = append(got, r)
			}
		}
		if len(got) >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d callbacks reached topsim by the deadline", len(got), want)
		}
		time.Sleep(time.Second)
	}
	st, err := s.TopsimStats(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(got, func(a, b devstack.Receipt) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	res.Callbacks = len(got)
	span := got[len(got)-1].ReceivedAt.Sub(got[0].ReceivedAt)
	res.SpanSeconds = span.Seconds()
	res.Rate = float64(len(got)-1) / span.Seconds()
	res.Ratio = res.Rate / float64(f.qps)
	res.MaxReceipts1s = maxInSecond(got)
	res.MaxRequests1s = st.MaxPerSecond
	res.QPSLimited, res.Bans, res.TopsimRequests = st.QPSLimited, st.Bans, st.Requests
	res.TotalSeconds = got[len(got)-1].ReceivedAt.Sub(start).Seconds()
	res.FinishedAt = time.Now().UTC()
	minRate := 0.9 * float64(f.qps)
	res.Pass = res.Rate >= minRate && res.MaxRequests1s <= f.qps && res.QPSLimited == 0
	res.PassDescription = fmt.Sprintf("rate ≥ %.2f/s (0.9 × TOP_QPS), at most %d calls in any sliding second, no flow-control code 7", minRate, f.qps)

	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.MkdirAll("bench-results", 0o755); err == nil {
		_ = os.WriteFile(f.out, append(b, '\n'), 0o644)
	}
	section := markdown(res)
	fmt.Println(section)
	if f.updateReadme {
		if err := updateReadme(f.readme, section); err != nil {
			return err
		}
	}
	if !res.Pass {
		return errors.New("the TOP_QPS targets were not met (see above)")
	}
	return nil
}

// drive reports each policy's lifecycle, c policies at once. An answer
// other than 202 is retried a few times (a 503 while Temporal is busy), as
// a business system would; anything else fails the run.
func drive(ctx context.Context, token string, ingresses, ids []string, c int) error {
	client := &http.Client{Timeout: 60 * time.Second}
	stages := []int{1, 2, 3, 5, 4} // pre_insure, underwrite, insure, endorse, cancel
	work := make(chan int)
	errc := make(chan error, c)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range work {
				base := ingresses[i%len(ingresses)]
				for k, stage := range stages {
					body, _ := json.Marshal(map[string]any{
						"biz_id": ids[i], "policy_number": "P-" + ids[i], "insurance_company": 1,
						"stage": stage, "status": 1, "insurance_type": 1,
						"time_of_occurrence": time.Date(2025, 4, 8, 9, k, 0, 0, time.UTC).Format("2006-01-02 15:04:05"),
					})
					if err := post(ctx, client, base, token, body); err != nil {
						errc <- fmt.Errorf("%s stage %d: %w", ids[i], stage, err)
						return
					}
				}
			}
		})
	}
	var err error
feed:
	for i := range ids {
		select {
		case work <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	if err == nil {
		err = <-errc
	}
	return err
}

func post(ctx context.Context, client *http.Client, base, token string, body []byte) error {
	var last string
	for range 10 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/insurance-results", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
			if resp.StatusCode != http.StatusServiceUnavailable {
				return fmt.Errorf("answered %s", last)
			}
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("gave up after 10 tries: %s", last)
}

// maxInSecond is the most receipts within any sliding second (a window
// (t-1s, t] ending at a receipt), as topsim counts its max_per_second.
func maxInSecond(rs []devstack.Receipt) int {
	best, lo := 0, 0
	for hi := range rs {
		for !rs[lo].ReceivedAt.After(rs[hi].ReceivedAt.Add(-time.Second)) {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func markdown(r results) string {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", readmeStart)
	fmt.Fprintf(&b, "| figure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| TOP_QPS (every worker; topsim's -qps-limit) | %d |\n", r.QPS)
	fmt.Fprintf(&b, "| worker processes on the task queue, sharing one SQLite store | %d |\n", r.Workers)
	fmt.Fprintf(&b, "| callbacks received by topsim (%d lifecycles of 5 events) | %d |\n", r.Policies, r.Callbacks)
	fmt.Fprintf(&b, "| first to last callback | %.1f s |\n", r.SpanSeconds)
	fmt.Fprintf(&b, "| **achieved callback rate** (callbacks − 1 over that span) | **%.2f/s** |\n", r.Rate)
	fmt.Fprintf(&b, "| achieved rate ÷ TOP_QPS | %.3f |\n", r.Ratio)
	fmt.Fprintf(&b, "| **most callbacks within any sliding second** (topsim's receipts) | **%d** |\n", r.MaxReceipts1s)
	fmt.Fprintf(&b, "| most requests of any kind within any sliding second (topsim's `max_per_second`) | %d |\n", r.MaxRequests1s)
	fmt.Fprintf(&b, "| **code-7 answers from topsim's flow control** (`qps_limited`) | **%d** |\n", r.QPSLimited)
	fmt.Fprintf(&b, "| requests topsim answered | %d |\n", r.TopsimRequests)
	fmt.Fprintf(&b, "| events reported (all accepted) in | %.1f s |\n", r.DriveSeconds)
	fmt.Fprintf(&b, "\nTarget: %s — **%s**.\n\n", r.PassDescription, verdict)
	fmt.Fprintf(&b, "Measured by `%s` (`make bench-qps`; `-update-readme` wrote this) on %s, %d CPUs, 1-minute load average %s at the start.\n",
		r.Command, r.FinishedAt.Format("2006-01-02 15:04 UTC"), r.CPUs, r.LoadAvgStart)
	fmt.Fprintf(&b, "%s", readmeEnd)
	return b.String()
}

func updateReadme(path, section string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	si, ei := bytes.Index(doc, []byte(readmeStart)), bytes.Index(doc, []byte(readmeEnd))
	if si < 0 || ei < si {
		return fmt.Errorf("%s: no %s … %s section", path, readmeStart, readmeEnd)
	}
	out := append(append(append([]byte{}, doc[:si]...), section...), doc[ei+len(readmeEnd):]...)
	return os.WriteFile(path, out, 0o644)
}

func workerEnv(f flags) []string {
	if f.margin == 0 {
		return nil
	}
	return []string{"TOP_QPS_MARGIN=" + f.margin.String()}
}

func marginFlag(f flags) string {
	if f.margin == 0 {
		return ""
	}
	return " -margin=" + f.margin.String()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}
