// Package chart holds the tests of the Helm chart in ./insuranceflow: they
// render it with the pinned Helm (HELM_BIN, set by `make chart-check` and
// `make test`) and check every rendered object.
package chart
