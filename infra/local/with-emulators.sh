#!/usr/bin/env bash
# Runs a command with the local emulators up, then stops them again unless they were
# already running before (a `make dev` session keeps its emulators).
#   infra/local/with-emulators.sh cargo nextest run --workspace
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
were_up="$("$here/emulators.sh" status | grep -c ': up' || true)"
"$here/emulators.sh" start || exit 1
"$@"
status=$?
if [[ "$were_up" -lt 2 ]]; then
  "$here/emulators.sh" stop
fi
exit "$status"
