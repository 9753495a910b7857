#!/usr/bin/env bash
# Runs the integration suite against a real Temporal server persisting to
# PostgreSQL: the production path, as docker-compose.yml deploys it.
#
#   1. builds temporal-server, temporal-sql-tool and the temporal CLI from
#      the versions pinned in tools/go.mod (the same release as the compose
#      images) into .bin/;
#   2. creates fresh Temporal databases (dropped first) and sets up their
#      schemas with deploy/temporal-schema.sh, as compose's temporal-schema
#      service does;
#   3. generates a throwaway CA, a frontend certificate and a client
#      certificate (go run ./tlscerts/gencerts), and starts one
#      temporal-server process (frontend, history, matching and worker) with
#      deploy/temporal-postgres.yaml on free non-standard ports, its
#      frontend requiring mutual TLS; checks that a client without a
#      certificate is refused;
#   4. registers the namespace and the search attributes with
#      deploy/temporal-register.sh, as compose's temporal-register service does;
#   5. runs `go test -tags cluster ./integration` against it over mutual
#      TLS (every client, worker and starter of the suite presents the client
#      certificate), with the PostgreSQL store;
#   6. stops the server and drops the databases, pass or fail.
#
# Environment (all optional):
#   POSTGRES_URL        server to create the databases on; its user needs
#                       CREATEDB (postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
#   STORE_DATABASE_URL  the worker's store; by default a fresh database
#                       <prefix>_store on POSTGRES_URL's server. "sqlite" runs
#                       the suite with its own SQLite file instead.
#   TEST_CLUSTER_DB_PREFIX  names of the databases this script owns (temporal_it)
#   TEST_CLUSTER_PORT_BASE  first frontend port tried (17233; moves up if taken)
#   GO_TEST_FLAGS       extra `go test` flags, e.g. "-run TestLifecycle -v"
#   CLUSTER_RUN         "test" (default) runs step 5 as above; "bench" runs
#                       the benchmark (go run ./bench) against the server
#                       instead, once with one insuranceflow worker and once
#                       with two (`make bench-cluster`)
#   BENCH_FLAGS         extra flags for those runs, e.g. "-update-readme"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GO=${GO:-go}
BIN=$ROOT/.bin
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
PREFIX=${TEST_CLUSTER_DB_PREFIX:-temporal_it}
DB=$PREFIX
VISIBILITY_DB=${PREFIX}_visibility
STORE_DB=${PREFIX}_store
NAMESPACE=default

started=$SECONDS
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { echo "test-cluster: $*" >&2; exit 1; }
# Masks the password in user-info and in password= / sslpassword= (as
# store.RedactURL does for the Go programs).
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#; s#([?&](ssl)?password=)[^&]*#\1***#Ig' <<<"$1"; }

[[ $PREFIX =~ ^[a-z_][a-z0-9_]*$ ]] || die "TEST_CLUSTER_DB_PREFIX=$PREFIX: want lower-case letters, digits and _ (it names databases)"
PORT_BASE=${TEST_CLUSTER_PORT_BASE:-17233}
# The membership ports (base-300 and up) go into a smallint column, and the
# search below may move the base up by 7000.
if ! [[ $PORT_BASE =~ ^[0-9]{4,5}$ ]] || ((PORT_BASE < 1324 || PORT_BASE > 25000)); then
  die "TEST_CLUSTER_PORT_BASE=$PORT_BASE: want a number from 1324 to 25000"
fi
command -v psql >/dev/null || die "psql not found (Debian: apt-get install postgresql-client)"

# POSTGRES_URL's parts, for temporal-sql-tool and the server config, which
# take host, port, user and password separately. Percent-encoded user names
# and passwords are not decoded: use plain ones here.
url_re='^postgres(ql)?://(([^:@/]+)(:([^@/]*))?@)?([^:/?@]+)(:([0-9]+))?(/([^?]*))?(\?(.*))?$'
[[ $POSTGRES_URL =~ $url_re ]] || die "POSTGRES_URL=$(redact "$POSTGRES_URL"): not a postgres://user[:password]@host[:port]/db URL"
PG_USER=${BASH_REMATCH[3]:-postgres}
PG_PASSWORD=${BASH_REMATCH[5]}
PG_HOST=${BASH_REMATCH[6]}
PG_PORT=${BASH_REMATCH[8]:-5432}
PG_ADMIN_DB=${BASH_REMATCH[10]:-postgres}
PG_QUERY=${BASH_REMATCH[12]:-sslmode=disable}
pg_url() { echo "postgres://$PG_USER${PG_PASSWORD:+:$PG_PASSWORD}@$PG_HOST:$PG_PORT/$1?$PG_QUERY"; }

case ${STORE_DATABASE_URL:-} in
  "") STORE_URL=$(pg_url "$STORE_DB"); own_store=1 ;;
  sqlite) STORE_URL=; own_store= ;;
  *) STORE_URL=$STORE_DATABASE_URL; own_store= ;;
esac

# Two runs at once would drop each other's databases: take turns.
exec 9>"${TMPDIR:-/tmp}/insuranceflow-test-cluster-$PREFIX.lock"
if ! flock -n 9; then
  echo "test-cluster: waiting for another run with prefix $PREFIX to finish..."
  flock -w 900 9 || die "another test-cluster run with prefix $PREFIX still holds the lock after 15 minutes"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/insuranceflow-cluster-XXXXXX")
SERVER_LOG=$WORK/temporal-server.log
server_pid=
reached_postgres=
status=1

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$POSTGRES_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
drop_databases() {
  local db
  for db in "$DB" "$VISIBILITY_DB" ${own_store:+"$STORE_DB"}; do
    # FORCE (PostgreSQL 13+) ends connections a killed run left behind.
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || return 1
  done
}

cleanup() {
  trap - EXIT INT TERM
  # The tail as of the failure: what the server logs while stopping
  # would bury it.
  local tail_lines=
  if [ "$status" -ne 0 ] && [ -s "$SERVER_LOG" ]; then tail_lines=$(tail -n 60 "$SERVER_LOG"); fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 40); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$tail_lines" ]; then
    echo
    echo "== temporal-server log, last 60 lines before the failure (whole log: $SERVER_LOG)"
    echo "$tail_lines"
  fi
  if [ -n "$reached_postgres" ]; then
    drop_databases >/dev/null 2>&1 || echo "test-cluster: could not drop the $PREFIX databases" >&2
  fi
  if [ "$status" -eq 0 ]; then rm -rf "$WORK"; else echo "test-cluster: FAILED after $((SECONDS - started))s; logs kept in $WORK" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "building temporal-server, temporal-sql-tool and temporal (tools/go.mod)"
mkdir -p "$BIN"
"$GO" -C tools build -o "$BIN/temporal-server" go.temporal.io/server/cmd/server
"$GO" -C tools build -o "$BIN/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
"$GO" -C tools build -o "$BIN/temporal" github.com/temporalio/cli/cmd/temporal
SERVER_VERSION=$("$GO" -C tools list -m -f '{{.Version}}' go.temporal.io/server)
SCHEMA_DIR=$("$GO" -C tools list -m -f '{{.Dir}}' go.temporal.io/server)/schema/postgresql/v12
echo "temporal server $SERVER_VERSION; schemas from $SCHEMA_DIR"

step "creating fresh databases $DB, $VISIBILITY_DB${own_store:+ and $STORE_DB} on $PG_HOST:$PG_PORT"
psql_admin -Atc 'SELECT 1' >/dev/null || die "PostgreSQL at $PG_HOST:$PG_PORT does not answer (is it running? POSTGRES_URL=$(redact "$POSTGRES_URL"))"
reached_postgres=1
drop_databases
# The same script compose's temporal-schema service runs, here with the
# schema files of the pinned server module.
PATH=$BIN:$PATH SQL_HOST=$PG_HOST SQL_PORT=$PG_PORT SQL_USER=$PG_USER SQL_PASSWORD=$PG_PASSWORD \
  SQL_DEFAULT_DB=$PG_ADMIN_DB TEMPORAL_DB_NAME=$DB TEMPORAL_VISIBILITY_DB_NAME=$VISIBILITY_DB \
  TEMPORAL_SCHEMA_DIR=$SCHEMA_DIR deploy/temporal-schema.sh >"$WORK/schema.log" 2>&1 ||
  { cat "$WORK/schema.log" >&2; die "schema set-up failed"; }
for db in "$DB" "$VISIBILITY_DB"; do
  echo "  $db: schema version $(psql "$(pg_url "$db")" -X -Atc 'SELECT curr_version FROM schema_version')"
done
if [ -n "$own_store" ]; then
  psql_admin -c "CREATE DATABASE \"$STORE_DB\""
fi

step "generating test certificates (CA, frontend, client)"
TLS_DIR=$WORK/tls
"$GO" run ./tlscerts/gencerts -dir "$TLS_DIR" -server-name temporal -hosts 127.0.0.1,localhost | sed 's/^/  /'
# What every client of the cluster needs, in the Temporal CLI's and SDK's
# names (the CLI reads them from the environment, as the worker does).
TLS_ENV=(
  TEMPORAL_TLS_CLIENT_CERT_PATH="$TLS_DIR/client.pem"
  TEMPORAL_TLS_CLIENT_KEY_PATH="$TLS_DIR/client-key.pem"
  TEMPORAL_TLS_SERVER_CA_CERT_PATH="$TLS_DIR/ca.pem"
  TEMPORAL_TLS_SERVER_NAME=temporal
)

step "starting temporal-server with mutual TLS on its frontend (deploy/temporal-postgres.yaml)"
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base_free() {
  local off
  for off in 0 1 2 6 10 767 -300 -299 -298 -294; do
    if port_in_use $(($1 + off)); then return 1; fi
  done
}
for _ in 1 2 3 4 5 6 7 8; do
  base_free "$PORT_BASE" && break
  PORT_BASE=$((PORT_BASE + 1000))
done
base_free "$PORT_BASE" || die "no free port range found from ${TEST_CLUSTER_PORT_BASE:-17233} up"
ADDRESS=127.0.0.1:$PORT_BASE

TEMPORAL_PORT_BASE=$PORT_BASE TEMPORAL_BIND_IP=127.0.0.1 \
  TEMPORAL_DB_HOST=$PG_HOST TEMPORAL_DB_PORT=$PG_PORT \
  TEMPORAL_DB_USER=$PG_USER TEMPORAL_DB_PASSWORD=$PG_PASSWORD \
  TEMPORAL_DB_NAME=$DB TEMPORAL_VISIBILITY_DB_NAME=$VISIBILITY_DB \
  TEMPORAL_DYNAMIC_CONFIG=$ROOT/deploy/temporal-dynamicconfig.yaml \
  TEMPORAL_LOG_LEVEL=${TEMPORAL_LOG_LEVEL:-warn} \
  TEMPORAL_FRONTEND_TLS_CERT=$TLS_DIR/server.pem TEMPORAL_FRONTEND_TLS_KEY=$TLS_DIR/server-key.pem \
  TEMPORAL_FRONTEND_TLS_CLIENT_CA=$TLS_DIR/ca.pem TEMPORAL_FRONTEND_TLS_SERVER_NAME=temporal \
  "$BIN/temporal-server" --root "$ROOT" --config deploy --env temporal-postgres --allow-no-auth start \
  >"$SERVER_LOG" 2>&1 9>&- &
server_pid=$!

# retry N CMD...: runs CMD once a second until it succeeds, N times at most,
# and gives up at once if the server has exited.
retry() {
  local n=$1; shift
  for _ in $(seq 1 "$n"); do
    if "$@" >"$WORK/last.out" 2>&1; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/last.out" >&2; die "temporal-server exited"; }
    sleep 1
  done
  cat "$WORK/last.out" >&2
  return 1
}
retry 90 env "${TLS_ENV[@]}" "$BIN/temporal" operator cluster health --address "$ADDRESS" --command-timeout 10s ||
  die "temporal-server on $ADDRESS not healthy after 90s"
echo "healthy on $ADDRESS over mutual TLS (pid $server_pid, log $SERVER_LOG)"
# The other half of mutual TLS: trusting the server is not enough.
if env TEMPORAL_TLS_SERVER_CA_CERT_PATH="$TLS_DIR/ca.pem" TEMPORAL_TLS_SERVER_NAME=temporal \
  "$BIN/temporal" operator cluster health --address "$ADDRESS" --command-timeout 10s >"$WORK/nocert.out" 2>&1; then
  cat "$WORK/nocert.out" >&2
  die "a client without a certificate was let in"
fi
echo "a client without a certificate is refused: $(tail -n 1 "$WORK/nocert.out" | cut -c1-160)"

step "registering namespace $NAMESPACE and the search attributes (deploy/temporal-register.sh)"
# The same script compose's temporal-register service runs.
env "${TLS_ENV[@]}" PATH="$BIN:$PATH" TEMPORAL_ADDRESS="$ADDRESS" TEMPORAL_NAMESPACE=$NAMESPACE REGISTER_WAIT=60 \
  deploy/temporal-register.sh 2>&1 | sed 's/^/  /' || die "registration failed"

if [ "${CLUSTER_RUN:-test}" = bench ]; then
  [ -n "$STORE_URL" ] || die "CLUSTER_RUN=bench needs the PostgreSQL store (STORE_DATABASE_URL=sqlite is for the suite)"
  "$GO" build -o "$BIN/" ./worker ./topsim ./starter
  # Both runs, whatever the first one's verdict; a missed target (exit 1)
  # fails the whole run at the end.
  missed=
  for workers in 1 2; do
    step "go run ./bench against $ADDRESS over mutual TLS, PostgreSQL store, $workers worker(s)"
    # The server's metrics (B+767) give the eager-dispatch share.
    # shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
    env "${TLS_ENV[@]}" "$GO" run ./bench -bin-dir "$BIN" -temporal-address "$ADDRESS" \
      -temporal-metrics "http://127.0.0.1:$((PORT_BASE + 767))/metrics" -temporal-shards "${TEMPORAL_NUM_HISTORY_SHARDS:-4}" \
      -database-url "$STORE_URL" -cluster-label "Temporal on PostgreSQL" -workers "$workers" \
      -n 200 -c 20 -open-policies 0 -out "bench-results/cluster-${workers}w" ${BENCH_FLAGS:-} || missed="$missed ${workers}w"
  done
  kill -0 "$server_pid" 2>/dev/null || die "temporal-server died during the benchmark"
  [ -z "$missed" ] || die "the benchmark failed or missed a target with:$missed (bench-results/cluster-*w/latest.md)"
  status=0
  step "benchmarked Temporal $SERVER_VERSION on PostgreSQL with one and two workers (bench-results/cluster-*w/)"
  exit 0
fi

step "go test -tags cluster ./integration against $ADDRESS over mutual TLS, store: $(redact "${STORE_URL:-SQLite, a file of the suite}")"
env_args=(IT_TEMPORAL_ADDRESS="$ADDRESS" IT_TEMPORAL_METRICS_ADDR="127.0.0.1:$((PORT_BASE + 767))" TEMPORAL_BIN="$BIN/temporal")
# devstack hands these to the worker and the starter as TEMPORAL_TLS_*.
for kv in "${TLS_ENV[@]}"; do env_args+=("IT_$kv"); done
if [ -n "$STORE_URL" ]; then env_args+=(IT_DATABASE_URL="$STORE_URL"); fi
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
env "${env_args[@]}" "$GO" test -tags cluster -count=1 -timeout 10m ${GO_TEST_FLAGS:-} ./integration
kill -0 "$server_pid" 2>/dev/null || die "temporal-server died during the suite"

status=0
step "passed: the integration suite against Temporal $SERVER_VERSION on PostgreSQL, over mutual TLS"
