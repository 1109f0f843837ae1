#!/usr/bin/env bash
# Starts the whole "work to do" example: a Conveyor server (jobs in PostgreSQL, ingesting RabbitMQ), the API, the
# task-consumer and the task-producer, and stops them all on Ctrl-C. See README.md beside this script.
#
#   examples/WorkToDo/run.sh              run until Ctrl-C
#   examples/WorkToDo/run.sh --smoke      start, create one work through the API, wait for one demand's work too, stop (exit 0 = fine)
#
# PostgreSQL and RabbitMQ: WORKTODO_POSTGRES (Npgsql connection string) and WORKTODO_AMQP (amqp:// URI), else
# CONVEYOR_TEST_POSTGRES / CONVEYOR_TEST_AMQP (what ./test.sh exports), else this script starts a throw-away PostgreSQL 15
# and RabbitMQ on free loopback ports the way ./test.sh does (Debian packages postgresql, rabbitmq-server) and stops them again.
# Ports: WORKTODO_CONVEYOR_PORT (default 5080), WORKTODO_API_PORT (5090). Producer interval: WORKTODO_EVERY (5s).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1

CONVEYOR_PORT=${WORKTODO_CONVEYOR_PORT:-5080}
API_PORT=${WORKTODO_API_PORT:-5090}
EVERY=${WORKTODO_EVERY:-5s}
RABBIT_QUEUE=work-demands
QUEUE=work
RUN=$(mktemp -d /tmp/worktodo-run.XXXXXX)
PIDS=()

log() { printf '==> %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_in_use "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_for() { # wait_for <seconds> <what> <command...>
  local t=$1 what=$2 i; shift 2
  for ((i = 0; i < t * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out after ${t}s waiting for $what (logs: $RUN)"
}

CLEANUPS=()
stop_rabbit() { # stop_rabbit <pid of the rabbitmq-server script>
  "${RENV[@]}" "$RB/rabbitmqctl" stop >/dev/null 2>&1 || kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do wait "${PIDS[$i]}" 2>/dev/null || true; done
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ PostgreSQL and RabbitMQ
PG=${WORKTODO_POSTGRES:-${CONVEYOR_TEST_POSTGRES:-}}
AMQP=${WORKTODO_AMQP:-${CONVEYOR_TEST_AMQP:-}}
if [ -z "$PG" ]; then
  PGBIN=/usr/lib/postgresql/15/bin
  [ -x "$PGBIN/postgres" ] || die "no WORKTODO_POSTGRES given and no PostgreSQL 15 in $PGBIN (apt-get install postgresql)"
  port=$(free_port 55440)
  # Its own directory: initdb runs as the postgres user, who cannot enter root's mktemp directory $RUN.
  pgdir=$(mktemp -d /tmp/worktodo-pg.XXXXXX)
  chown postgres: "$pgdir" && chmod 700 "$pgdir"
  CLEANUPS+=("rm -rf '$pgdir'")
  log "PostgreSQL: throw-away instance on 127.0.0.1:$port"
  runuser -u postgres -- "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$pgdir/initdb.log" 2>&1 \
    || { cat "$pgdir/initdb.log" >&2; die "initdb failed"; }
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pgdir" start >/dev/null \
    || { cat "$pgdir/postgres.log" >&2; die "PostgreSQL did not start"; }
  CLEANUPS+=("runuser -u postgres -- '$PGBIN/pg_ctl' -D '$pgdir/data' -m fast -w -t 30 stop >/dev/null 2>&1")
  PG="Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
fi
if [ -z "$AMQP" ]; then
  RB=/usr/lib/rabbitmq/bin
  [ -x "$RB/rabbitmq-server" ] || die "no WORKTODO_AMQP given and no rabbitmq-server in $RB (apt-get install rabbitmq-server)"
  port=$(free_port 55680); dist=$(free_port $((port + 1))); epmd_port=$(free_port $((dist + 1)))
  dir=$RUN/rabbit; mkdir -p "$dir/mnesia" "$dir/log"; echo "[]." > "$dir/enabled_plugins"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$port" > "$dir/rabbitmq.conf"
  RENV=(env HOME="$dir" RABBITMQ_NODENAME="worktodo-$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port"
    RABBITMQ_DIST_PORT="$dist" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$epmd_port" RABBITMQ_MNESIA_BASE="$dir/mnesia"
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
  log "RabbitMQ: throw-away broker on 127.0.0.1:$port"
  epmd -address 127.0.0.1 -port "$epmd_port" </dev/null >"$dir/epmd.log" 2>&1 &
  CLEANUPS+=("kill $! 2>/dev/null")
  "${RENV[@]}" "$RB/rabbitmq-server" </dev/null >"$dir/stdout.log" 2>&1 &
  CLEANUPS+=("stop_rabbit $!")
  wait_for 120 "RabbitMQ" "${RENV[@]}" "$RB/rabbitmqctl" await_startup
  AMQP="amqp://guest:guest@127.0.0.1:$port/"
fi

# ------------------------------------------------------------------ build
log "building (Release)"
for project in src/Conveyor.Cli examples/WorkToDo/WorkToDo.Api examples/WorkToDo/WorkToDo.TaskConsumer \
               examples/WorkToDo/WorkToDo.TaskProducer examples/WorkToDo/WorkToDo.Cli examples/WorkToDo/WorkToDo.RawHttp; do
  dotnet build "$project" -c Release -v quiet -nologo >"$RUN/build.log" 2>&1 || { cat "$RUN/build.log" >&2; die "build of $project failed"; }
done
bin() { echo "$ROOT/$1/bin/Release/net10.0/$2.dll"; }

start() { # start <name> <command...>: runs it with its output prefixed by [name]
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  PIDS+=($!)
}

CONVEYOR=http://127.0.0.1:$CONVEYOR_PORT
API=http://127.0.0.1:$API_PORT
export WORKTODO_POSTGRES=$PG WORKTODO_AMQP=$AMQP WORKTODO_CONVEYOR=$CONVEYOR WORKTODO_API=$API

# Conveyor keeps its jobs in the same database (schema "conveyor") and ingests RabbitMQ's work-demands into queue "work".
start conveyor dotnet "$(bin src/Conveyor.Cli conveyor)" serve --port "$CONVEYOR_PORT" --postgres "$PG" \
  --amqp "$AMQP" --ingest "$RABBIT_QUEUE=$QUEUE"
wait_for 60 "the Conveyor server on $CONVEYOR" curl -fsS "$CONVEYOR/readyz"
start api dotnet "$(bin examples/WorkToDo/WorkToDo.Api worktodo-api)" --url "$API"
wait_for 60 "the API on $API" curl -fsS "$API/healthz"
start consumer dotnet "$(bin examples/WorkToDo/WorkToDo.TaskConsumer worktodo-task-consumer)"
start producer dotnet "$(bin examples/WorkToDo/WorkToDo.TaskProducer worktodo-task-producer)" --every "$EVERY" --rabbit-queue "$RABBIT_QUEUE"

CLI="dotnet $(bin examples/WorkToDo/WorkToDo.Cli worktodo-cli)"
RAW="dotnet $(bin examples/WorkToDo/WorkToDo.RawHttp worktodo-raw)"
if [ "$SMOKE" = 1 ]; then
  id=$(curl -fsS -X POST "$API/work" | sed -E 's/.*"id":([0-9]+).*/\1/')
  log "smoke: created work $id through the API"
  wait_for 60 "work $id to be done" sh -c "curl -fsS '$API/work/$id' | grep -q '\"done\":true'"
  wait_for 60 "a consumer- work" sh -c "curl -fsS '$API/work/search?work_code=consumer-' | grep -q '\"done\":true'"
  $CLI --id "$id" --call-type http
  $CLI --work-code consumer- --call-type db
  $RAW "$API/work/$id"
  echo
  log "smoke: OK"
  exit 0
fi

cat <<EOF

The example is running (Ctrl-C stops everything):
  Conveyor  $CONVEYOR   (dashboard: $CONVEYOR/)
  API       $API
Try, in another terminal:
  curl -s -X POST $API/work
  curl -s $API/work/1
  curl -s '$API/work/search?work_code=consumer-&since=1h'
  $CLI --id 1 --call-type http --api $API
  $CLI --work-code api- --call-type db --postgres '$PG'
  $RAW $API/work/1
EOF
wait "${PIDS[@]}"
