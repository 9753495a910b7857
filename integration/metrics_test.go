package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fetchMetrics reads the Prometheus endpoint at addr (host:port).
func fetchMetrics(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", addr, resp.Status, err)
	}
	return body
}

// scrapeLines reads the main worker's /metrics and hands each line to fn.
func scrapeLines(t *testing.T, fn func(line string)) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(fetchMetrics(t, env.MetricsAddr)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
}

// scrapeMetrics reads the main worker's /metrics into series → value, the
// series spelled as exported: name{labels} (labels in the exporter's order).
func scrapeMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	scrapeLines(t, func(line string) {
		if line == "" || strings.HasPrefix(line, "#") {
			return
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q has no value", line)
		}
		out[line[:i]] = v
	})
	return out
}

// sumOf adds up the series of metric name whose labels contain every one of
// labels (each `key="value"`).
func sumOf(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for series, v := range m {
		base, rest, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		matched := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				matched = false
			}
		}
		if matched {
			sum += v
		}
	}
	return sum
}

func TestMetricsMoveDuringALifecycle(t *testing.T) {
	before := scrapeMetrics(t)
	for _, name := range []string{
		"insuranceflow_events_accepted_total", "insuranceflow_events_rejected_total",
		"insuranceflow_callbacks_delivered_total", "insuranceflow_callbacks_retried_total",
		"insuranceflow_callbacks_parked_total", "insuranceflow_callback_duration_seconds_count",
		"insuranceflow_parked_callbacks", "insuranceflow_parked_callbacks_checked_timestamp_seconds",
	} {
		found := false
		for series := range before {
			if strings.HasPrefix(series, name) {
				found = true
			}
		}
		if !found {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	bizID := newBizID("MT")
	for i, step := range lifecycle {
		mustAccept(t, event(bizID, step.stage, step.status, i), int64(i+1), step.state)
	}
	// A duplicate and an illegal event are rejected, by reason.
	if code, _, _ := report(t, event(bizID, 1, 1, 0)); code != http.StatusOK {
		t.Fatalf("re-sent event: %d, want 200", code)
	}
	if code, _, _ := report(t, event(newBizID("MT"), 3, 1, 0)); code != http.StatusConflict {
		t.Fatalf("insure on a new policy: %d, want 409", code)
	}
	waitReceipts(t, bizID, len(lifecycle), 30*time.Second)

	delta := func(after map[string]float64, name string, labels ...string) float64 {
		return sumOf(after, name, labels...) - sumOf(before, name, labels...)
	}
	var after map[string]float64
	eventually(t, 10*time.Second, "5 deliveries counted", func() (bool, string) {
		after = scrapeMetrics(t)
		d := delta(after, "insuranceflow_callbacks_delivered_total")
		return d >= 5, fmt.Sprintf("delivered +%v", d)
	})
	time.Sleep(300 * time.Millisecond) // anything else still counting shows now
	after = scrapeMetrics(t)

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"accepted through the JSON API", "insuranceflow_events_accepted_total", []string{`api="json"`}, 5},
		{"duplicate", "insuranceflow_events_rejected_total", []string{`api="json"`, `reason="duplicate"`}, 1},
		{"illegal transition", "insuranceflow_events_rejected_total", []string{`api="json"`, `reason="illegal_transition"`}, 1},
		{"delivered", "insuranceflow_callbacks_delivered_total", nil, 5},
		{"TOP call latency observed", "insuranceflow_callback_duration_seconds_count", []string{`class="delivered"`}, 5},
		{"nothing retried", "insuranceflow_callbacks_retried_total", nil, 0},
		{"nothing parked", "insuranceflow_callbacks_parked_total", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := delta(after, tt.metric, tt.labels...); got != tt.want {
				t.Fatalf("%s%v moved by %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
	t.Run("the SDK's own metrics", func(t *testing.T) {
		got := delta(after, "temporal_activity_execution_latency_seconds_count", `activity_type="DeliverCallback"`)
		if got < 5 {
			t.Fatalf("temporal_activity_execution_latency_seconds_count{activity_type=DeliverCallback} moved by %v, want at least 5", got)
		}
		if sumOf(after, "temporal_workflow_task_execution_latency_seconds_count", `workflow_type="Policy"`) == 0 {
			t.Fatal("no workflow task latency for the Policy workflow")
		}
	})
}

func TestMetricsCountRetriesAndParks(t *testing.T) {
	t.Cleanup(func() { clearFaults(t) })

	t.Run("retried until delivered", func(t *testing.T) {
		clearFaults(t)
		before := scrapeMetrics(t)
		setFaults(t, `{"isp_error_rate":1}`)
		bizID := newBizID("MR")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		eventually(t, 20*time.Second, "two retried attempts counted", func() (bool, string) {
			m := scrapeMetrics(t)
			retried := sumOf(m, "insuranceflow_callbacks_retried_total", `class="retryable"`) - sumOf(before, "insuranceflow_callbacks_retried_total", `class="retryable"`)
			isp := sumOf(m, "insuranceflow_top_errors_total", `code="15"`, `sub_code_family="isp"`) - sumOf(before, "insuranceflow_top_errors_total", `code="15"`, `sub_code_family="isp"`)
			return retried >= 2 && isp >= 2, fmt.Sprintf("retried +%v, code 15 isp +%v", retried, isp)
		})
		clearFaults(t)
		waitReceipts(t, bizID, 1, 30*time.Second)
		eventually(t, 10*time.Second, "the delivery counted", func() (bool, string) {
			m := scrapeMetrics(t)
			d := sumOf(m, "insuranceflow_callbacks_delivered_total") - sumOf(before, "insuranceflow_callbacks_delivered_total")
			return d == 1, fmt.Sprintf("delivered +%v", d)
		})
		m := scrapeMetrics(t)
		retried := sumOf(m, "insuranceflow_callbacks_retried_total", `class="retryable"`) - sumOf(before, "insuranceflow_callbacks_retried_total", `class="retryable"`)
		failed := sumOf(m, "insuranceflow_callback_duration_seconds_count", `class="retryable"`) - sumOf(before, "insuranceflow_callback_duration_seconds_count", `class="retryable"`)
		if retried != failed {
			t.Errorf("retried +%v but %v retryable attempts timed; want one retry per failed attempt", retried, failed)
		}
	})

	t.Run("parked, counted, and the gauge follows", func(t *testing.T) {
		clearFaults(t)
		before := scrapeMetrics(t)
		gauge := before["insuranceflow_parked_callbacks"]
		setFaults(t, `{"reject_biz_id_pattern":"^MPK"}`)
		bizID := newBizID("MPK")
		mustAccept(t, event(bizID, 1, 1, 0), 1, "pre_insured")
		waitParked(t, bizID)
		eventually(t, 15*time.Second, "park counted and gauge up", func() (bool, string) {
			m := scrapeMetrics(t)
			parked := m["insuranceflow_callbacks_parked_total"] - before["insuranceflow_callbacks_parked_total"]
			return parked == 1 && m["insuranceflow_parked_callbacks"] == gauge+1,
				fmt.Sprintf("parked +%v, gauge %v (was %v)", parked, m["insuranceflow_parked_callbacks"], gauge)
		})
		m := scrapeMetrics(t)
		if d := m[`insuranceflow_top_rejections_total{fail_code="BIZ_NOT_FOUND"}`] - before[`insuranceflow_top_rejections_total{fail_code="BIZ_NOT_FOUND"}`]; d != 1 {
			t.Errorf("TOP rejections BIZ_NOT_FOUND moved by %v, want 1", d)
		}
		if d := sumOf(m, "insuranceflow_callbacks_retried_total") - sumOf(before, "insuranceflow_callbacks_retried_total"); d != 0 {
			t.Errorf("a rejection counted %v retries, want 0", d)
		}

		// An operator retry once TOP would take it: the gauge comes down as
		// soon as visibility says the callback left parking.
		setFaults(t, `{"reject_biz_id_pattern":"^NEVER"}`)
		if code := call(t, http.MethodPost, "/v1/policies/"+bizID+"/callbacks/retry", map[string]any{"seq": 1}, nil); code != http.StatusOK {
			t.Fatalf("retry: %d", code)
		}
		waitReceipts(t, bizID, 1, 20*time.Second)
		eventually(t, 15*time.Second, "gauge back down after the retry", func() (bool, string) {
			m := scrapeMetrics(t)
			return m["insuranceflow_parked_callbacks"] == gauge, fmt.Sprintf("gauge %v, want %v", m["insuranceflow_parked_callbacks"], gauge)
		})
		m = scrapeMetrics(t)
		if d := m["insuranceflow_callbacks_parked_total"] - before["insuranceflow_callbacks_parked_total"]; d != 1 {
			t.Errorf("parked total moved by %v after the retry, want still 1", d)
		}
		if d := m["insuranceflow_callbacks_delivered_total"] - before["insuranceflow_callbacks_delivered_total"]; d != 1 {
			t.Errorf("delivered moved by %v after the retry, want 1", d)
		}
	})
}
