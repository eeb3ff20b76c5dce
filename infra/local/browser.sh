#!/usr/bin/env bash
# The browser the operations page's test drives (tests/ui/ops-page.mjs): Debian's
# Chromium package, and Playwright's core (no browser download of its own), pinned by
# tests/ui/package-lock.json. Installs what is missing; harmless when both are there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "browser: $chromium is missing; install Debian's chromium package (apt-get install chromium) or set CHROMIUM" >&2
    exit 1
  fi
  echo "browser: installing Debian's chromium"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -f tests/ui/node_modules/playwright-core/package.json ]; then
  npm ci --prefix tests/ui --no-audit --no-fund --ignore-scripts --loglevel=error
fi
echo "browser: $("$chromium" --version 2>/dev/null | head -1), playwright-core $(node -p "require('./tests/ui/node_modules/playwright-core/package.json').version")"
