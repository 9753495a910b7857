package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestCallbacksRunEagerly: each callback a workflow task schedules is handed
// to the worker in the server's answer to that task (eager dispatch), with no
// trip through the matching service, which cost ~45 ms per FIFO step. It
// takes both halves: the server's system.enableActivityEagerExecution (the
// dynamic config every dev server gets from deploy/temporal-dynamicconfig.yaml)
// and a worker that asks for it, which the SDK does only while the worker
// sets no task-queue rate limit. The suite's workers run with TOP_QPS set
// (testTOPQPS), so this also holds the design that gives both: TOP_QPS is
// the worker's own limiter, not Temporal's. The server counts each eager
// dispatch.
func TestCallbacksRunEagerly(t *testing.T) {
	before := serverCounter(t, "activity_eager_execution")
	bizID := newBizID("EAG")
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
	mustAccept(t, event(bizID, 3, 1, 2), 3, "insured")
	waitReceipts(t, bizID, 3, 30*time.Second)
	// Other tests' callbacks only add to the count.
	eventually(t, 10*time.Second, "3 eager dispatches counted", func() (bool, string) {
		n := serverCounter(t, "activity_eager_execution") - before
		return n >= 3, fmt.Sprintf("%.0f", n)
	})
}

// serverCounter is a counter of the Temporal server's Prometheus endpoint,
// summed over its label sets (its exporter may add _total to the name).
func serverCounter(t *testing.T, name string) float64 {
	t.Helper()
	if env.TemporalMetricsAddr == "" {
		t.Fatal("the Temporal server's metrics address is unknown: with an external server, set IT_TEMPORAL_METRICS_ADDR")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(fetchMetrics(t, env.TemporalMetricsAddr)))
	if err != nil {
		t.Fatalf("the Temporal server's metrics: %v", err)
	}
	var sum float64
	for _, n := range []string{name, name + "_total"} {
		for _, m := range families[n].GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
