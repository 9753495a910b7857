package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/devstack"
)

// testTOPQPS is the suite's TOP_QPS: every worker of the stack runs with
// it and topsim enforces it as TOP would (code 7 on any call over it in a
// sliding second). TestMain checks after the suite that topsim never had
// to; TestTOPQPSAcrossTwoWorkers pushes a burst well over it through two
// more workers.
const testTOPQPS = 10

// checkTOPQPS is TestMain's check, after every test: over the whole suite
// topsim saw at most testTOPQPS calls in any sliding second and answered
// none with its flow-control code 7 (injected bans are counted apart).
func checkTOPQPS(ctx context.Context, s *devstack.Stack) error {
	st, err := s.TopsimStats(ctx)
	if err != nil {
		return err
	}
	if st.QPSLimited != 0 || st.MaxPerSecond > testTOPQPS {
		return fmt.Errorf("over the whole suite topsim answered %d calls with flow-control code 7 and saw %d calls within one second, want 0 and at most TOP_QPS=%d",
			st.QPSLimited, st.MaxPerSecond, testTOPQPS)
	}
	fmt.Printf("integration: TOP_QPS=%d held over the whole suite: at most %d calls in any sliding second, %d requests, no flow-control code 7\n",
		testTOPQPS, st.MaxPerSecond, st.Requests)
	return nil
}

// TestTOPQPSAcrossTwoWorkers starts two workers of their own task queue
// (sharing the stack's store, so its call limiter, with the main worker),
// reports 6×TOP_QPS first events through both ingresses at once, and checks
// that every callback reached topsim, no two calls more than TOP_QPS
// apart fell within one second at topsim, and topsim banned nothing.
func TestTOPQPSAcrossTwoWorkers(t *testing.T) {
	const queue = "qps-it"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var urls []string
	for _, name := range []string{"qps-worker-1", "qps-worker-2"} {
		url, stop, err := env.StartExtraWorker(ctx, name, []string{"TASK_QUEUE=" + queue})
		if err != nil {
			t.Fatalf("%s not ready: %v", name, err)
		}
		t.Cleanup(func() {
			if err := stop(); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
		})
		urls = append(urls, url)
	}

	const n = 6 * testTOPQPS
	ids := make([]string, n)
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		ids[i] = newBizID("QPS")
		wg.Go(func() {
			body, _ := json.Marshal(event(ids[i], 1, 1, 0))
			// A burst of Update-with-Starts can outlast the ingress's
			// TEMPORAL_CALL_TIMEOUT on a slow cluster (seen in CI on
			// Temporal with PostgreSQL): the 503 says "send again", and a
			// business system does; an earlier send that got through then
			// answers 200 with the original acceptance.
			for try := 0; try < 5; try++ {
				codes[i], _ = send(t, http.MethodPost, urls[i%2]+"/v1/insurance-results", testToken, body)
				if codes[i] != http.StatusServiceUnavailable {
					break
				}
				time.Sleep(time.Second)
			}
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusAccepted && c != http.StatusOK {
			t.Fatalf("report %d (%s): HTTP %d, want 202 (or 200 for a re-send after a 503)", i, ids[i], c)
		}
	}

	var got []devstack.Receipt
	eventually(t, 2*time.Minute, "every burst callback at topsim", func() (bool, string) {
		all, err := env.Callbacks(ctx, "")
		if err != nil {
			return false, err.Error()
		}
		got = got[:0]
		for _, r := range all {
			if slices.Contains(ids, r.BizID) {
				got = append(got, r)
			}
		}
		return len(got) >= n, fmt.Sprintf("%d of %d", len(got), n)
	})
	if len(got) != n {
		t.Fatalf("topsim took %d burst callbacks, want exactly %d (one each)", len(got), n)
	}
	// The burst's own arrivals, at topsim's clock: no TOP_QPS+1 of them
	// within a second.
	for i := 0; i+testTOPQPS < len(got); i++ {
		if d := got[i+testTOPQPS].ReceivedAt.Sub(got[i].ReceivedAt); d <= time.Second {
			t.Fatalf("callbacks %d and %d of the burst reached topsim %v apart: %d within one second, want at most TOP_QPS=%d",
				i, i+testTOPQPS, d, testTOPQPS+1, testTOPQPS)
		}
	}
	// Everything topsim saw, the rest of the suite's calls included.
	st, err := env.TopsimStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.QPSLimited != 0 || st.MaxPerSecond > testTOPQPS {
		t.Fatalf("topsim stats: qps_limited=%d max_per_second=%d, want 0 and at most %d", st.QPSLimited, st.MaxPerSecond, testTOPQPS)
	}
	span := got[len(got)-1].ReceivedAt.Sub(got[0].ReceivedAt)
	t.Logf("%d callbacks through two workers in %v (%.2f/s, TOP_QPS=%d); topsim max per sliding second %d",
		n, span.Round(time.Millisecond), float64(n-1)/span.Seconds(), testTOPQPS, st.MaxPerSecond)
}
