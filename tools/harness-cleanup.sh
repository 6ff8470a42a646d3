#!/usr/bin/env bash
# Removes what crashed real-host test runs left behind: network namespaces, the cgroups of
# nodes, hypervisor hosts and BMCs (ipmi_sim and power scripts die with their cgroup),
# loop devices of shared disks (images in the temp dirs), temp dirs and registry entries
# named `ohtXXXX-*` (the harness prefix, see
# tests/harness/topology.rs). A prefix whose test process still runs is kept,
# unless --all is given (use that only when no test runs).
set -u
all=0
case "${1:-}" in
  --all) all=1 ;;
  "") ;;
  *) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "harness-cleanup: run as root" >&2; exit 1; }

REG=/run/oneha-harness
CG=/sys/fs/cgroup/unified
[ -e "$CG/cgroup.procs" ] || CG=/sys/fs/cgroup

prefixes=$( { ls /run/netns "$REG" "$CG" /tmp 2>/dev/null; } | grep -oE '^oht[0-9a-f]{4}' | sort -u)
removed=0
for p in $prefixes; do
  if [ "$all" = 0 ] && [ -f "$REG/$p" ]; then
    pid=$(cut -d' ' -f1 "$REG/$p")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "keeping $p: its test (pid $pid) still runs"
      continue
    fi
  fi
  echo "removing $p"
  for cg in "$CG/$p"-*; do
    [ -d "$cg" ] || continue
    echo 1 > "$cg/cgroup.kill" 2>/dev/null
    for _ in $(seq 50); do grep -q 'populated 0' "$cg/cgroup.events" 2>/dev/null && break; sleep 0.1; done
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  for ns in $(ls /run/netns 2>/dev/null | grep "^$p-"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns"
  done
  # Shared disks: loop devices over images in the run's temp dir (their nodes are gone, so
  # nothing holds them; a detach of a busy device is deferred until it is released).
  for dev in $(losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null \
               | awk -v d="/tmp/$p-" 'index($2, d) == 1 { print $1 }'); do
    losetup -d "$dev" && echo "  detached $dev"
  done
  rm -rf /tmp/"$p"-*
  rm -f "$REG/$p"
  removed=$((removed + 1))
done
echo "harness-cleanup: removed $removed leftover topologies"
