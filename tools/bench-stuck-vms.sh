#!/usr/bin/env bash
# Benchmark: the stuck-VM report over a large pool served by the fake oned on loopback.
# Measures the report process alone (wall time, user+sys CPU and peak RSS, via getrusage of the
# child), RUNS times against the same fake, with the load average at each run (the machine may
# be shared: the CPU time is the figure that does not depend on it).
# Usage: tools/bench-stuck-vms.sh [VMS] [STUCK_EVERY] [PAGE_SIZE] [RUNS]   (release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${1:-100000}
EVERY=${2:-1000}
PAGE=${3:-200}
RUNS=${4:-3}
KIT=target/release/oneha-testkit
BIN=target/release/oneha
[ -x "$BIN" ] && [ -x "$KIT" ] || { echo "bench: build first: cargo build --release --bins" >&2; exit 2; }
TMP=$(mktemp -d)
FAKE_PID=
cleanup() { [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
echo "oneadmin:opennebula" > "$TMP/one_auth"
"$KIT" fake-oned --listen 127.0.0.1:0 --generate "$VMS" --stuck-every "$EVERY" > "$TMP/fake.out" 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$TMP/fake.out" && break; sleep 0.05; done
ADDR=$(sed -n 's/^listening on //p' "$TMP/fake.out")
[ -n "$ADDR" ] || { echo "bench: the fake oned did not start:" >&2; cat "$TMP/fake.out" >&2; exit 2; }
EP="http://$ADDR/RPC2"
python3 - "$BIN" "$EP" "$TMP/one_auth" "$PAGE" "$VMS" "$RUNS" <<'PY'
import json, os, resource, statistics, subprocess, sys, time
binary, ep, auth, page, vms, runs = sys.argv[1:7]
cmd = [binary, "stuck-vms", "--json", "--endpoint", ep, "--auth-file", auth, "--page-size", page]
walls, cpus, rss = [], [], 0.0
load_before = open("/proc/loadavg").read().split()[0]
for run in range(1, int(runs) + 1):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru.ru_utime - before.ru_utime) + (ru.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest child so far: every run is the same program.
    rss = max(rss, ru.ru_maxrss / 1024.0)
    load = open("/proc/loadavg").read().split()[0]
    if p.returncode not in (0, 1):
        sys.exit("bench: stuck-vms failed (%d): %s" % (p.returncode, p.stderr))
    c = json.loads(p.stdout)["counts"]
    if run == 1:
        print("pool: %s VMs generated, %d read (DONE excluded), %d stuck, page size %s" % (vms, c["total"], c["stuck"], page))
    print("run %d: wall %.2f s, CPU %.2f s (user+sys), load average %s" % (run, wall, cpu, load))
    walls.append(wall)
    cpus.append(cpu)
print("stuck-vms: wall %.2f s median (%.2f best), CPU %.2f s median, peak RSS %.1f MB, exit %d" % (statistics.median(walls), min(walls), statistics.median(cpus), rss, p.returncode))
print("machine: %d cores, load average %s before the first run (other work competes for the cores)" % (os.cpu_count(), load_before))
met = sum(1 for w in walls if w <= 2.0 and rss <= 200.0)
print("target (<= 2 s, <= 200 MB): met in %d of %d runs" % (met, len(walls)))
PY
