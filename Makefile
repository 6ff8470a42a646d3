# oneha: build, test, demo, benchmarks. Every target runs from a fresh clone.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build release test lint fmt deps demo bench-election clean harness-cleanup

all: build

## Install the system packages the tests and the demo need (Debian; root).
deps:
	bash tools/install-deps.sh

build:
	$(CARGO) build --bins

release:
	$(CARGO) build --release --bins

## The test command (README, .ci/run): unit tests, then the real-host integration tests.
test: build
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --no-fail-fast; \
	else \
		$(CARGO) test --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean

## Remove what killed real-host test runs left behind (namespaces, node cgroups, temp dirs).
harness-cleanup:
	bash tools/harness-cleanup.sh

.PHONY: bench-resources
## Resource driver and node boot timings on real hosts (root); see docs/benchmarks.md.
bench-resources:
	$(CARGO) bench --bench resources
