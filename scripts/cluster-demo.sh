#!/usr/bin/env bash
# A multi-process orderhooks on one machine, on PostgreSQL:
#
#   1 `orderhooks api` + 2 `orderhooks worker` + `orderhooks receive`, sharing a fresh
#   database; `orderhooks simulate` posts a short stream of orders; the script waits for
#   the deliveries to settle, prints the counts, and stops exactly what it started.
#
# Usage:  scripts/cluster-demo.sh
# Needs:  a PostgreSQL server you may create a database on, psql, curl, and orderhooks
#         (the repository's .venv, or `orderhooks` on PATH).
# Knobs (environment):
#   PG_ADMIN_URL      where to create the demo database
#                     (default postgresql://postgres@127.0.0.1:5432/postgres)
#   DEMO_DURATION     seconds of new orders (default 10)
#   DEMO_RATE         new orders per second (default 4)
#   DEMO_SPEED        how much faster than real life each order moves (default 8)
#   DEMO_KEEP         1 keeps the database and the logs afterwards (default 0)
set -euo pipefail

PG_ADMIN_URL="${PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
DEMO_DURATION="${DEMO_DURATION:-10}"
DEMO_RATE="${DEMO_RATE:-4}"
DEMO_SPEED="${DEMO_SPEED:-8}"
DEMO_KEEP="${DEMO_KEEP:-0}"
READY_TIMEOUT_SECONDS=30
SETTLE_TIMEOUT_SECONDS=90
STOP_TIMEOUT_SECONDS=40 # a worker drains its attempts in flight for up to 30 s

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$ROOT/.venv/bin/orderhooks" ]]; then
  OH="$ROOT/.venv/bin/orderhooks"
  PY="$ROOT/.venv/bin/python"
else
  OH="$(command -v orderhooks)" || { echo "orderhooks is not installed" >&2; exit 1; }
  PY="$(command -v python3)"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/orderhooks-demo.XXXXXX")"
DB_NAME="orderhooks_demo_$$"
DB_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
DB_CREATED=0
PIDS=()

log() { printf '[cluster-demo] %s\n' "$*"; }

# Stop exactly the processes this script started, by pid: SIGTERM (they drain), then
# SIGKILL for any still running after STOP_TIMEOUT_SECONDS.
stop_started() {
  local pid waited=0
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((waited < STOP_TIMEOUT_SECONDS * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  local status=$?
  trap - EXIT
  stop_started
  if ((DB_CREATED)) && [[ "$DEMO_KEEP" != 1 ]]; then
    psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null || true
  fi
  if [[ "$DEMO_KEEP" == 1 || $status -ne 0 ]]; then
    log "logs kept in $WORK"
    ((DB_CREATED)) && [[ "$DEMO_KEEP" == 1 ]] && log "database kept: $DB_URL"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # url name
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
  until curl -fsS -o /dev/null "$1/readyz" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$2 did not become ready; its log:"
      tail -n 20 "$WORK/$2.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

json_field() { # field < json
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

start() { # name command port
  ORDERHOOKS_PORT="$3" ORDERHOOKS_DATA_DIR="$WORK/$1" "$OH" "$2" >"$WORK/$1.log" 2>&1 &
  PIDS+=("$!")
  log "started $1 (pid $!) on http://127.0.0.1:$3"
}

# --- the database ------------------------------------------------------------------
psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
DB_CREATED=1
log "created database $DB_NAME"

export ORDERHOOKS_DATABASE_URL="$DB_URL"
ORDERHOOKS_ADMIN_KEY="demo-admin-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export ORDERHOOKS_ADMIN_KEY
export ORDERHOOKS_REQUIRE_AGREEMENT=false       # the demo records no agreements
export ORDERHOOKS_ALLOWED_NETWORKS=127.0.0.0/8  # the receiver listens on loopback
export ORDERHOOKS_LOG_FORMAT=json
export ORDERHOOKS_DB_POOL_SIZE=5

"$OH" migrate --data-dir "$WORK/migrate" 2>>"$WORK/migrate.log" | sed 's/^/[cluster-demo] migration applied: /'

# --- the processes -----------------------------------------------------------------
API_PORT="$(free_port)"
API="http://127.0.0.1:$API_PORT"
start api api "$API_PORT"
WORKER_URLS=()
for n in 1 2; do
  port="$(free_port)"
  start "worker-$n" worker "$port"
  WORKER_URLS+=("http://127.0.0.1:$port")
done
wait_ready "$API" api
for n in 1 2; do wait_ready "${WORKER_URLS[$((n - 1))]}" "worker-$n"; done
log "api and workers ready"

ACCOUNTS="demo-acct-1,demo-acct-2"
RX_PORT="$(free_port)"
AUTH="Authorization: Bearer $ORDERHOOKS_ADMIN_KEY"
# Creating a webhook sends nothing to its URL, so the receiver may start afterwards,
# with the secret the webhook was given.
WEBHOOK="$(curl -fsS -H "$AUTH" -H 'content-type: application/json' "$API/v1/webhooks" -d "{
  \"url\": \"http://127.0.0.1:$RX_PORT/hook\",
  \"description\": \"cluster demo\",
  \"accounts\": [\"demo-acct-1\", \"demo-acct-2\"],
  \"eventTypes\": [\"order.new\", \"order.status_update\", \"order.courier_update\"]
}")"
WEBHOOK_ID="$(json_field id <<<"$WEBHOOK")"
ORDERHOOKS_RECEIVE_SECRET="$(json_field secret <<<"$WEBHOOK")" \
  "$OH" receive --port "$RX_PORT" >"$WORK/receive.log" 2>&1 &
PIDS+=("$!")
log "started receive (pid $!) on http://127.0.0.1:$RX_PORT for webhook $WEBHOOK_ID"
until curl -s -o /dev/null "http://127.0.0.1:$RX_PORT/"; do sleep 0.2; done

# --- the traffic -------------------------------------------------------------------
log "simulating ${DEMO_RATE} orders/s for ${DEMO_DURATION} s (each order ${DEMO_SPEED}x faster than life)"
"$OH" simulate --url "$API" --rate "$DEMO_RATE" --duration "$DEMO_DURATION" \
  --speed "$DEMO_SPEED" --accounts-list "$ACCOUNTS"

stats() { curl -fsS -H "$AUTH" "$API/v1/webhooks/$WEBHOOK_ID/stats"; }
settled() {
  stats | "$PY" -c 'import json, sys; c = json.load(sys.stdin)["counts"]; sys.exit(c["pending"] + c["delivering"] > 0)'
}
deadline=$((SECONDS + SETTLE_TIMEOUT_SECONDS))
until settled; do
  ((SECONDS < deadline)) || { log "deliveries did not settle in ${SETTLE_TIMEOUT_SECONDS} s"; break; }
  sleep 0.5
done

# --- the counts --------------------------------------------------------------------
echo
log "delivery counts of webhook $WEBHOOK_ID:"
# The webhook's stats, one line per figure (the Python is quoted for bash by the heredoc).
read -r -d '' SUMMARY_PY <<'PY' || true
import json, sys
stats = json.load(sys.stdin)
latency = stats["latencyMs"]
print("  by state: " + ", ".join(f"{state} {n}" for state, n in stats["counts"].items()))
print(f"  success rate {stats['successRate']}, latency ms p50 {latency['p50']}, p95 {latency['p95']}")
PY
stats | "$PY" -c "$SUMMARY_PY"
for n in 1 2; do
  delivered="$(curl -fsS "${WORKER_URLS[$((n - 1))]}/metrics" |
    awk '/^orderhooks_delivery_attempts_total\{outcome="delivered"\}/ {print $2}')"
  log "  worker-$n delivered ${delivered:-0} attempts"
done
log "  receive verified and printed $(grep -c ' seq ' "$WORK/receive.log" || true) events, rejected $(grep -c 'rejected (401)' "$WORK/receive.log" || true)"
