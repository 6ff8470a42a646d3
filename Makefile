# oneha: build, test, demo, benchmarks. Every target runs from a fresh clone.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build release test lint fmt deps demo bench-election bench-stuck-vms clean

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

## Stuck-VM report over a 100,000-VM pool from the fake oned on loopback (time, peak RSS).
bench-stuck-vms:
	$(CARGO) build --release --bin oneha-testkit
	bash tools/bench-stuck-vms.sh 100000 1000 200

clean:
	$(CARGO) clean
