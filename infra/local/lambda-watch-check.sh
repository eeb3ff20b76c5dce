#!/usr/bin/env bash
# Scripted check of the `cargo lambda watch` loop: the dev runner forwards every stream
# batch and SQS batch to the function binaries that `cargo lambda watch` builds and
# runs, and an order placed through the API goes all the way to CONFIRMED with a
# shipment. Expects the emulators up and the tools installed (`make check-lambda-watch`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

prefix="lw$(date +%s)"
state=".local/run"
api_port="${ORDERFLOW_CHECK_API_PORT:-3190}"
invoke_port="${ORDERFLOW_CHECK_INVOKE_PORT:-9190}"
export PATH="$PWD/.local/venv-tools/bin:$PATH"
mkdir -p "$state"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# The selection `make test` builds (Makefile, BUILD_DEBUG): nothing is compiled again.
cargo build --quiet --locked --workspace --bins --tests
target/debug/orderflow-dev up --prefix "$prefix" --state-dir "$state" --provision-only >/dev/null

cargo-lambda lambda watch --env-file "$state/$prefix.env" --invoke-port "$invoke_port" >"$state/$prefix-watch.log" 2>&1 &
pids+=($!)
target/debug/orderflow-dev up --prefix "$prefix" --state-dir "$state" --listen "127.0.0.1:$api_port" --ops-listen 127.0.0.1:0 \
  --lambda-watch "http://127.0.0.1:$invoke_port" >"$state/$prefix-dev.out" 2>"$state/$prefix-dev.err" &
pids+=($!)

for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$api_port/products" && break; sleep 0.5; done
# Every route needs a token of the local issuer, as API Gateway's JWT authorizer does.
token=$(target/debug/orderflow token --prefix "$prefix" --state-dir "$state" --customer c-1)
auth=(-H "Authorization: Bearer $token")
order=$(curl -sf "${auth[@]}" -X POST "http://127.0.0.1:$api_port/orders" -H 'content-type: application/json' \
  -H "Idempotency-Key: $prefix-1" \
  -d '{"customerId":"c-1","items":[{"sku":"SKU-1","quantity":1}],"paymentToken":"tok_visa","shippingAddress":{"name":"Ada","line1":"1 Main St","city":"Springfield","postalCode":"12345","country":"US"}}')
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["orderId"])' "$order")
echo "lambda-watch check: order $id placed; waiting for cargo lambda watch to build and run the functions"
for _ in $(seq 1 120); do
  state_now=$(curl -sf "${auth[@]}" "http://127.0.0.1:$api_port/orders/$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], "shipped" if d.get("shipment") else "")')
  if [[ "$state_now" == "CONFIRMED shipped" ]]; then
    grep -q '"target":"payment"' "$state/$prefix-watch.log" || { echo "payment did not run under cargo lambda watch"; exit 1; }
    echo "lambda-watch check: order $id CONFIRMED and shipped through cargo lambda watch"
    exit 0
  fi
  sleep 5
done
echo "lambda-watch check: order $id did not reach CONFIRMED (last: $state_now)"
tail -n 30 "$state/$prefix-watch.log" "$state/$prefix-dev.err"
exit 1
