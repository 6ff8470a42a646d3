# oneha: build, test, demo, benchmarks. Every target runs from a fresh clone.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build build-release release test deny lint fmt deps demo bench-election bench-relocation bench-stuck-vms bench-failover chaos clean test-fence harness-cleanup deb

all: build

## Install the system packages the tests and the demo need (Debian; root).
deps:
	bash tools/install-deps.sh

## The workspace's programs: `oneha` and the test kit `oneha-testkit` (the tests run both).
build:
	$(CARGO) build --workspace --bins

## The same in release, for the benches (cargo bench does not build the test kit's binary).
build-release:
	$(CARGO) build --release --workspace --bins

## The product alone (the test kit is another package of the workspace).
release:
	$(CARGO) build --release -p oneha --bins

## The test command (README, .ci/run): unit tests, then the real-host integration tests.
test: deps build deny
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## Election and re-election times, idle footprint (docs/benchmarks.md).
bench-election:
	$(CARGO) bench --bench election

## Planned relocation downtime as a client sees it (docs/benchmarks.md).
bench-relocation: deps build-release
	$(CARGO) bench --bench relocation

## cargo-deny (deny.toml): bans, licenses, sources; advisories when the RustSec database is
## present or fetchable (github.com), else skipped with a message (tools/deny.sh).
deny:
	CARGO=$(CARGO) bash tools/deny.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Stuck-VM report over a 100,000-VM pool from the fake oned on loopback (time, peak RSS).
## VM HA: `oneha host-error -m -p 0` for a host with 1,000 VMs against the fake oned (docs/benchmarks.md).
.PHONY: bench-vm-ha
bench-vm-ha: build-release
	bash tools/bench-vm-ha.sh 1000 5 8

bench-stuck-vms: build-release
	bash tools/bench-stuck-vms.sh 100000 1000 200
	bash tools/bench-stuck-vms.sh 100000 1000 1000

clean:
	$(CARGO) clean

.PHONY: fuzz
## Every parser that takes outside bytes under cargo-fuzz (nightly), FUZZ_SECONDS each (600);
## prints executions and coverage per target (docs/testing.md). Not part of `make test`.
fuzz:
	bash tools/fuzz.sh

## Fencing only: unit tests, then the real fence_virtd and test-daemon interop tests, and
## VM-HA hosts that are VMs fenced through fence_virtd.
test-fence: build
	bash tools/install-fence-virtd.sh
	$(CARGO) test --lib fence
	$(CARGO) test --test fence_virtd --test fence_testkit --test vm_ha_xvm

## Remove what killed real-host test runs left behind (namespaces, node cgroups, temp dirs).
harness-cleanup:
	bash tools/harness-cleanup.sh

.PHONY: bench-resources
## Resource driver and node boot timings on real hosts (root); see docs/benchmarks.md.
bench-resources: build-release
	$(CARGO) bench --bench resources

## Debian package target/debian/oneha_VERSION_ARCH.deb: release binary, unit, example config,
## docs, completions and man pages generated from the CLI (dpkg-deb, no debhelper).
deb:
	$(CARGO) build --release --bin oneha
	rm -rf target/debian/generated
	$(CARGO) run --quiet --example gen-docs -- target/debian/generated >/dev/null
	bash tools/build-deb.sh target/release/oneha target/debian/generated target/debian

## The live demo: installs what it needs, builds, runs a cluster of real hosts in namespaces,
## powers off the active node and narrates the failover; tears down (also on Ctrl-C).
## ONEHA_DEMO_TOPOLOGY=two-node for two front-ends without a witness.
## The bench binary is exec'd (not run under cargo) so that Ctrl-C reaches it alone and
## make waits for its teardown.
demo: deps build-release
	$(CARGO) bench --bench demo --no-run
	exec $$(CARGO=$(CARGO) bash tools/bench-exe.sh demo)

## Failover times and footprint, oneha (default/fast, witness/two-node) against keepalived
## (VRRPv2 advert 1s, VRRPv3 advert 0.1s), same topology, same run (docs/benchmarks.md).
## ONEHA_BENCH_QUICK=1 for 3 runs per configuration instead of 20; ONEHA_BENCH_CONFIGS=witness,two-node
## for some configurations only; ONEHA_BENCH_IDLE_DETAIL=1 for each agent's threads when idle.
bench-failover: deps build-release
	$(CARGO) bench --bench failover --no-run
	exec $$(CARGO=$(CARGO) bash tools/bench-exe.sh failover)

## Fault campaign: >= 200 random faults per topology with the invariant sampler; prints the
## seed (ONEHA_SEED=N replays a schedule; ONEHA_CHAOS_FAULTS, ONEHA_CHAOS_TOPOLOGY).
chaos: deps build-release
	$(CARGO) bench --bench chaos --no-run
	exec $$(CARGO=$(CARGO) bash tools/bench-exe.sh chaos)
