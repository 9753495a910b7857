package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// update rewrites the README's lifecycle diagram instead of comparing it:
// go test ./fsm -run TestREADMEDiagramIsCurrent -update
var update = flag.Bool("update", false, "rewrite the lifecycle diagram section of ../README.md")

const (
	readmePath        = "../README.md"
	diagramStartMark  = "<!-- lifecycle-diagram:start -->"
	diagramEndMark    = "<!-- lifecycle-diagram:end -->"
	diagramUpdateHint = "go test ./fsm -run TestREADMEDiagramIsCurrent -update"
)

func TestDiagram(t *testing.T) {
	got := Diagram()

	t.Run("deterministic", func(t *testing.T) {
		for i := range 50 {
			if again := Diagram(); again != got {
				t.Fatalf("call %d differs:\n%s\nfirst call:\n%s", i, again, got)
			}
		}
	})

	t.Run("shape", func(t *testing.T) {
		if !strings.HasPrefix(got, "stateDiagram-v2\n    [*] --> new\n") {
			t.Fatalf("diagram does not start with the header and the initial state:\n%s", got)
		}
		if !strings.HasSuffix(got, "\n") {
			t.Fatalf("diagram does not end with a newline: %q", got)
		}
		for _, want := range []string{
			"    cancelled --> [*]\n",
			"endorse keeps the policy insured and adds 1 to its endorsement count",
			"A failure report is legal exactly where a success of the same stage is.",
			"It leaves the state and the endorsement count unchanged.",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("diagram lacks %q:\n%s", want, got)
			}
		}
	})

	// Every labelled edge must be a transition from the lifecycle table (and
	// the other way round), written out here by hand.
	t.Run("edges", func(t *testing.T) {
		want := map[string]bool{
			"new --> pre_insured: pre_insure":          true,
			"pre_insured --> underwritten: underwrite": true,
			"underwritten --> insured: insure":         true,
			"insured --> cancelled: cancel":            true,
			"insured --> insured: endorse":             true,
		}
		edges := map[string]bool{}
		for _, line := range strings.Split(got, "\n") {
			line = strings.TrimSpace(line)
			if strings.Contains(line, " --> ") && strings.Contains(line, ": ") {
				if edges[line] {
					t.Errorf("edge %q appears twice", line)
				}
				edges[line] = true
			}
		}
		if fmt.Sprint(edges) != fmt.Sprint(want) {
			t.Fatalf("edges=%v, want %v", edges, want)
		}
	})
}

func TestREADMEDiagramIsCurrent(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	before, section, after, err := splitDiagramSection(readme)
	if err != nil {
		t.Fatalf("%s: %v", readmePath, err)
	}
	want := "\n```mermaid\n" + Diagram() + "```\n"
	if string(section) == want {
		return
	}
	if !*update {
		t.Fatalf("the lifecycle diagram in %s is out of date; run `%s`\ngot:\n%s\nwant:\n%s",
			readmePath, diagramUpdateHint, section, want)
	}
	var out bytes.Buffer
	out.Write(before)
	out.WriteString(want)
	out.Write(after)
	info, err := os.Stat(readmePath)
	if err != nil {
		t.Fatalf("stat README: %v", err)
	}
	if err := os.WriteFile(readmePath, out.Bytes(), info.Mode().Perm()); err != nil {
		t.Fatalf("write README: %v", err)
	}
	t.Logf("updated the lifecycle diagram in %s", readmePath)
}

// splitDiagramSection cuts readme into the text up to and including the
// start marker, the text between the markers, and the rest from the end
// marker on.
func splitDiagramSection(readme []byte) (before, section, after []byte, err error) {
	start := bytes.Index(readme, []byte(diagramStartMark))
	if start < 0 {
		return nil, nil, nil, fmt.Errorf("marker %s not found", diagramStartMark)
	}
	start += len(diagramStartMark)
	end := bytes.Index(readme[start:], []byte(diagramEndMark))
	if end < 0 {
		return nil, nil, nil, fmt.Errorf("marker %s not found after %s", diagramEndMark, diagramStartMark)
	}
	end += start
	return readme[:start], readme[start:end], readme[end:], nil
}

func TestSplitDiagramSection(t *testing.T) {
	tests := []struct {
		name                        string
		in                          string
		before, section, after, err string
	}{
		{"both markers", "a\n" + diagramStartMark + "\nold\n" + diagramEndMark + "\nz\n",
			"a\n" + diagramStartMark, "\nold\n", diagramEndMark + "\nz\n", ""},
		{"empty section", diagramStartMark + diagramEndMark, diagramStartMark, "", diagramEndMark, ""},
		{"no start", "text " + diagramEndMark, "", "", "", "marker <!-- lifecycle-diagram:start --> not found"},
		{"end before start", diagramEndMark + diagramStartMark, "", "", "",
			"marker <!-- lifecycle-diagram:end --> not found after <!-- lifecycle-diagram:start -->"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, section, after, err := splitDiagramSection([]byte(tt.in))
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error=%v, want nil", err)
			case tt.err != "" && (err == nil || err.Error() != tt.err):
				t.Fatalf("error=%v, want %q", err, tt.err)
			}
			if string(before) != tt.before || string(section) != tt.section || string(after) != tt.after {
				t.Fatalf("split=(%q, %q, %q), want (%q, %q, %q)", before, section, after, tt.before, tt.section, tt.after)
			}
		})
	}
}
