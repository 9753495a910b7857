package metrics

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSDKHandlerExportsTheSDKsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	sdk, err := NewSDKHandler(reg, nil)
	if err != nil {
		t.Fatalf("NewSDKHandler: %v", err)
	}
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })

	// What the SDK does with its handler: tagged counters and timers.
	h := sdk.Handler.WithTags(map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"})
	h.Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(2)
	h.Timer("temporal_request_latency").Record(300 * time.Millisecond)
	h.Gauge("temporal_num_pollers").Update(2)

	labels := map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}
	t.Run("counter", func(t *testing.T) {
		f := family(t, reg, "temporal_request_total")
		if got := series(t, f, labels).GetCounter().GetValue(); got != 3 {
			t.Fatalf("temporal_request_total = %v, want 3", got)
		}
	})
	t.Run("timer in seconds with second buckets", func(t *testing.T) {
		f := family(t, reg, "temporal_request_latency_seconds")
		hist := series(t, f, labels).GetHistogram()
		if hist.GetSampleCount() != 1 || hist.GetSampleSum() != 0.3 {
			t.Fatalf("latency count=%d sum=%v, want 1 and 0.3", hist.GetSampleCount(), hist.GetSampleSum())
		}
		var bounds []float64
		for _, b := range hist.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
			if want := b.GetUpperBound() >= 0.5; (b.GetCumulativeCount() == 1) != want {
				t.Errorf("bucket le=%v holds %d, want the 0.3 s sample only from 0.5 up", b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
		if !slices.Equal(bounds, SDKBuckets()) {
			t.Errorf("buckets = %v, want %v", bounds, SDKBuckets())
		}
	})
	t.Run("gauge", func(t *testing.T) {
		if got := series(t, family(t, reg, "temporal_num_pollers"), labels).GetGauge().GetValue(); got != 2 {
			t.Fatalf("temporal_num_pollers = %v, want 2", got)
		}
	})

	t.Run("beside the project's metrics on one registry", func(t *testing.T) {
		if _, err := New(reg); err != nil {
			t.Fatalf("New on the SDK's registry: %v", err)
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("gather both: %v", err)
		}
	})
}
