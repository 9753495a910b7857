package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/insuranceflow/insuranceflow/insurance"
	"github.com/insuranceflow/insuranceflow/metrics"
	"github.com/insuranceflow/insuranceflow/top"
)

const (
	routerAppKey    = "isv-app-key"
	routerAppSecret = "router-secret-value-246"
)

func TestConfigMetricsAndTOPEndpoint(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "router-secret")
	if err := os.WriteFile(secretFile, []byte(routerAppSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("off by default", func(t *testing.T) {
		cfg, err := parse(t, nil, minimal())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MetricsAddr != "" || cfg.IngressTOPAppKey != "" || !cfg.IngressTOPAppSecret.IsZero() {
			t.Fatalf("metrics %q, TOP endpoint key %q: want both off", cfg.MetricsAddr, cfg.IngressTOPAppKey)
		}
	})
	t.Run("environment", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "METRICS_ADDR", "127.0.0.1:9090",
			"INGRESS_TOP_APP_KEY", " "+routerAppKey+" ", "INGRESS_TOP_APP_SECRET", routerAppSecret))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MetricsAddr != "127.0.0.1:9090" || cfg.MetricsParkedInterval != metrics.DefaultParkedInterval {
			t.Errorf("metrics %q every %v, want 127.0.0.1:9090 every %v", cfg.MetricsAddr, cfg.MetricsParkedInterval, metrics.DefaultParkedInterval)
		}
		if cfg.IngressTOPAppKey != routerAppKey || cfg.IngressTOPAppSecret.Reveal() != routerAppSecret {
			t.Errorf("TOP endpoint key %q, want %q with the secret", cfg.IngressTOPAppKey, routerAppKey)
		}
	})
	t.Run("flags and secret file", func(t *testing.T) {
		cfg, err := parse(t, []string{"--metrics-addr", ":0", "--metrics-parked-interval", "2s",
			"--ingress-top-app-key", routerAppKey, "--ingress-top-app-secret-file", secretFile}, minimal())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MetricsAddr != ":0" || cfg.MetricsParkedInterval != 2*time.Second || cfg.IngressTOPAppSecret.Reveal() != routerAppSecret {
			t.Errorf("metrics %q every %v, secret set %v; want :0 every 2s and the file's secret without its newline",
				cfg.MetricsAddr, cfg.MetricsParkedInterval, !cfg.IngressTOPAppSecret.IsZero())
		}
	})
	t.Run("worker only ignores the TOP endpoint", func(t *testing.T) {
		cfg, err := parse(t, []string{"--no-ingress"}, with(minimal(), "INGRESS_TOP_APP_KEY", routerAppKey))
		if err != nil {
			t.Fatalf("parseConfig: %v", err)
		}
		if cfg.IngressTOPAppKey != "" {
			t.Errorf("TOP endpoint key %q read without the ingress", cfg.IngressTOPAppKey)
		}
	})

	bad := []struct {
		name    string
		args    []string
		env     map[string]string
		varName string
		problem string
	}{
		{"metrics address", nil, with(minimal(), "METRICS_ADDR", "9090"), "METRICS_ADDR", `"9090" is not host:port`},
		{"metrics interval", nil, with(minimal(), "METRICS_ADDR", ":0", "METRICS_PARKED_INTERVAL", "0s"), "METRICS_PARKED_INTERVAL", "not a positive duration"},
		{"metrics interval flag", []string{"--metrics-addr", ":0", "--metrics-parked-interval", "soon"}, minimal(), "--metrics-parked-interval", `"soon" is not a positive duration`},
		{"key without secret", nil, with(minimal(), "INGRESS_TOP_APP_KEY", routerAppKey), "INGRESS_TOP_APP_SECRET", "is required when INGRESS_TOP_APP_KEY is set"},
		{"secret without key", nil, with(minimal(), "INGRESS_TOP_APP_SECRET", routerAppSecret), "INGRESS_TOP_APP_KEY", "is required when INGRESS_TOP_APP_SECRET is set"},
		{"secret twice", nil, with(minimal(), "INGRESS_TOP_APP_KEY", routerAppKey, "INGRESS_TOP_APP_SECRET", routerAppSecret,
			"INGRESS_TOP_APP_SECRET_FILE", secretFile), "INGRESS_TOP_APP_SECRET", "not both"},
		{"missing secret file", nil, with(minimal(), "INGRESS_TOP_APP_KEY", routerAppKey,
			"INGRESS_TOP_APP_SECRET_FILE", filepath.Join(t.TempDir(), "absent")), "INGRESS_TOP_APP_SECRET_FILE", "cannot read the secret"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.args, tt.env)
			wantConfigError(t, err, tt.varName, tt.problem)
			if strings.Contains(err.Error(), routerAppSecret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}

	t.Run("the log shows the key, not the secret", func(t *testing.T) {
		cfg, err := parse(t, nil, with(minimal(), "METRICS_ADDR", ":0", "INGRESS_TOP_APP_KEY", routerAppKey, "INGRESS_TOP_APP_SECRET", routerAppSecret))
		if err != nil {
			t.Fatal(err)
		}
		cfg.LogFormat = "json"
		var out bytes.Buffer
		newLogger(cfg, &out).Info("starting", "config", cfg)
		logged := out.String() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
		if strings.Contains(logged, routerAppSecret) {
			t.Fatalf("logged config shows the secret: %s", logged)
		}
		for _, want := range []string{`"ingress_top_app_key":"` + routerAppKey + `"`, `"ingress_top_app_secret_set":true`, `"metrics_addr":":0"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("logged config lacks %s: %s", want, out.String())
			}
		}
	})
}

// countingFrontend is the fake frontend that also counts workflows, as the
// parked callbacks gauge asks visibility to.
type countingFrontend struct {
	*frontend
	mu      sync.Mutex
	parked  int64
	queries []string
}

func (f *countingFrontend) CountWorkflowExecutions(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, req.GetQuery())
	return &workflowservice.CountWorkflowExecutionsResponse{Count: f.parked}, nil
}

func (f *countingFrontend) setParked(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parked = n
}

func startCountingFrontend(t *testing.T, f *countingFrontend) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	operatorservice.RegisterOperatorServiceServer(srv, f)
	f.health = health.NewServer()
	f.health.SetServingStatus("temporal.api.workflowservice.v1.WorkflowService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, f.health)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

var metricsURL = regexp.MustCompile(`"msg":"metrics listening","url":"(http://127\.0\.0\.1:\d+/metrics)"`)

// scrape returns the value of the series spelled exactly as line's prefix
// (name and labels), or -1 when the scrape lacks it.
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("series %s has value %q", series, rest)
			}
			return v
		}
	}
	return -1
}

func TestServeMetricsAndTOPEndpoint(t *testing.T) {
	f := &countingFrontend{frontend: &frontend{attributes: allKeywords()}, parked: 3}
	cfg, err := parseConfig([]string{"--no-worker"}, env(map[string]string{
		"TEMPORAL_ADDRESS":        startCountingFrontend(t, f),
		"DATABASE_URL":            "sqlite://" + filepath.Join(t.TempDir(), "flow.db"),
		"HTTP_ADDR":               "127.0.0.1:0",
		"INGRESS_TOKENS":          ingressToken,
		"LOG_FORMAT":              "json",
		"METRICS_ADDR":            "127.0.0.1:0",
		"METRICS_PARKED_INTERVAL": "20ms",
		"INGRESS_TOP_APP_KEY":     routerAppKey,
		"INGRESS_TOP_APP_SECRET":  routerAppSecret,
	}), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	logs := &logSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, newLogger(cfg, logs), noOTel) }()
	base := waitForURL(t, logs, done)
	var metricsAt string
	for deadline := time.Now().Add(10 * time.Second); metricsAt == ""; time.Sleep(10 * time.Millisecond) {
		if m := metricsURL.FindStringSubmatch(logs.String()); m != nil {
			metricsAt = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no metrics listening line; logs: %s", logs.String())
		}
	}

	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached within 10s", what)
			}
		}
	}
	t.Run("parked callbacks gauge follows visibility", func(t *testing.T) {
		eventually("gauge at 3", func() bool { return scrape(t, metricsAt, metrics.NameParkedCallbacks) == 3 })
		f.setParked(1)
		eventually("gauge at 1", func() bool { return scrape(t, metricsAt, metrics.NameParkedCallbacks) == 1 })
		f.mu.Lock()
		query := f.queries[0]
		f.mu.Unlock()
		if query != metrics.ParkedQuery() {
			t.Errorf("visibility query = %q, want %q", query, metrics.ParkedQuery())
		}
	})
	t.Run("the SDK's own metrics", func(t *testing.T) {
		// The client's calls so far (system info, search attributes,
		// counts) are the SDK's requests.
		series := `temporal_request_attempt_total{activity_type="none",client_name="temporal_go",namespace="default",` +
			`operation="CountWorkflowExecutions",task_queue="none",worker_type="none",workflow_type="none"}`
		if v := scrape(t, metricsAt, series); v < 1 {
			t.Errorf("%s = %v, want at least 1", series, v)
		}
	})
	t.Run("the TOP endpoint is served and reports its events", func(t *testing.T) {
		rejected := func() float64 {
			var sum float64
			for _, reason := range []string{"internal", "unavailable"} {
				sum += max(scrape(t, metricsAt, `insuranceflow_events_rejected_total{api="top",reason="`+reason+`"}`), 0)
			}
			return sum
		}
		before := rejected()
		c, err := top.New(top.Config{GatewayURL: base + "/router/rest", AppKey: routerAppKey, AppSecret: routerAppSecret})
		if err != nil {
			t.Fatal(err)
		}
		// The fake frontend cannot start workflows, so the signed event
		// reaches the policy client and fails there, as a service error.
		out := c.Callback(context.Background(), insurance.Result{BizID: "24010900100YSKSSG", Stage: insurance.StagePreInsure,
			Status: insurance.StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: insurance.TypeHomeProperty})
		if out.Class != top.ClassRetryable || out.Code != top.CodeRemoteServiceError || !strings.HasPrefix(out.SubCode, "isp.") {
			t.Fatalf("signed event: %s, want a retryable code 15 isp.* answer", out.Summary())
		}
		if got := rejected(); got != before+1 {
			t.Errorf("events rejected for the TOP API = %v, want %v", got, before+1)
		}
		wrong, err := top.New(top.Config{GatewayURL: base + "/router/rest", AppKey: routerAppKey, AppSecret: "not-the-secret"})
		if err != nil {
			t.Fatal(err)
		}
		out = wrong.Callback(context.Background(), insurance.Result{BizID: "24010900100YSKSSG", Stage: insurance.StagePreInsure,
			Status: insurance.StatusSuccess, TimeOfOccurrence: "2025-04-08 09:55:00", InsuranceType: insurance.TypeHomeProperty})
		if out.Code != top.CodeInvalidSignature {
			t.Fatalf("wrongly signed event: %s, want code 25", out.Summary())
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get(metricsAt); err == nil {
		t.Error("metrics are still served after shutdown")
	}
	if strings.Contains(logs.String(), routerAppSecret) {
		t.Error("the logs contain the TOP endpoint's secret")
	}
}
