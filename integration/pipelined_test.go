package integration

import (
	"fmt"
	"testing"
	"time"
)

// TestPipelinedCallbacksKeepTheirOrder: events reported while the callback
// ahead of them is on its way to TOP (slowed here to 300 ms) have their
// callbacks pipelined, on a real server and worker: scheduled at once and
// held in the worker until the store shows the one ahead delivered. TOP
// still gets them one by one, in order, and the worker counts the
// pipelined ones that went on.
func TestPipelinedCallbacksKeepTheirOrder(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })
	const series = `insuranceflow_callbacks_pipelined_total{turn="go"}`
	before := scrapeMetrics(t)[series]
	setFaults(t, `{"latency":"300ms"}`)
	bizID := newBizID("PIP")
	mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
	mustAccept(t, event(bizID, 2, 1, 1), 2, "underwritten")
	mustAccept(t, event(bizID, 3, 1, 2), 3, "insured")
	mustAccept(t, event(bizID, 5, 1, 3), 4, "insured")
	got := waitReceipts(t, bizID, 4, 30*time.Second)
	assertStages(t, got, "pre_insure", "underwrite", "insure", "endorse")
	eventually(t, 10*time.Second, "pipelined callbacks counted as go", func() (bool, string) {
		n := scrapeMetrics(t)[series] - before
		return n >= 1, fmt.Sprintf("%.0f", n)
	})
}
