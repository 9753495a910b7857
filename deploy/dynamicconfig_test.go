package deploy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestDynamicConfigValues: the two settings a callback's latency depends on
// are in the cluster's dynamic config, as the dev server's flags spell them.
func TestDynamicConfigValues(t *testing.T) {
	got, err := DynamicConfigValues()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"history.transferProcessorMaxPollRPS=200", "system.enableActivityEagerExecution=true"} {
		if !slices.Contains(got, want) {
			t.Errorf("dynamic config values %q lack %s", got, want)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("values %q are not sorted", got)
	}
}

// TestDevScriptRunsTheDynamicConfig: make dev's server (scripts/dev.sh, a
// shell script that cannot read the YAML) passes every value of the
// cluster's dynamic config.
func TestDevScriptRunsTheDynamicConfig(t *testing.T) {
	script, err := os.ReadFile("../scripts/dev.sh")
	if err != nil {
		t.Fatal(err)
	}
	values, err := DynamicConfigValues()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if !strings.Contains(string(script), "--dynamic-config-value "+v+" ") {
			t.Errorf("scripts/dev.sh does not pass --dynamic-config-value %s (deploy/temporal-dynamicconfig.yaml has it)", v)
		}
	}
}
