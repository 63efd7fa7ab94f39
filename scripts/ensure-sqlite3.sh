#!/usr/bin/env bash
# tests/test_sqlite_tool.py checks the database with Debian's stock `sqlite3` command-line tool.
set -euo pipefail
if command -v sqlite3 >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's sqlite3 command-line tool for the tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
  exit 0
fi
echo "The tests need the sqlite3 command-line tool. Install it (e.g. 'sudo apt-get install sqlite3')." >&2
exit 1
