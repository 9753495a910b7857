package fsm

import (
	"fmt"
	"strings"

	looplab "github.com/looplab/fsm"
)

// Diagram returns the lifecycle as a Mermaid state diagram, ending in a
// newline. The transitions come from looplab's visualizer run over the same
// machine the lifecycle uses; the visualizer sorts them by source state and
// event, so the text is the same on every call. Diagram adds what the
// machine cannot express: the terminal state's end marker, and notes for the
// endorsement count and the failure rule.
func Diagram() string {
	out, err := looplab.VisualizeWithType(newMachine(StateNew), looplab.MermaidStateDiagram)
	if err != nil {
		// VisualizeWithType fails only for an unknown visualizer type, and the
		// type here is a constant, so this is a programming error.
		panic(fmt.Sprintf("fsm: render lifecycle diagram: %v", err))
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(out, "\n"))
	b.WriteString("\n")
	for _, s := range States() {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	fmt.Fprintf(&b, "    note right of %s\n", StateInsured)
	b.WriteString("        endorse keeps the policy insured and adds 1 to its endorsement count\n")
	b.WriteString("    end note\n")
	fmt.Fprintf(&b, "    note left of %s\n", StateNew)
	b.WriteString("        A failure report is legal exactly where a success of the same stage is.\n")
	b.WriteString("        It leaves the state and the endorsement count unchanged.\n")
	b.WriteString("    end note\n")
	return b.String()
}
