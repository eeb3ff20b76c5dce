#!/usr/bin/env bash
# Fuzzing from the contract: schemathesis (pinned, in its own venv) sends requests it
# generates from the OpenAPI description to a real `orderflow-dev up`, once with a
# customer's token and once with an operator's, and fails on a 5xx, a status, body,
# header or content type the description does not allow, a request outside the
# description that is not refused, or fewer than FUZZ_MIN_REQUESTS requests in all.
#
# Run under infra/local/with-emulators.sh (make fuzz does). FUZZ_EXAMPLES sets the
# examples per operation and phase; FUZZ_SEED replays a run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.local/venv-schemathesis"
orderflow="$root/target/debug/orderflow"
devtools="$root/target/debug/orderflow-dev"
examples="${FUZZ_EXAMPLES:-40}"
seed="${FUZZ_SEED:-$RANDOM}"
min_requests="${FUZZ_MIN_REQUESTS:-1000}"

log() { printf 'fuzz: %s\n' "$*" >&2; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
prefix="fuzz$$"
# The route throttles and the per-principal order rate are lifted: they answer 429s
# (described, and tested elsewhere) where the fuzzer should reach the handlers.
"$devtools" up --prefix "$prefix" --listen "127.0.0.1:$port" --ops-listen 127.0.0.1:0 --state-dir "$work" \
  --parameter-overrides ApiThrottleBurst=100000 ApiThrottleRate=100000 \
  PlaceOrderThrottleBurst=100000 PlaceOrderThrottleRate=100000 OrdersPerMinute=1000000 \
  >"$work/dev.log" 2>&1 &
dev=$!
cleanup() {
  kill "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

url="http://127.0.0.1:$port"
for _ in $(seq 1 240); do
  curl -sf -o /dev/null "$url/openapi.json" && break
  kill -0 "$dev" 2>/dev/null || { log "orderflow-dev up exited:"; tail -n 30 "$work/dev.log" >&2; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "$url/openapi.json" || { log "orderflow-dev up did not answer on $url"; exit 1; }

# The description as served, checked by a validator that is no code of ours: a
# description it refuses would make every client generator guess.
curl -sf "$url/openapi.json" -o "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json" >&2 || { log "the served OpenAPI description is not valid"; exit 1; }

total=0
for who in "--customer c-fuzz" "--operator ops-fuzz"; do
  # shellcheck disable=SC2086 # two words: the flag and its value
  token="$("$orderflow" token $who --prefix "$prefix" --state-dir "$work")"
  principal="${who%% *}"
  principal="${principal#--}"
  report="$work/report-${who#--}.ndjson"
  report="${report%% *}"
  log "schemathesis as ${who#--} against $url (seed $seed, $examples examples per operation)"
  # positive_data_acceptance holds every schema-valid request to an answer of 2xx,
  # or 404/409 where it names what does not exist or a transition the order refuses;
  # fuzz_hooks.py makes the catalog's SKUs the only valid ones, as the server has it.
  # object_level_authorization needs two principals in one run; tests/access.rs
  # asserts every route for the owner, another customer and an operator instead.
  # Run from the scratch directory: schemathesis keeps a cache where it runs.
  (cd "$work" && SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$here" ORDERFLOW_FUZZ_PRINCIPAL="$principal" ORDERFLOW_FUZZ_CATALOG="$root/infra/local/catalog.json" \
    "$venv/bin/schemathesis" run "$url/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all --exclude-checks object_level_authorization \
    --max-examples "$examples" --seed "$seed" --generation-database none \
    --phases examples,coverage,fuzzing,stateful \
    --report ndjson --report-ndjson-path "$report" \
    --no-color)
  count="$(python3 - "$report" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    event = json.loads(line)
    # Each ScenarioFinished event records the requests of one scenario.
    for key, value in event.items():
        if key == "ScenarioFinished":
            n += len(value.get("recorder", {}).get("interactions", {}))
print(n)
PY
)"
  log "${who#--}: $count requests"
  total=$((total + count))
done
log "$total requests in all"
if (( total < min_requests )); then
  log "fewer than $min_requests requests: raise FUZZ_EXAMPLES"
  exit 1
fi
