package monitoring

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAlertRules is `make alerts-check`: the rule file parses with
// Prometheus's rule parser and every alert has for, severity and summary.
func TestAlertRules(t *testing.T) {
	rules, err := Rules(AlertsFile())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Source)
	}
	for _, want := range []string{"insuranceflow/InsuranceflowCallbacksParked", "insuranceflow/InsuranceflowParkedCountStale"} {
		if !slices.Contains(names, want) {
			t.Errorf("rules=%v, want %s among them", names, want)
		}
	}
}

func TestRulesRefusesAnIncompleteAlert(t *testing.T) {
	tests := []struct {
		name, rule, want string
	}{
		{"no for", "expr: up == 0\n        labels: {severity: page}\n        annotations: {summary: s}", "has no for"},
		{"no severity", "expr: up == 0\n        for: 5m\n        annotations: {summary: s}", "has no labels.severity"},
		{"no summary", "expr: up == 0\n        for: 5m\n        labels: {severity: page}", "has no annotations.summary"},
		{"bad PromQL", "expr: up ==\n        for: 5m\n        labels: {severity: page}\n        annotations: {summary: s}", "parse error"},
		{"unknown field", "expr: up == 0\n        for: 5m\n        severity: page\n        annotations: {summary: s}", "field severity not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alerts.yaml")
			body := "groups:\n  - name: g\n    rules:\n      - alert: A\n        " + tt.rule + "\n"
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Rules(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err=%v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestDashboard checks what Grafana needs to import the dashboard anywhere:
// the datasource variable, every panel query on it, and PromQL that parses
// and names only the project's and the SDK's metrics. The integration suite
// checks the names against a real scrape.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(DashboardFile())
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct{ Name, Type, Query string } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string               `json:"title"`
			Type       string               `json:"type"`
			Datasource struct{ UID string } `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion=%d, want at least 39", d.SchemaVersion)
	}
	if len(d.Templating.List) != 1 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("templating=%+v, want one Prometheus datasource variable named datasource", d.Templating.List)
	}
	for _, p := range d.Panels {
		if p.Type != "row" && p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q datasource=%q, want ${datasource}", p.Title, p.Datasource.UID)
		}
	}
	queries, err := DashboardQueries(DashboardFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		names, err := MetricNames(q.Expr)
		if err != nil {
			t.Errorf("%s: %v", q.Source, err)
			continue
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "insuranceflow_") && !strings.HasPrefix(n, "temporal_") {
				t.Errorf("%s names %s, neither the project's nor the Temporal SDK's", q.Source, n)
			}
		}
	}
}

func TestMetricNames(t *testing.T) {
	got, err := MetricNames(`histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="1"}[5m]))) / on() group_left b + {__name__="c"} + b`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a_bucket", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("names=%v, want %v", got, want)
	}
	if _, err := MetricNames("time() > 5"); err == nil {
		t.Fatal("an expression naming no metric passed")
	}
}

func TestUnexported(t *testing.T) {
	families := map[string]bool{"h_seconds": true, "c_total": true}
	queries := []Query{
		{"ok", `rate(h_seconds_bucket[5m]) + h_seconds_count + h_seconds_sum + c_total`},
		{"typo", `rate(c_totl[5m])`},
		{"not a histogram suffix", `h_seconds_max`},
	}
	got, err := Unexported(queries, families)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"typo: c_totl", "not a histogram suffix: h_seconds_max"}; !slices.Equal(got, want) {
		t.Fatalf("unexported=%v, want %v", got, want)
	}
}
