#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (default 600), one after
# the other, and prints one line per target: executions, coverage (libFuzzer's `cov` edges and
# `ft` features), corpus size, and any crash. Needs the nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly; cargo install cargo-fuzz`). The corpus grows in
# fuzz/corpus/TARGET (not committed); fuzz/seeds/TARGET holds the committed starting inputs.
# FUZZ_TARGETS="config cluster_conf" runs only those. Exit status 1 if any target crashed:
# the input is in fuzz/artifacts/TARGET/; turn it into a unit test with the fix.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
each=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-peer_frame fence_xvm oned_reply host_template config cluster_conf}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "make fuzz needs the nightly toolchain and cargo-fuzz:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 2
fi
cargo +nightly fuzz build || exit 2
mkdir -p logs
status=0
for t in $targets; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="logs/$t.log"
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$each" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1
    rc=$?
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "corpus/$t" -type f | wc -l)
    verdict="no crash"
    if [ "$rc" -ne 0 ]; then
        status=1
        verdict="CRASH (exit $rc): $(grep -o 'Test unit written to .*' "$log" | tail -1); log fuzz/$log"
    fi
    printf '%-14s %5ss  execs %-10s cov %-6s ft %-7s corpus %-6s %s\n' \
        "$t" "$each" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$verdict"
done
exit $status
