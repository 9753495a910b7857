package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFailedRunWritesNoReadmeSection: the README's Performance section is
// the project's claim that its targets hold, so a run that missed one
// leaves the section as it was (the figures are in bench-results/) and
// says so.
func TestFailedRunWritesNoReadmeSection(t *testing.T) {
	const before = "a\n" + readmeStart + "\nold section\n" + readmeEnd + "\nb\n"
	for _, tt := range []struct {
		name  string
		pass  bool
		wrote bool
	}{
		{"a missed target", false, false},
		{"every target met", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "README.md")
			if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			res := &results{
				Command: "go run ./bench", FinishedAt: time.Date(2025, 4, 8, 10, 0, 0, 0, time.UTC),
				Targets: []target{{Name: "throughput ÷ baseline", Want: "≥ 0.8", Got: 0.9, Pass: true},
					{Name: "all lifecycles completed", Want: "0 failed", Got: 3, Pass: tt.pass}},
			}
			var log bytes.Buffer
			if err := publishReadme(flags{updateReadme: true, readme: path}, res, &log); err != nil {
				t.Fatalf("publishReadme: %v", err)
			}
			got, _ := os.ReadFile(path)
			if wrote := string(got) != before; wrote != tt.wrote {
				t.Fatalf("README written=%v, want %v:\n%s", wrote, tt.wrote, got)
			}
			if !tt.wrote && !strings.Contains(log.String(), "README not updated") {
				t.Fatalf("the log does not say the README was left alone: %q", log.String())
			}
		})
	}
}
