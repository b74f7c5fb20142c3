# kpibridge — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/kpibridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.buildVersion=$(VERSION)
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps test test-go test-cluster bench chaos fuzz vet demo clickhouse-start clickhouse-stop cluster-start cluster-stop clean

all: build

deps: ## Install what is missing (Debian packages: ClickHouse, kcat, npm).
	scripts/install-deps.sh all

build: ## Build bin/kpibridge.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kpibridge

vet:
	$(GO) vet ./...
	$(GO) vet -tags chdb ./store/
	$(GO) vet -tags cluster ./internal/clustertest/ ./transform/

test: deps ## Unit + integration tests against a private ClickHouse server and the embedded broker, then chDB conformance.
	scripts/test.sh

test-cluster: deps ## The ClickHouse cluster tests (docs/SCALING.md) on a local cluster: ZooKeeper + 2 shards x 2 replicas.
	scripts/test-cluster.sh

bench: deps ## Benchmarks (speed and memory targets live here, never in timed tests).
	scripts/bench.sh

chaos: deps ## The fault suite's long form (docs/RELIABILITY.md); make test runs a short form.
	scripts/chaos.sh

fuzz: ## Fuzz every decoder of outside input for FUZZTIME each (default 30s).
	$(GO) test ./events/ -run XXX -fuzz FuzzDecode -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./events/ -run XXX -fuzz FuzzRedact -fuzztime $${FUZZTIME:-30s}

demo: deps build ## Run the whole pipeline locally on embedded defaults (Ctrl-C stops it).
	$(BIN) demo

clickhouse-start:
	scripts/clickhouse.sh start

clickhouse-stop:
	scripts/clickhouse.sh stop

cluster-start:
	scripts/cluster.sh start

cluster-stop:
	scripts/cluster.sh stop

clean:
	-scripts/clickhouse.sh stop
	-scripts/cluster.sh stop
	rm -rf bin .run
