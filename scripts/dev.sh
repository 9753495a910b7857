#!/usr/bin/env bash
# Starts the whole dev stack in the foreground: the pinned Temporal dev server
# (state in .data/temporal.db, so a second run finds the first run's
# policies), topsim as the TOP gateway, and the worker with its HTTP ingress.
# Every default below can be overridden from the environment, e.g.
#   TOP_GATEWAY_URL=https://gw.api.tbsandbox.com/router/rest make dev
# Ctrl-C (or any process dying) stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.bin
DATA=${DATA_DIR:-.data}
mkdir -p "$DATA"

export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export TEMPORAL_NAMESPACE=${TEMPORAL_NAMESPACE:-default}
# The dev server is on this machine: gzip on its gRPC calls only costs CPU.
export TEMPORAL_GRPC_COMPRESSION=${TEMPORAL_GRPC_COMPRESSION:-none}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
export DATABASE_URL=${DATABASE_URL:-sqlite://$DATA/insuranceflow.db}
export TOP_APP_KEY=${TOP_APP_KEY:-dev-app-key}
if [ -z "${TOP_APP_SECRET:-}" ] && [ -z "${TOP_APP_SECRET_FILE:-}" ]; then
  export TOP_APP_SECRET=dev-app-secret
fi
export TOPSIM_ADDR=${TOPSIM_ADDR:-127.0.0.1:8788}
export TOP_GATEWAY_URL=${TOP_GATEWAY_URL:-http://$TOPSIM_ADDR/router/rest}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
export INGRESS_TOKENS=${INGRESS_TOKENS:-dev-token}
# Payload encryption: a dev key generated once and kept with the dev data,
# so earlier runs' histories still decrypt. The worker serves /codec, through
# which the UI shows the decrypted payloads. PAYLOAD_KEYS_FILE= (set, empty)
# turns encryption off.
if [ -z "${PAYLOAD_KEYS_FILE+set}" ]; then
  PAYLOAD_KEYS_FILE=$DATA/payload-keys
  if [ ! -f "$PAYLOAD_KEYS_FILE" ]; then
    (umask 077 && printf '# dev payload keys: key-id:base64-key, the first encrypts\ndev-%s:%s\n' \
      "$(date +%Y%m%d)" "$(head -c32 /dev/urandom | base64)" >"$PAYLOAD_KEYS_FILE")
    echo "generated a dev payload key in $PAYLOAD_KEYS_FILE"
  fi
fi
export PAYLOAD_KEYS_FILE
export CODEC_CORS_ORIGINS=${CODEC_CORS_ORIGINS:-http://localhost:$TEMPORAL_UI_PORT,http://127.0.0.1:$TEMPORAL_UI_PORT}
# The codec endpoint decrypts whatever it is sent, so it has its own
# loopback listener, not the ingress's (the worker refuses to serve it beyond
# loopback without CODEC_AUTH_TOKENS).
export CODEC_ADDR=${CODEC_ADDR:-127.0.0.1:8089}
CODEC_ENDPOINT=${CODEC_ENDPOINT:-http://$CODEC_ADDR/codec}
codec_args=()
payload_info="not encrypted (PAYLOAD_KEYS_FILE is empty)"
if [ -n "$PAYLOAD_KEYS_FILE" ]; then
  codec_args=(--ui-codec-endpoint "$CODEC_ENDPOINT")
  payload_info="encrypted with the keys in $PAYLOAD_KEYS_FILE; the UI decodes them through $CODEC_ENDPOINT"
fi
# Notifications: the worker signs one per callback outcome and POSTs it to
# topsim's receiver, which verifies the signature and lists what it got. The
# secret is generated once and kept with the dev data. NOTIFY_URL= (set,
# empty) turns notifications off.
if [ -z "${NOTIFY_SECRET:-}" ] && [ -z "${NOTIFY_SECRET_FILE:-}" ]; then
  NOTIFY_SECRET_FILE=$DATA/notify-secret
  if [ ! -f "$NOTIFY_SECRET_FILE" ]; then
    (umask 077 && printf 'whsec_%s\n' "$(head -c32 /dev/urandom | base64)" >"$NOTIFY_SECRET_FILE")
    echo "generated a dev notification secret in $NOTIFY_SECRET_FILE"
  fi
  export NOTIFY_SECRET_FILE
fi
if [ -z "${NOTIFY_URL+set}" ]; then
  NOTIFY_URL=http://$TOPSIM_ADDR/notifications
fi
export NOTIFY_URL
notify_info="off (NOTIFY_URL is empty)"
if [ -n "$NOTIFY_URL" ]; then
  notify_info="$NOTIFY_URL (received: http://$TOPSIM_ADDR/_sim/notifications; verify one with $BIN/starter notify verify)"
fi
# The demo's parked callback: topsim answers call_success=false for these biz_ids.
TOPSIM_REJECT_PATTERN=${TOPSIM_REJECT_PATTERN:-PARK}

pids=()
stop() {
  trap - EXIT INT TERM
  echo
  echo "stopping the dev stack..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

temporal_port=${TEMPORAL_ADDRESS##*:}
temporal_ip=${TEMPORAL_ADDRESS%:*}
# OTEL_* are the worker's tracing settings. The dev server reads them too,
# and refuses to start with OTEL_TRACES_EXPORTER=console (it knows otlp only).
otel_unset=()
for v in $(compgen -e | grep '^OTEL_' || true); do otel_unset+=(-u "$v"); done
# The --dynamic-config-value flags below are deploy/temporal-dynamicconfig.yaml,
# the cluster's (reasons there); deploy's TestDevScriptRunsTheDynamicConfig
# fails when they differ.
env ${otel_unset[@]+"${otel_unset[@]}"} "$BIN/temporal" server start-dev \
  --ip "$temporal_ip" --port "$temporal_port" --ui-port "$TEMPORAL_UI_PORT" \
  --namespace "$TEMPORAL_NAMESPACE" \
  --db-filename "$DATA/temporal.db" \
  --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=NORMAL \
  --search-attribute BizId=Keyword --search-attribute PolicyState=Keyword \
  --search-attribute InsuranceType=Keyword --search-attribute CallbackState=Keyword \
  --dynamic-config-value frontend.enableExecuteMultiOperation=true \
  --dynamic-config-value frontend.enableUpdateWorkflowExecution=true \
  --dynamic-config-value frontend.enableUpdateWorkflowExecutionAsyncAccepted=true \
  --dynamic-config-value history.transferProcessorMaxPollRPS=200 \
  --dynamic-config-value system.enableActivityEagerExecution=true \
  --dynamic-config-value system.enableEagerWorkflowStart=true \
  ${codec_args[@]+"${codec_args[@]}"} \
  --log-level error >"$DATA/temporal.log" 2>&1 &
pids+=($!)

echo "waiting for the Temporal dev server on $TEMPORAL_ADDRESS (log: $DATA/temporal.log)..."
for _ in $(seq 1 120); do
  if "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "the Temporal dev server exited; see $DATA/temporal.log" >&2; exit 1; fi
  sleep 0.5
done

# With TOP_QPS set, topsim bans like TOP above it, so the dev stack shows
# at once if the worker ever goes over (topsim's /_sim/stats: qps_limited).
"$BIN/topsim" -addr "$TOPSIM_ADDR" -reject-pattern "$TOPSIM_REJECT_PATTERN" -receipts "$DATA/topsim-receipts.jsonl" \
  -qps-limit "${TOPSIM_QPS_LIMIT:-${TOP_QPS:-0}}" &
pids+=($!)

"$BIN/worker" &
pids+=($!)

sleep 1
cat <<INFO

insuranceflow dev stack is up
  Temporal UI   http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/$TEMPORAL_NAMESPACE/workflows
  ingress       http://$HTTP_ADDR   (token: $INGRESS_TOKENS)
  topsim        http://$TOPSIM_ADDR  (callbacks: http://$TOPSIM_ADDR/_sim/callbacks)
  payloads      $payload_info
  notifications $notify_info

Try:
  curl -sS -X POST http://$HTTP_ADDR/v1/insurance-results -H 'Authorization: Bearer ${INGRESS_TOKENS%%,*}' \\
    -H 'Content-Type: application/json' \\
    -d '{"biz_id":"24010900100YSKSSG","stage":1,"status":1,"time_of_occurrence":"$(TZ=Asia/Shanghai date '+%Y-%m-%d %H:%M:%S')","insurance_type":1}'
  ${PAYLOAD_KEYS_FILE:+PAYLOAD_KEYS_FILE=$PAYLOAD_KEYS_FILE }$BIN/starter status 24010900100YSKSSG

Ctrl-C stops everything.
INFO

# Exit (and stop the rest) as soon as any of the three dies.
wait -n "${pids[@]}"
echo "a dev stack process exited" >&2
