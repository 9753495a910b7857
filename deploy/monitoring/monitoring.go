// Package monitoring reads the files an operator loads into Prometheus and
// Grafana — deploy/prometheus/alerts.yaml and deploy/grafana/insuranceflow.json
// — with Prometheus's own parsers, and names the metric families their
// queries use, so tests can hold them against what the worker exports.
package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Query is one PromQL expression and where it comes from: an alert's name or
// a dashboard panel's title.
type Query struct {
	Source string
	Expr   string
}

// Dir is the repository's deploy/ directory, found from this file's path,
// so tests in any package read the same files.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// AlertsFile and DashboardFile are the files this package reads.
func AlertsFile() string    { return filepath.Join(Dir(), "prometheus", "alerts.yaml") }
func DashboardFile() string { return filepath.Join(Dir(), "grafana", "insuranceflow.json") }

func promql() parser.Parser { return parser.NewParser(parser.Options{}) }

// Rules parses a Prometheus rule file with Prometheus's own rule parser
// (unknown fields are errors, as `promtool check rules` has them) and checks
// what this project asks of every alert: a `for`, labels.severity and
// annotations.summary. It returns every rule's expression.
func Rules(path string) ([]Query, error) {
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, promql(), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []Query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if r.Alert != "" {
				if r.For == 0 {
					errs = append(errs, fmt.Errorf("%s: alert %s has no for", path, name))
				}
				if r.Labels["severity"] == "" {
					errs = append(errs, fmt.Errorf("%s: alert %s has no labels.severity", path, name))
				}
				if r.Annotations["summary"] == "" {
					errs = append(errs, fmt.Errorf("%s: alert %s has no annotations.summary", path, name))
				}
			}
			out = append(out, Query{Source: g.Name + "/" + name, Expr: r.Expr})
		}
	}
	if len(out) == 0 {
		errs = append(errs, fmt.Errorf("%s: no rules", path))
	}
	return out, errors.Join(errs...)
}

// dashboard is the part of a Grafana dashboard this package reads.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Panels  []panel  `json:"panels"` // a collapsed row's
	Targets []target `json:"targets"`
}

type target struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

// grafanaVars are the Grafana variables a panel query may use, with a
// value PromQL accepts in their place.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// DashboardQueries reads a Grafana dashboard and returns every panel's
// query, Grafana's interval variables replaced so each parses as PromQL. A
// panel other than a row without a query is an error: it would show nothing.
func DashboardQueries(path string) ([]Query, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Query
	var errs []error
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				errs = append(errs, fmt.Errorf("%s: panel %q has no query", path, p.Title))
			}
			for _, t := range p.Targets {
				out = append(out, Query{Source: p.Title + "/" + t.RefID, Expr: grafanaVars.Replace(t.Expr)})
			}
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		errs = append(errs, fmt.Errorf("%s: no panel queries", path))
	}
	return out, errors.Join(errs...)
}

// MetricNames parses expr as PromQL and returns the metric names its
// selectors name, sorted and each once.
func MetricNames(expr string) ([]string, error) {
	e, err := promql().ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sel := range parser.ExtractSelectors(e) {
		for _, m := range sel {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				names = append(names, m.Value)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%q names no metric", expr)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// histogramSuffixes are the series a histogram or summary family exports
// besides its name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// Unexported returns the metric names of queries that are in none of the
// exported families (family names as a scrape's # TYPE lines spell them): a
// histogram family h covers h_bucket, h_sum and h_count. Each entry reads
// "source: name".
func Unexported(queries []Query, families map[string]bool) ([]string, error) {
	var missing []string
	for _, q := range queries {
		names, err := MetricNames(q.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.Source, err)
		}
		for _, n := range names {
			if !exported(n, families) {
				missing = append(missing, q.Source+": "+n)
			}
		}
	}
	return missing, nil
}

func exported(name string, families map[string]bool) bool {
	if families[name] {
		return true
	}
	for _, s := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, s); ok && families[base] {
			return true
		}
	}
	return false
}
