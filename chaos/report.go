package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// phase is one timed stretch of the run.
type phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
}

// result is the run's JSON document.
type result struct {
	Command   string       `json:"command"`
	Date      time.Time    `json:"date"`
	Machine   string       `json:"machine"`
	OK        bool         `json:"ok"`
	Settings  settingsView `json:"settings"`
	Phases    []phase      `json:"phases"`
	Total     float64      `json:"total_seconds"`
	Figures   []figure     `json:"figures"`
	Failures  []string     `json:"failures,omitempty"`
	Unsettled []string     `json:"unsettled,omitempty"`
	Faults    []faultEvent `json:"fault_log"`
}

// settingsView is the run's configuration as reported.
type settingsView struct {
	Policies     int     `json:"policies"`
	Concurrency  int     `json:"concurrency"`
	Seed         uint64  `json:"seed"`
	FaultWindow  string  `json:"fault_window"`
	KillEvery    string  `json:"kill_every"`
	ISPErrorRate float64 `json:"isp_error_rate"`
	HangRate     float64 `json:"hang_rate"`
	HangDuration string  `json:"hang_duration"`
	CallTimeout  string  `json:"top_call_timeout"`
	BanSeconds   int     `json:"ban_seconds"`
	ParkEvery    int     `json:"park_every"`
	// TolerateAttemptGaps: attempt numbers without a row did not fail the run.
	TolerateAttemptGaps bool `json:"tolerate_attempt_gaps,omitempty"`
	// Issue 8's classes and TOP_QPS.
	TOPQPS         int    `json:"top_qps"`
	StoreOutages   int    `json:"store_outages"`
	StoreOutageFor string `json:"store_outage_for"`
	PauseFor       string `json:"pause_for"`
	RacePolicies   int    `json:"race_policies"`
	// StopRunEvery: a policy's run cancelled or terminated from Temporal
	// this often while the faults ran; "" when none were.
	StopRunEvery string `json:"stop_run_every,omitempty"`
}

func (r *result) total() time.Duration {
	var t time.Duration
	for _, p := range r.Phases {
		t += p.Duration
	}
	return t
}

// markdown renders the figures as the README's table, with the command,
// the date, the settings and the phase timings under it.
func (r *result) markdown() string {
	var b strings.Builder
	b.WriteString("| | figure | value | check |\n|---|---|---:|---|\n")
	lastGroup := ""
	for _, f := range r.Figures {
		group := ""
		if f.Group != lastGroup {
			group, lastGroup = f.Group, f.Group
		}
		check := ""
		if f.Want != nil {
			check = "must be 0: ok"
			if !f.OK {
				check = "**FAILED**: " + strings.Join(firstN(f.BizIDs, 5), ", ")
				if len(f.BizIDs) > 5 {
					check += fmt.Sprintf(" and %d more", len(f.BizIDs)-5)
				}
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", group, f.Name, f.Value, check)
	}
	s := r.Settings
	verdict := "Every invariant held"
	if !r.OK {
		verdict = fmt.Sprintf("%d invariants FAILED", len(r.Failures))
		if len(r.Failures) == 1 {
			verdict = "1 invariant FAILED"
		}
	}
	if s.TolerateAttemptGaps {
		verdict += " (attempt numbers without a row tolerated)"
	}
	stops := ""
	if s.StopRunEvery != "" {
		stops = fmt.Sprintf(", a policy's run cancelled or terminated from Temporal every %s", s.StopRunEvery)
	}
	fmt.Fprintf(&b, "\nMeasured by `%s` on %s (%s): %d policies at concurrency %d, seed %d; "+
		"for %s a worker SIGKILL every ~%s%s, one %d s code-7 ban and one Temporal restart; until every event was answered "+
		"%.0f%% isp.* errors and %.0f%% hangs of %s against a %s client timeout; every %dth policy parked; "+
		"two workers at TOP_QPS=%d (topsim enforcing it), %d store outages of %s, one worker frozen for %s, "+
		"operator retries and skips while the faults ran, then %d policies raced around run closes. %s.\n",
		r.Command, r.Date.Format("2006-01-02"), r.Machine, s.Policies, s.Concurrency, s.Seed,
		s.FaultWindow, s.KillEvery, stops, s.BanSeconds, s.ISPErrorRate*100, s.HangRate*100, s.HangDuration, s.CallTimeout,
		s.ParkEvery, s.TOPQPS, s.StoreOutages, s.StoreOutageFor, s.PauseFor, s.RacePolicies, verdict)
	parts := make([]string, len(r.Phases))
	for i, p := range r.Phases {
		parts[i] = fmt.Sprintf("%s %.1f s", p.Name, p.Seconds)
	}
	fmt.Fprintf(&b, "Phases: %s; total %.1f s.\n", strings.Join(parts, ", "), r.Total)
	return b.String()
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func writeJSON(path string, r *result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// The README section the table goes into.
const (
	readmeStart = "<!-- chaos:start -->"
	readmeEnd   = "<!-- chaos:end -->"
)

// sectionError is a README without the chaos section's markers, in order.
type sectionError struct{ Start, End string }

func (e *sectionError) Error() string {
	return fmt.Sprintf("no %s … %s section to write the table into", e.Start, e.End)
}

// replaceSection puts body between the chaos markers of readme.
func replaceSection(readme []byte, body string) ([]byte, error) {
	start := bytes.Index(readme, []byte(readmeStart))
	end := bytes.Index(readme, []byte(readmeEnd))
	if start < 0 || end < start {
		return nil, &sectionError{Start: readmeStart, End: readmeEnd}
	}
	var out bytes.Buffer
	out.Write(readme[:start+len(readmeStart)])
	out.WriteString("\n")
	out.WriteString(strings.TrimSpace(body))
	out.WriteString("\n")
	out.Write(readme[end:])
	return out.Bytes(), nil
}

func updateReadme(path string, body string) error {
	readme, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := replaceSection(readme, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
