package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompletedRunWritesItsReadmeSection: the README's Performance
// section shows the latest completed run, and one that missed a target
// names the miss at its top.
func TestCompletedRunWritesItsReadmeSection(t *testing.T) {
	const before = "a\n" + readmeStart + "\nold section\n" + readmeEnd + "\nb\n"
	for _, tt := range []struct {
		name string
		pass bool
		want string
	}{
		{"a missed target", false, "- targets: **1 of 2 met; missed: all lifecycles completed (want 0 failed, measured 3.00)**"},
		{"every target met", true, "- targets: all 2 met"},
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
			if strings.Contains(string(got), "old section") || !strings.Contains(string(got), tt.want) {
				t.Fatalf("README does not hold the new section with %q:\n%s", tt.want, got)
			}
			if !strings.HasPrefix(string(got), "a\n"+readmeStart) || !strings.HasSuffix(string(got), readmeEnd+"\nb\n") {
				t.Fatalf("README outside the markers changed:\n%s", got)
			}
			if !strings.Contains(log.String(), "updated the Performance section") {
				t.Fatalf("the log does not say the README was written: %q", log.String())
			}
		})
	}
}
