#!/usr/bin/env bash
# Benchmark: `oneha host-error -m -p 0` for a host with VMS VMs, against the fake oned's world on
# loopback, standalone, fenced by a fence agent that answers at once (the fence itself costs
# nothing here: the figure is what oneha adds). Measures the hook process alone: wall time from
# its start to its exit (every VM's action accepted by oned), user+sys CPU and peak RSS, RUNS
# times, each against a fresh fake.
# Usage: tools/bench-vm-ha.sh [VMS] [RUNS] [MAX_PARALLEL]   (release build first: make build-release)
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${1:-1000}
RUNS=${2:-5}
PAR=${3:-8}
KIT=target/release/oneha-testkit
BIN=target/release/oneha
[ -x "$BIN" ] && [ -x "$KIT" ] || { echo "bench: build first: make build-release" >&2; exit 2; }
TMP=$(mktemp -d)
FAKE_PID=
cleanup() { [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
export PYTHONUNBUFFERED=1
echo "oneadmin:opennebula" > "$TMP/one_auth"
printf '#!/bin/sh\ncat >/dev/null\nexit 0\n' > "$TMP/fence_now"; chmod +x "$TMP/fence_now"
cat > "$TMP/oneha.yaml" <<YAML
fencing:
  devices:
    now: {type: agent, agent: $TMP/fence_now, options: {ip: "{FENCE_IP}"}}
vm_ha:
  host_template: {levels: [{device: now, retries: 0}]}
  max_parallel: $PAR
  monitoring_interval: 1s
  log_file: $TMP/host_error.log
YAML
python3 - "$VMS" > "$TMP/world.yaml" <<'PY'
import sys
n = int(sys.argv[1])
print("settings: {sched_delay_ms: 600000}")
print("datastores:\n  - {id: 0, name: system, tm_mad: shared}")
print("hosts:")
for i in range(3):
    print(f"  - {{id: {i}, name: kvm{i}, template: {{FENCE_IP: 192.0.2.{50 + i}}}}}")
print("vms:")
for v in range(n):
    print(f"  - {{id: {v}, host: 0, lcm_state: 16}}")
PY
python3 - "$BIN" "$KIT" "$TMP" "$RUNS" "$VMS" <<'PY'
import base64, os, resource, statistics, subprocess, sys, time
binary, kit, tmp, runs, vms = sys.argv[1:6]
env = dict(os.environ, ONE_AUTH=f"{tmp}/one_auth", ONEHA_CONFIG=f"{tmp}/oneha.yaml",
           ONEHA_HOOK_SOCKET=f"{tmp}/no-agent.sock")
host = base64.b64encode(b"<HOST><ID>0</ID><NAME>kvm0</NAME><STATE>3</STATE></HOST>").decode()
walls, cpus, rss = [], [], 0.0
load = open("/proc/loadavg").read().split()[0]
for run in range(1, int(runs) + 1):
    fake = subprocess.Popen([kit, "fake-oned", "--listen", "127.0.0.1:0", "--session",
                             "oneadmin:opennebula", "--world", f"{tmp}/world.yaml"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    addr = None
    for line in fake.stdout:
        if line.startswith("listening on "):
            addr = line.split()[-1]
            break
    env["ONE_XMLRPC"] = f"http://{addr}/RPC2"
    # The host goes to ERROR as monitord would set it (its VMs are UNKNOWN in the world).
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--data-binary",
                    "<?xml version='1.0'?><methodCall><methodName>testkit.host.state</methodName>"
                    "<params><param><value><string>oneadmin:opennebula</string></value></param>"
                    "<param><value><i4>0</i4></value></param><param><value><i4>3</i4></value>"
                    "</param></params></methodCall>", env["ONE_XMLRPC"]], check=True)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "host-error"], stdin=subprocess.PIPE, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.stdin.write(f"{host} -m -p 0".encode()); p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    fake.kill(); fake.wait()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench: the hook failed ({code}):\n" +
                 open(f"{tmp}/host_error.log").read()[-2000:])
    done = open(f"{tmp}/host_error.log").read().count(": done (")
    cpu = ru.ru_utime + ru.ru_stime
    rss = max(rss, ru.ru_maxrss / 1024)
    walls.append(wall); cpus.append(cpu)
    print(f"run {run}: {wall:.3f} s wall, {cpu:.3f} s CPU, {done} VMs done")
    open(f"{tmp}/host_error.log", "w").close()
print(f"{vms} VMs, -m -p 0: median {statistics.median(walls):.3f} s wall (best {min(walls):.3f}), "
      f"median {statistics.median(cpus):.3f} s CPU, peak RSS of the hook {rss:.1f} MB, load {load}")
PY
