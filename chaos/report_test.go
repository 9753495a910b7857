package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	readme := "# title\n\ntext before\n\n" + readmeStart + "\nold table\n" + readmeEnd + "\n\ntext after\n"
	out, err := replaceSection([]byte(readme), "| new | table |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# title\n\ntext before\n\n" + readmeStart + "\n| new | table |\n" + readmeEnd + "\n\ntext after\n"
	if string(out) != want {
		t.Fatalf("replaced README =\n%s\nwant\n%s", out, want)
	}
	again, err := replaceSection(out, "| new | table |")
	if err != nil || string(again) != want {
		t.Fatalf("replacing twice changed the README: %q (%v)", again, err)
	}

	t.Run("no markers", func(t *testing.T) {
		_, err := replaceSection([]byte("# title\n"), "x")
		var se *sectionError
		if !errors.As(err, &se) || se.Start != readmeStart || !strings.Contains(err.Error(), readmeEnd) {
			t.Fatalf("err = %v, want a *sectionError naming both markers", err)
		}
	})
	t.Run("markers in the wrong order", func(t *testing.T) {
		_, err := replaceSection([]byte(readmeEnd+"\n"+readmeStart), "x")
		var se *sectionError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want a *sectionError", err)
		}
	})
}

func TestUpdateReadmeWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte("a\n"+readmeStart+"\n"+readmeEnd+"\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateReadme(path, "table"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "a\n"+readmeStart+"\ntable\n"+readmeEnd+"\nb\n" {
		t.Fatalf("README = %q", got)
	}
	if err := updateReadme(filepath.Join(t.TempDir(), "missing.md"), "x"); err == nil || !strings.Contains(err.Error(), "missing.md") {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
}

func TestMarkdownShowsFailuresWithTheirBizIDs(t *testing.T) {
	zero := int64(0)
	r := &result{
		Command: "go run ./chaos -short", Date: time.Date(2025, 4, 8, 0, 0, 0, 0, time.UTC), Machine: "linux/amd64, 2 CPUs",
		Settings: settingsView{Policies: 40, Concurrency: 12, Seed: 1, FaultWindow: "16s", KillEvery: "3s",
			ISPErrorRate: 0.3, HangRate: 0.1, HangDuration: "5s", CallTimeout: "2s", BanSeconds: 10, ParkEvery: 10,
			StopRunEvery: "2s"},
		Phases: []phase{{Name: "stack start", Seconds: 1.5}},
		Figures: []figure{
			info(groupLoad, "policies", 40),
			{Group: groupDelivery, Name: "lost", Value: 2, Want: &zero, BizIDs: []string{"CHN-a", "CHN-b"}},
			{Group: groupDelivery, Name: "out of order", Value: 0, Want: &zero, OK: true},
		},
		Failures: []string{"lost = 2"},
	}
	md := r.markdown()
	for _, want := range []string{
		"| load | policies | 40 |  |",
		"| delivery | lost | 2 | **FAILED**: CHN-a, CHN-b |",
		"|  | out of order | 0 | must be 0: ok |",
		"`go run ./chaos -short` on 2025-04-08",
		"1 invariant FAILED",
		"stack start 1.5 s",
		"a worker SIGKILL every ~3s, a policy's run cancelled or terminated from Temporal every 2s, one 10 s code-7 ban",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
