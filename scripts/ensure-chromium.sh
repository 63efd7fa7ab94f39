#!/usr/bin/env bash
# The browser tests drive Debian's chromium (Playwright's own browser download is not used).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || [ -n "${COFFER_CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "The browser tests need Chromium. Install it (e.g. 'sudo apt-get install chromium')" >&2
echo "or point COFFER_CHROMIUM at a Chromium/Chrome executable." >&2
exit 1
