#!/usr/bin/env bash
# Prints the path of the built bench executable NAME (after `cargo bench --bench NAME --no-run`),
# so make can exec it directly: Ctrl-C then reaches the program alone, which tears down its
# test hosts, and make waits for that instead of leaving it behind.
set -euo pipefail
name=${1:?usage: bench-exe.sh BENCH_NAME}
exe=$(${CARGO:-cargo} bench --bench "$name" --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["bench"\]' | grep "\"name\":\"$name\"" |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  echo "bench-exe.sh: cannot find the built bench \`$name\`; run \`cargo bench --bench $name --no-run\`" >&2
  exit 1
fi
echo "$exe"
