#!/usr/bin/env bash
# Import benchmark (SPEC §9): `dialer contacts import` of N generated contacts beside
# `sqlite3 .import` of the same file into a WAL table with a UNIQUE(phone) index, in one run.
# Usage: bench/import.sh [N]   (default 1000000; needs the sqlite3 CLI: apt-get install sqlite3)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dialer-target}"
cargo build --release --quiet --bin dialer --example gen_contacts
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/examples/gen_contacts" "$n" 1 > "$work/contacts.csv"
printf '[database]\npath = "dialer.db"\n' > "$work/dialer.toml"
printf '{"name": "bench", "message": "hello"}\n' > "$work/bench.json"
"$bin/dialer" --config "$work/dialer.toml" -q campaign import "$work/bench.json" >/dev/null

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs kb < "$work/time"
  printf '%-34s %8.2f s   peak RSS %7.1f MB\n' "$label" "$secs" "$(echo "$kb / 1024" | bc -l)"
}

echo "rows: $n ($(du -h "$work/contacts.csv" | cut -f1))"
measure "sqlite3 .import (baseline)" sqlite3 "$work/base.db" \
  "PRAGMA journal_mode=WAL;" \
  "CREATE TABLE c (id TEXT, name TEXT, phone TEXT, timezone TEXT, segment TEXT, UNIQUE(phone));" \
  ".mode csv" ".import --skip 1 $work/contacts.csv c"
measure "dialer contacts import" "$bin/dialer" --config "$work/dialer.toml" -q \
  contacts import --campaign bench "$work/contacts.csv"
measure "dialer contacts import (again)" "$bin/dialer" --config "$work/dialer.toml" -q \
  contacts import --campaign bench "$work/contacts.csv"
