#!/usr/bin/env bash
# Conveyor: build everything and run every test project.
#
#   ./test.sh                       build src/, tests/, bench/, examples/; run every tests/*/*.csproj
#   ./test.sh --filter EXPR         pass a VSTest filter to every test project (e.g. "FullyQualifiedName~Lease")
#   ./test.sh -c Release            build and test in Release (default Debug)
#   ./test.sh --no-build            skip the build step (use what is already built)
#
# The last line printed is always "N passed, N failed, N skipped", summed over every
# project's TRX file (all zero when the script stops early, e.g. a service did not start). The exit code is non-zero when a test failed, a project failed to
# build or to run, or no test ran at all.
#
# Services, started only when a test project needs them (a tests/*Postgres* or tests/*Amqp*
# folder, a test source that reads CONVEYOR_TEST_POSTGRES / CONVEYOR_TEST_AMQP, or
# CONVEYOR_TEST_SERVICES=1), each on a loopback port with a throw-away data dir and stopped
# again when this script exits:
#   PostgreSQL 15  -> CONVEYOR_TEST_POSTGRES (Npgsql connection string)
#   RabbitMQ       -> CONVEYOR_TEST_AMQP     (amqp:// URI)
#   Chromium       -> CONVEYOR_TEST_CHROMIUM (path; installed for browser test projects)
# A variable that is already set is used as it is and nothing is started for it.
# Missing Debian packages are installed with apt-get (we run as root).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

CONFIGURATION=Debug
FILTER=
DO_BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) [ $# -ge 2 ] || { echo "test.sh: --filter needs an expression" >&2; exit 2; }; FILTER=$2; shift 2 ;;
    --filter=*) FILTER=${1#--filter=}; shift ;;
    -c|--configuration) [ $# -ge 2 ] || { echo "test.sh: $1 needs Debug or Release" >&2; exit 2; }; CONFIGURATION=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

ART=$ROOT/.artifacts/test
RESULTS=$ART/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'test.sh: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- cleanup
# Every service this script starts registers a stop command here; they run in reverse order on exit.
CLEANUPS=()
cleanup() {
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
  CLEANUPS=()
}
SUMMARY_PRINTED=0
on_exit() {
  local rc=$?
  cleanup
  if [ "$SUMMARY_PRINTED" = 0 ]; then
    warn "stopped early (exit $rc): no tests were counted"
    echo "0 passed, 0 failed, 0 skipped"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
wait_for() { # wait_for <seconds> <command...>
  local t=$1; shift
  local i
  for ((i = 0; i < t * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  warn "timed out after ${t}s waiting for: $*"
  return 1
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # free_port <first candidate>: prints the first port from there on that nothing listens on
  local p=$1
  while port_in_use "$p"; do p=$((p + 1)); done
  echo "$p"
}
APT_UPDATED=0
apt_install() { # apt_install <package...>: installs without starting any service (no systemd here anyway)
  log "installing Debian packages: $*"
  local made_policy=0
  # policy-rc.d 101 = "do not start services from maintainer scripts"; we start our own instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  local rc=0
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -q >/dev/null || rc=$?; APT_UPDATED=1; fi
  [ "$rc" = 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null || rc=$?; }
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { warn "apt-get install $* failed (exit $rc)"; return "$rc"; }
}

# ---------------------------------------------------------------- PostgreSQL
PGBIN=/usr/lib/postgresql/15/bin
ensure_postgres() {
  if [ -n "${CONVEYOR_TEST_POSTGRES:-}" ]; then log "PostgreSQL: using CONVEYOR_TEST_POSTGRES from the environment"; return; fi
  [ -x "$PGBIN/postgres" ] || apt_install postgresql
  [ -x "$PGBIN/postgres" ] || { warn "PostgreSQL 15 binaries not found in $PGBIN after install"; return 1; }
  id postgres >/dev/null 2>&1 || { warn "user 'postgres' does not exist (the postgresql package creates it)"; return 1; }

  local dir port
  dir=$(mktemp -d /tmp/conveyor-test-pg.XXXXXX)
  chown postgres: "$dir"; chmod 700 "$dir"
  CLEANUPS+=("rm -rf '$dir'")
  port=$(free_port "${CONVEYOR_TEST_PG_PORT:-55432}")
  log "PostgreSQL: initdb in $dir, starting on 127.0.0.1:$port"
  runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; warn "initdb failed"; return 1; }
  # fsync off: tests kill the *server process*, never the machine, so the OS cache is durable enough here.
  if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null; then
    cat "$dir/postgres.log" >&2 || true
    warn "PostgreSQL did not start"; return 1
  fi
  CLEANUPS+=("runuser -u postgres -- '$PGBIN/pg_ctl' -D '$dir/data' -m fast -w -t 30 stop >/dev/null 2>&1")
  "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE conveyor_test" >/dev/null
  export CONVEYOR_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=postgres;Database=conveyor_test"
  log "PostgreSQL: up (CONVEYOR_TEST_POSTGRES=$CONVEYOR_TEST_POSTGRES)"
}

# ---------------------------------------------------------------- RabbitMQ
RABBIT_BIN=/usr/lib/rabbitmq/bin
ensure_rabbitmq() {
  if [ -n "${CONVEYOR_TEST_AMQP:-}" ]; then log "RabbitMQ: using CONVEYOR_TEST_AMQP from the environment"; return; fi
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || apt_install rabbitmq-server
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || { warn "rabbitmq-server not found in $RABBIT_BIN after install"; return 1; }

  local dir port dist epmd_port
  dir=$(mktemp -d /tmp/conveyor-test-rabbit.XXXXXX)
  CLEANUPS+=("rm -rf '$dir'")
  port=$(free_port "${CONVEYOR_TEST_AMQP_PORT:-55672}")
  dist=$(free_port $((port + 1)))
  epmd_port=$(free_port $((dist + 1)))
  log "RabbitMQ: starting on 127.0.0.1:$port (data $dir)"
  # Everything (cookie, mnesia, logs, our own epmd) lives in $dir and listens on loopback only,
  # so this never touches a RabbitMQ or epmd that the machine already runs.
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "[]." > "$dir/enabled_plugins"
  cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
EOF
  local env=(env HOME="$dir" RABBITMQ_NODENAME=conveyor-test@localhost
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist"
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$epmd_port"
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
  RABBIT_ENV=("${env[@]}")

  epmd -address 127.0.0.1 -port "$epmd_port" </dev/null >"$dir/epmd.log" 2>&1 &
  local epmd_pid=$!
  CLEANUPS+=("kill $epmd_pid 2>/dev/null; wait $epmd_pid 2>/dev/null")
  wait_for 10 port_in_use "$epmd_port" || { warn "epmd did not start"; return 1; }

  "${env[@]}" "$RABBIT_BIN/rabbitmq-server" </dev/null >"$dir/stdout.log" 2>&1 &
  local pid=$!
  CLEANUPS+=("stop_rabbitmq $pid")
  if ! wait_for 120 "${env[@]}" "$RABBIT_BIN/rabbitmqctl" await_startup; then
    tail -30 "$dir/stdout.log" >&2 || true
    warn "RabbitMQ did not start (log: $dir/log)"; return 1
  fi
  export CONVEYOR_TEST_AMQP="amqp://guest:guest@127.0.0.1:$port/"
  log "RabbitMQ: up (CONVEYOR_TEST_AMQP=$CONVEYOR_TEST_AMQP)"
}
stop_rabbitmq() { # stop_rabbitmq <pid of the rabbitmq-server script we started>
  local pid=$1 i
  "${RABBIT_ENV[@]}" "$RABBIT_BIN/rabbitmqctl" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then warn "RabbitMQ (pid $pid) still running, sending KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- Chromium (browser tests)
ensure_chromium() {
  if [ -n "${CONVEYOR_TEST_CHROMIUM:-}" ]; then return; fi
  command -v chromium >/dev/null 2>&1 || apt_install chromium
  CONVEYOR_TEST_CHROMIUM=$(command -v chromium) || { warn "chromium not found after install"; return 1; }
  export CONVEYOR_TEST_CHROMIUM
  log "Chromium: $CONVEYOR_TEST_CHROMIUM"
}

# ---------------------------------------------------------------- OpenAPI validator
# @redocly/cli from npm, pinned, in .artifacts/tools (Node.js and npm come from Debian when missing).
REDOCLY_VERSION=2.77.0
ensure_redocly() {
  if [ -n "${CONVEYOR_TEST_REDOCLY:-}" ]; then return; fi
  local tools=$ROOT/.artifacts/tools bin=$ROOT/.artifacts/tools/node_modules/.bin/redocly
  if [ ! -x "$bin" ] || ! grep -qs "\"version\": \"$REDOCLY_VERSION\"" "$tools/node_modules/@redocly/cli/package.json"; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    mkdir -p "$tools"
    log "installing @redocly/cli@$REDOCLY_VERSION (OpenAPI validator)"
    (cd "$tools" && npm install --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" >/dev/null) \
      || { warn "npm could not install @redocly/cli"; return 1; }
  fi
  export CONVEYOR_TEST_REDOCLY=$bin
}

# ---------------------------------------------------------------- projects
shopt -s nullglob
TEST_PROJECTS=(tests/*/*.csproj)
ALL_PROJECTS=(src/*/*.csproj tests/*/*.csproj bench/*/*.csproj examples/*/*.csproj examples/*/*/*.csproj)
# Conveyor.slnx is for IDEs and `dotnet build Conveyor.slnx`; this script builds from the globs above, but says what the file lacks.
if [ -f Conveyor.slnx ]; then
  MISSING=()
  for p in "${ALL_PROJECTS[@]}"; do grep -qF "\"$p\"" Conveyor.slnx || MISSING+=("$p"); done
  [ ${#MISSING[@]} -eq 0 ] || warn "Conveyor.slnx lacks ${#MISSING[@]} project(s); add them with: dotnet sln Conveyor.slnx add ${MISSING[*]}"
fi

# ---------------------------------------------------------------- build
# One generated solution with every project on disk, so a new project is never forgotten.
BUILD_FAILED=0
if [ "$DO_BUILD" = 1 ] && [ ${#ALL_PROJECTS[@]} -gt 0 ]; then
  SLN=$ART/all.slnx
  {
    echo '<Solution>'
    for p in "${ALL_PROJECTS[@]}"; do echo "  <Project Path=\"../../$p\" />"; done
    echo '</Solution>'
  } > "$SLN"
  log "dotnet build ($CONFIGURATION, ${#ALL_PROJECTS[@]} projects)"
  if ! dotnet build "$SLN" -c "$CONFIGURATION" -nologo -clp:NoSummary -v:q; then
    BUILD_FAILED=1
    warn "the build failed; building each test project on its own to run the ones that still build"
  fi
fi

# ---------------------------------------------------------------- services the tests need
tests_mention() { [ -d tests ] && grep -rqs --include='*.cs' --include='*.csproj' --include='*.json' -e "$1" tests; }
has_test_dir() { local d; for d in tests/*"$1"*/; do [ -d "$d" ] && return 0; done; return 1; }
needs() { # needs <dir glob word> <env var>: CONVEYOR_TEST_SERVICES=1, a tests/*WORD* folder, or a test that reads the variable
  [ "${CONVEYOR_TEST_SERVICES:-0}" = 1 ] || has_test_dir "$1" || tests_mention "$2"
}
if [ ${#TEST_PROJECTS[@]} -gt 0 ]; then
  if needs Postgres CONVEYOR_TEST_POSTGRES; then ensure_postgres; fi
  if needs Amqp CONVEYOR_TEST_AMQP; then ensure_rabbitmq; fi
  if has_test_dir Browser || tests_mention CONVEYOR_TEST_CHROMIUM || tests_mention Playwright; then ensure_chromium; fi
  if tests_mention CONVEYOR_TEST_REDOCLY; then ensure_redocly; fi
fi

# ---------------------------------------------------------------- test
FAILED_PROJECTS=()
RAN=0
if [ ${#TEST_PROJECTS[@]} -eq 0 ]; then warn "no test projects found (tests/*/*.csproj)"; fi
for proj in "${TEST_PROJECTS[@]}"; do
  name=$(basename "$proj" .csproj)
  if [ "$BUILD_FAILED" = 1 ] && ! dotnet build "$proj" -c "$CONFIGURATION" -nologo -clp:NoSummary -v:q >"$RESULTS/$name.build.log" 2>&1; then
    warn "$name does not build (see $RESULTS/$name.build.log); not run"
    FAILED_PROJECTS+=("$name (build)")
    continue
  fi
  args=(test "$proj" --no-build -c "$CONFIGURATION" --nologo
        --logger "trx;LogFileName=$name.trx" --results-directory "$RESULTS"
        --blame-hang-timeout "${CONVEYOR_TEST_HANG_TIMEOUT:-15m}" --blame-hang-dump-type none)
  [ -n "$FILTER" ] && args+=(--filter "$FILTER")
  log "dotnet test $name"
  rc=0
  dotnet "${args[@]}" || rc=$?
  RAN=$((RAN + 1))
  if [ ! -f "$RESULTS/$name.trx" ]; then
    warn "$name produced no TRX file (exit $rc): the test host did not run"
    FAILED_PROJECTS+=("$name (no results)")
  elif [ "$rc" != 0 ]; then
    FAILED_PROJECTS+=("$name (exit $rc)")
  fi
done

# Stop the services now, so that nothing they print comes after the closing line.
cleanup

# ---------------------------------------------------------------- summary
# <Counters total= executed= passed= failed= error= timeout= aborted= inconclusive= ... notExecuted= ... />
# skipped = total - executed; failed counts failed + error + timeout + aborted.
attr() { # attr <name> <counters element>
  local v
  v=$(printf '%s' "$2" | sed -n "s/.*[[:space:]]$1=\"\([0-9]*\)\".*/\1/p")
  echo "${v:-0}"
}
PASSED=0 FAILED=0 SKIPPED=0
for trx in "$RESULTS"/*.trx; do
  counters=$(tr '\n' ' ' < "$trx" | grep -o '<Counters [^>]*>' | head -1 || true)
  if [ -z "$counters" ]; then warn "no <Counters> in $trx"; FAILED_PROJECTS+=("$(basename "$trx") (unreadable)"); continue; fi
  total=$(attr total "$counters"); executed=$(attr executed "$counters")
  p=$(attr passed "$counters")
  f=$(( $(attr failed "$counters") + $(attr error "$counters") + $(attr timeout "$counters") + $(attr aborted "$counters") ))
  s=$(( total - executed )); [ "$s" -lt 0 ] && s=0
  printf '    %-40s %5d passed, %d failed, %d skipped\n' "$(basename "$trx" .trx)" "$p" "$f" "$s"
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
done

STATUS=0
if [ ${#FAILED_PROJECTS[@]} -gt 0 ]; then warn "projects that failed: ${FAILED_PROJECTS[*]}"; STATUS=1; fi
if [ "$BUILD_FAILED" = 1 ]; then warn "the build failed (see the compiler output above)"; STATUS=1; fi
if [ "$FAILED" -gt 0 ]; then STATUS=1; fi
if [ $((PASSED + FAILED)) -eq 0 ]; then warn "no test ran ($RAN test project(s) run)"; STATUS=1; fi

SUMMARY_PRINTED=1
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
exit "$STATUS"
