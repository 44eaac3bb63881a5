#!/usr/bin/env bash
# Sets up and runs the test suite on a fresh machine: Python packages, a Redis server, Graphviz, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
# Debian package -> the command it provides: the feature store tests run redis-server, the diagram tests dot.
for pair in redis-server:redis-server graphviz:dot; do
  package="${pair%%:*}" command="${pair##*:}"
  if ! command -v "$command" >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq "$package" >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "$package"; }
  fi
done
exec python -m pytest "$@"
