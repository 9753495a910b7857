package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/insuranceflow/insuranceflow/deploy/monitoring"
)

// scrapeFamilies reads the metric family names the main worker's /metrics
// declares (its # TYPE lines).
func scrapeFamilies(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	scrapeLines(t, func(line string) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			out[name] = true
		}
	})
	return out
}

// TestDashboardAndAlertsNameExportedMetrics drives every kind of traffic a
// panel shows — a delivered callback, a rejected event, a retried TOP error,
// a TOP rejection — then fails if a query in deploy/grafana or
// deploy/prometheus names a metric family the worker does not export.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })
	clearFaults(t)

	// Delivered, and an illegal event rejected.
	ok := newBizID("MD")
	mustAccept(t, event(ok, 1, 1, 0), 1, "pre_insured")
	waitReceipts(t, ok, 1, 30*time.Second)
	if code, _, _ := report(t, event(newBizID("MD"), 3, 1, 0)); code != http.StatusConflict {
		t.Fatalf("insure on a new policy: %d, want 409", code)
	}

	// A TOP error_response, retried until delivered.
	retried := newBizID("MD")
	before := scrapeMetrics(t)
	setFaults(t, `{"isp_error_rate":1}`)
	mustAccept(t, event(retried, 1, 1, 0), 1, "pre_insured")
	eventually(t, 20*time.Second, "a TOP error counted", func() (bool, string) {
		d := sumOf(scrapeMetrics(t), "insuranceflow_top_errors_total") - sumOf(before, "insuranceflow_top_errors_total")
		return d >= 1, fmt.Sprintf("TOP errors +%v", d)
	})
	clearFaults(t)
	waitReceipts(t, retried, 1, 30*time.Second)

	// A call_success=false answer parks the callback; an operator skips it,
	// so no parked callback outlives the test.
	parked := newBizID("MDPK")
	setFaults(t, `{"reject_biz_id_pattern":"^MDPK"}`)
	mustAccept(t, event(parked, 1, 1, 0), 1, "pre_insured")
	waitParked(t, parked)
	clearFaults(t)
	if code := call(t, http.MethodPost, "/v1/policies/"+parked+"/callbacks/skip", map[string]any{"seq": 1, "reason": "dashboards test"}, nil); code != http.StatusOK {
		t.Fatalf("skip: %d", code)
	}

	families := scrapeFamilies(t)
	rules, err := monitoring.Rules(monitoring.AlertsFile())
	if err != nil {
		t.Fatal(err)
	}
	panels, err := monitoring.DashboardQueries(monitoring.DashboardFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file    string
		queries []monitoring.Query
	}{{"deploy/prometheus/alerts.yaml", rules}, {"deploy/grafana/insuranceflow.json", panels}} {
		t.Run(c.file, func(t *testing.T) {
			missing, err := monitoring.Unexported(c.queries, families)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range missing {
				t.Errorf("%s names a metric the worker does not export (%s)", c.file, m)
			}
		})
	}
}
