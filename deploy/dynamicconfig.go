// Package deploy holds the deployment files (the Temporal server's
// configuration, the Helm chart, dashboards) and gives Go code the one of
// them the dev servers share with the cluster: the Temporal dynamic config.
package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// dynamicConfig is temporal-dynamicconfig.yaml, the dynamic config of the
// Temporal cluster (deploy/temporal-postgres.yaml, docker compose, make
// test-cluster).
//
//go:embed temporal-dynamicconfig.yaml
var dynamicConfig []byte

// DynamicConfigValues is the dynamic config as the dev server's
// --dynamic-config-value arguments (KEY=JSON, sorted by key), so that every
// dev server devstack starts (tests, bench, chaos) runs with the settings
// the cluster has: eager activities and the transfer queue's poll rate shape
// a callback's latency, and a dev server without them would measure another
// system. Only unconstrained values are supported; a key limited to a
// namespace or task queue is an error, since the dev server's flag cannot
// say so.
func DynamicConfigValues() ([]string, error) {
	var doc map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	if err := yaml.Unmarshal(dynamicConfig, &doc); err != nil {
		return nil, fmt.Errorf("temporal-dynamicconfig.yaml: %w", err)
	}
	out := make([]string, 0, len(doc))
	for key, values := range doc {
		if len(values) != 1 || len(values[0].Constraints) > 0 {
			return nil, fmt.Errorf("temporal-dynamicconfig.yaml: %s: want one value without constraints, got %d", key, len(values))
		}
		v, err := json.Marshal(values[0].Value)
		if err != nil {
			return nil, fmt.Errorf("temporal-dynamicconfig.yaml: %s: %w", key, err)
		}
		out = append(out, key+"="+string(v))
	}
	slices.Sort(out)
	return out, nil
}
