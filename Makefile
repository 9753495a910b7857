# insuranceflow: the README's two commands are `make dev` and `make test`.

GO        ?= go
BIN       := .bin
TEMPORAL  := $(BIN)/temporal

.PHONY: dev test test-unit test-integration build temporal demo lint fmt vet diagram figures clean

## dev: build and start the whole dev stack (Temporal dev server + UI, topsim, worker + ingress); Ctrl-C stops it
dev: build temporal
	./scripts/dev.sh

## test: every test: unit, workflow, replay and the integration suite against a real Temporal dev server
test: temporal lint
	TEMPORAL_BIN=$(abspath $(TEMPORAL)) $(GO) test -count=1 -timeout 20m ./...

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
