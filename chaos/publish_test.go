package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedRunWritesNoReadmeTable: the README's table is the project's
// claim that every invariant held, so a run with a failed invariant leaves
// it as it was (its figures are in the JSON results) and says so.
func TestFailedRunWritesNoReadmeTable(t *testing.T) {
	const before = "a\n" + readmeStart + "\nold table\n" + readmeEnd + "\nb\n"
	for _, tt := range []struct {
		name  string
		ok    bool
		wrote bool
	}{
		{"failed run", false, false},
		{"passing run", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "README.md")
			if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			res := &result{OK: tt.ok, Failures: []string{"lost: accepted events never received"}}
			if tt.ok {
				res.Failures = nil
			}
			err := publishReadme(config{UpdateReadme: true, ReadmePath: path}, res, &stderr)
			if err != nil {
				t.Fatalf("publishReadme: %v", err)
			}
			got, _ := os.ReadFile(path)
			if wrote := string(got) != before; wrote != tt.wrote {
				t.Fatalf("README written=%v, want %v:\n%s", wrote, tt.wrote, got)
			}
			if !tt.wrote && !strings.Contains(stderr.String(), "README not updated") {
				t.Fatalf("stderr does not say the README was left alone: %q", stderr.String())
			}
		})
	}
}
