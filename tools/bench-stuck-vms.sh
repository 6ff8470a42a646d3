#!/usr/bin/env bash
# Benchmark: the stuck-VM report over a large pool served by the fake oned on loopback.
# Measures the report process alone (wall time and peak RSS, via getrusage of the child).
# Usage: tools/bench-stuck-vms.sh [VMS] [STUCK_EVERY] [PAGE_SIZE]   (release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${1:-100000}
EVERY=${2:-1000}
PAGE=${3:-200}
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
python3 - "$BIN" "$EP" "$TMP/one_auth" "$PAGE" "$VMS" <<'PY'
import json, resource, subprocess, sys, time
binary, ep, auth, page, vms = sys.argv[1:6]
cmd = [binary, "stuck-vms", "--json", "--endpoint", ep, "--auth-file", auth, "--page-size", page]
t0 = time.monotonic()
p = subprocess.run(cmd, capture_output=True, text=True)
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rss_mb = ru.ru_maxrss / 1024.0
cpu = ru.ru_utime + ru.ru_stime
load = open("/proc/loadavg").read().split()[0]
if p.returncode not in (0, 1):
    sys.exit("bench: stuck-vms failed (%d): %s" % (p.returncode, p.stderr))
r = json.loads(p.stdout)
c = r["counts"]
print("pool: %s VMs generated, %d read (DONE excluded), %d stuck, page size %s" % (vms, c["total"], c["stuck"], page))
print("stuck-vms: wall %.2f s, CPU %.2f s (user+sys), peak RSS %.1f MB, exit %d" % (wall, cpu, rss_mb, p.returncode))
print("machine: %d cores, load average %s at the end (other work competes for the cores)" % (__import__("os").cpu_count(), load))
ok = wall <= 2.0 and rss_mb <= 200.0
print("target (<= 2 s, <= 200 MB): %s" % ("met" if ok else "MISSED"))
PY
