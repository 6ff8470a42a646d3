#!/usr/bin/env bash
# `make deny` (and so `make test`): cargo-deny over the workspace with deny.toml.
#   - bans, licenses, sources: always (they need only crates.io, for `cargo metadata`);
#   - advisories: only with RustSec's advisory database, which lives on github.com: it is
#     fetched if it can be (`cargo deny fetch db`) and used if present; with neither, the
#     check is skipped and this says so. A machine that reaches github.com checks advisories;
#     one that does not keeps the database it fetched last (in $CARGO_HOME/advisory-dbs).
# Without cargo-deny installed (tools/install-deps.sh installs it; its build can fail offline)
# every check is skipped with a line saying so, and the exit status is 0.
# ONEHA_DENY_REQUIRED=1 turns each skip into a failure (exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
required=${ONEHA_DENY_REQUIRED:-0}

skip() {
    echo "cargo-deny: SKIPPED $1" >&2
    [ "$required" = 1 ] && exit 2
}

if ! $CARGO deny --version >/dev/null 2>&1; then
    skip "every check (bans, licenses, sources, advisories): cargo-deny is not installed; \
install it with: cargo install --locked cargo-deny"
    exit 0
fi

# Every platform's crates, so cargo-deny can run offline afterwards (and see all licenses).
$CARGO fetch --locked >/dev/null || { echo "cargo-deny: cargo fetch failed" >&2; exit 1; }
status=0
echo "cargo-deny: bans licenses sources"
$CARGO deny --offline --workspace check --hide-inclusion-graph bans licenses sources || status=1

db_dir=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs
if timeout 120 $CARGO deny fetch db >/dev/null 2>&1; then
    echo "cargo-deny: advisories (database fetched now)"
    $CARGO deny --offline --workspace check --hide-inclusion-graph advisories || status=1
elif compgen -G "$db_dir/*/crates" >/dev/null; then
    echo "cargo-deny: advisories (database not fetched, github.com unreachable; using the copy in $db_dir)"
    $CARGO deny --offline --workspace check --hide-inclusion-graph advisories || status=1
else
    skip "advisories: no advisory database in $db_dir and github.com unreachable \
(cargo deny fetch db); deny.toml's ignore list (RUSTSEC-2024-0437) is not checked either"
fi
exit $status
