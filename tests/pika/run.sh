#!/usr/bin/env bash
# Runs the pika suite (tests/pika) against the brokers named in WARREN_BROKERS
# (default "embedded,rabbitmq"; see conftest.py). Extra arguments go to pytest.
#   WARREN_BIN            warren binary (default: newest of target/{release,debug}/warren)
#   WARREN_RABBITMQ_URL   RabbitMQ for the "rabbitmq" target (required when CI is set)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt

set +e
"$venv/bin/python" -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pika suite: no tests were collected or run: failing" >&2
    exit 1
fi
exit "$rc"
