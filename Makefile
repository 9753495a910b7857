# insuranceflow: the README's two commands are `make dev` and `make test`.

GO        ?= go
BIN       := .bin
TEMPORAL  := $(BIN)/temporal
HELM      := $(BIN)/helm

.PHONY: dev test test-race test-race-it test-unit test-integration build temporal demo lint fmt vet diagram figures clean

## dev: build and start the whole dev stack (Temporal dev server + UI, topsim, worker + ingress); Ctrl-C stops it
dev: build temporal
	./scripts/dev.sh

## test: every test: unit, workflow, replay, the Helm chart's rendered manifests and the integration suite against a real Temporal dev server
test: temporal helm lint
	TEMPORAL_BIN=$(abspath $(TEMPORAL)) HELM_BIN=$(abspath $(HELM)) $(GO) test -count=1 -timeout 20m ./...

## test-race: the tests of every package that starts no stack of processes (the activities' pipelined and leased attempts, the store, the ingress, the workflows, …) under the race detector
test-race:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -E '/(integration|devstack|chaos|bench|deploy)(/|$$)')

## test-race-it: the integration suite against a dev server with the worker, topsim and starter built with the race detector; a race reported in their logs fails it
test-race-it: temporal
	IT_RACE=1 TEMPORAL_BIN=$(abspath $(TEMPORAL)) $(GO) test -count=1 -timeout 20m ./integration/

## test-unit: the tests that need no Temporal server
test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

## build: the three binaries into .bin/
build:
	$(GO) build -o $(BIN)/ ./worker ./topsim ./starter

## temporal: the Temporal dev server, pinned in tools/go.mod (first build takes a few minutes, then it is cached)
temporal: $(TEMPORAL)
$(TEMPORAL): tools/go.mod tools/go.sum
	$(GO) -C tools build -o ../$(TEMPORAL) github.com/temporalio/cli/cmd/temporal

## helm: Helm v4, pinned in its own module tools/helm/go.mod (first build takes several minutes, then it is cached)
helm: $(HELM)
$(HELM): tools/helm/go.mod tools/helm/go.sum
	$(GO) -C tools/helm build -o ../../$(HELM) helm.sh/helm/v4/cmd/helm

## chart-check: lint the Helm chart and render it with the Temporal Cloud and the mutual-TLS values; the Go test checks the rendered manifests
CHART := deploy/helm/insuranceflow
.PHONY: helm chart-check
chart-check: helm
	$(HELM) lint --strict $(CHART) -f deploy/helm/values-cloud.yaml
	$(HELM) lint --strict $(CHART) -f deploy/helm/values-mtls.yaml
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	for v in cloud mtls; do \
		$(HELM) template insuranceflow $(CHART) --namespace insuranceflow -f deploy/helm/values-$$v.yaml > "$$out/$$v.yaml" || exit 1; \
		echo "chart-check: rendered $$(grep -c '^kind:' "$$out/$$v.yaml") objects with values-$$v.yaml"; \
	done
	HELM_BIN=$(abspath $(HELM)) $(GO) test -count=1 ./deploy/helm/

## demo: with `make dev` running, leave policies in every state, one rejected event and one parked callback
demo: build
	$(BIN)/starter simulate --demo

## lint: go vet and gofmt
lint: vet fmt
vet:
	$(GO) vet ./...
fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## diagram: regenerate the lifecycle diagram in README.md from the fsm definition
diagram:
	$(GO) test ./fsm -run TestREADMEDiagramIsCurrent -update

## figures: re-measure the README's Temporal-actions-per-lifecycle table against a real dev server
figures: temporal
	TEMPORAL_BIN=$(abspath $(TEMPORAL)) $(GO) test -count=1 ./integration -run TestActionsPerLifecycle -update-readme

clean:
	rm -rf $(BIN)

## fuzz: every fuzz target in the repo (go test -fuzz), FUZZTIME each (default 10s); a crash fails and is saved in the package's testdata/fuzz
# Targets are discovered with `go test -list`, but only in packages whose test
# files declare a Fuzz function: listing runs the test binary, and the
# integration package's TestMain starts a whole stack before it lists anything.
# The lists are assigned before the loops so that a package that does not
# build fails the target instead of silently contributing no targets.
FUZZTIME ?= 10s
.PHONY: fuzz
fuzz:
	@set -eu; n=0; \
	pkgs=$$($(GO) list -f '{{.ImportPath}}={{.Dir}}' ./...); \
	for pd in $$pkgs; do \
		pkg=$${pd%%=*}; dir=$${pd#*=}; \
		grep -qs '^func Fuzz' "$$dir"/*_test.go || continue; \
		list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		for target in $$(printf '%s\n' "$$list" | grep '^Fuzz'); do \
			echo "fuzz: $$target in $$pkg for $(FUZZTIME)"; \
			out=$$(mktemp); rc=0; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" >"$$out" 2>&1 || rc=$$?; \
			cat "$$out"; \
			if [ $$rc -ne 0 ] && grep -q 'context deadline exceeded' "$$out" && ! grep -q 'Failing input written' "$$out"; then \
				echo "fuzz: $$target: the fuzzing engine hit its own deadline with no failing input (a go test -fuzz flake seen in CI); running it once more"; \
				$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
			elif [ $$rc -ne 0 ]; then rm -f "$$out"; exit $$rc; fi; \
			rm -f "$$out"; \
			n=$$((n+1)); \
		done; \
	done; \
	if [ $$n -eq 0 ]; then echo "fuzz: no fuzz targets found"; exit 1; fi; \
	echo "fuzz: $$n targets, $(FUZZTIME) each, no crash"

## chaos: the fault-injection suite: 300 lifecycles through worker SIGKILLs, TOP faults, a ban and a Temporal restart; checks every delivery invariant and writes its table into README.md
## chaos-short: the same, 40 lifecycles (about 1.5 min), as CI runs it
.PHONY: chaos chaos-short
chaos: build temporal
	TEMPORAL_BIN=$(abspath $(TEMPORAL)) $(GO) run ./chaos -bin-dir $(BIN) -update-readme
chaos-short: build temporal
	TEMPORAL_BIN=$(abspath $(TEMPORAL)) $(GO) run ./chaos -short -bin-dir $(BIN) -json bench-results/chaos-short.json

.PHONY: test-cluster compose-check alerts-check

## alerts-check: parse deploy/prometheus/alerts.yaml with Prometheus's own rule parser (rulefmt) and check every alert has for, labels.severity and annotations.summary; lint the Grafana dashboard's queries
alerts-check:
	$(GO) test -count=1 -run '^(TestAlertRules|TestRulesRefusesAnIncompleteAlert|TestDashboard)$$' ./deploy/monitoring/

## test-cluster: the integration suite against a real Temporal server on PostgreSQL (release pinned in tools/go.mod, configured by deploy/ as docker-compose.yml is) with the PostgreSQL store; POSTGRES_URL picks the server
test-cluster:
	./scripts/test-cluster.sh

# The compose v2 plugin where Docker has it, else Debian's docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)

## compose-check: validate docker-compose.yml, the demo profile included, with placeholders for the variables it requires
compose-check:
	POSTGRES_PASSWORD=compose-check TOP_APP_KEY=compose-check INGRESS_TOKENS=compose-check \
	TOP_GATEWAY_URL=http://topsim:8788/router/rest \
	$(COMPOSE) --profile demo config -q

# ---- benchmarks (bench/, devstack/) ----
.PHONY: bench bench-quick bench-readme bench-cluster bench-cluster-readme bench-qps bench-qps-readme bench-import bench-import-readme microbench

# BENCH_OPEN is how many policies `make bench` leaves open while sampling
# the worker's RSS; `make bench-readme` measures the full 10,000.
BENCH_OPEN  ?= 2000
BENCH_FLAGS ?=

## bench: load benchmark and check (exits 1 when a target is missed): 3 alternating rounds of 200 lifecycles at concurrency 20 (saturation) of insuranceflow through the HTTP ingress and a minimal Temporal workflow on the same server, then both offered 25/50/75 % of that capacity on a clock (open loop; at 50 % also with TOP_QPS set), then BENCH_OPEN open policies; results in bench-results/ (about 12 min)
bench: build temporal
	$(GO) run ./bench -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -n 200 -c 20 -open-policies $(BENCH_OPEN) $(BENCH_FLAGS)
	$(MAKE) bench-qps
	$(MAKE) bench-import

## bench-qps: TOP_QPS=5 with two workers and topsim enforcing the limit: 500 callbacks, achieved rate vs the limit, most per sliding second, code-7 answers (about 2 min)
bench-qps: build temporal
	$(GO) run ./bench/qps -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -qps 5 -workers 2 -policies 100 -c 20

## bench-qps-readme: the same, writing the README's TOP_QPS section
bench-qps-readme: build temporal
	$(GO) run ./bench/qps -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -qps 5 -workers 2 -policies 100 -c 20 -update-readme

## bench-import: import 10,000 policies × 4 already-reported events with `starter import` on the dev stack, then the same file again: throughput, Temporal actions per imported policy, TOP calls (none); results in bench-results/import.json
IMPORT_POLICIES ?= 10000
bench-import: build temporal
	$(GO) run ./bench/importbench -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -policies $(IMPORT_POLICIES) -events 4

## bench-import-readme: the same, writing the README's import figures
bench-import-readme: build temporal
	$(GO) run ./bench/importbench -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -policies $(IMPORT_POLICIES) -events 4 -update-readme

## bench-readme: the README's run: `make bench` with 10,000 open policies, writing the Performance section (latency at 25/50/75 % load, saturation, capacity model) with the targets it met and missed (exit 1 on a miss); run it on a quiet machine
bench-readme: build temporal
	$(GO) run ./bench -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -n 200 -c 20 -open-policies 10000 -update-readme $(BENCH_FLAGS)

## bench-quick: a smoke run of the benchmark (one round, short open loop, targets reported, not enforced; about 2 min); results in bench-results/quick/
bench-quick: build temporal
	$(GO) run ./bench -bin-dir $(BIN) -temporal-bin $(TEMPORAL) -n 20 -c 5 -warmup 2 -open-policies 40 -rounds 1 -open-duration 4s -strict=false -out bench-results/quick $(BENCH_FLAGS)

## bench-cluster: the benchmark against Temporal server on PostgreSQL with the PostgreSQL store (test-cluster's set-up, its own databases temporal_bench*), with one worker and with two; results in bench-results/cluster-1w/ and cluster-2w/
bench-cluster:
	CLUSTER_RUN=bench TEST_CLUSTER_DB_PREFIX=temporal_bench BENCH_FLAGS="$(BENCH_FLAGS)" ./scripts/test-cluster.sh

## bench-cluster-readme: the same, writing the README's cluster figures (below the Performance section) with their verdicts (exit 1 on a miss)
bench-cluster-readme:
	CLUSTER_RUN=bench TEST_CLUSTER_DB_PREFIX=temporal_bench BENCH_FLAGS="-update-readme $(BENCH_FLAGS)" ./scripts/test-cluster.sh

## microbench: go test -bench for signing (top), validation (insurance), the FSM (fsm) and a callback's store writes (store)
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./top ./insurance ./fsm ./store
