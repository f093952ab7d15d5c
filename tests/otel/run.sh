#!/usr/bin/env bash
# Runs the observability suite (tests/otel): cross-language traces (pika instrumented
# by opentelemetry-instrumentation-pika <-> warren, exported over OTLP/HTTP to a
# receiver the tests run) and a real Prometheus scraping `warren serve
# --metrics-listen`. Installs its pinned requirements into tests/otel/.venv.
#   WARREN_BIN         warren binary (default: newest of target/{release,debug}/warren)
#   WARREN_PROMETHEUS  prometheus binary (default: prometheus on PATH; required when CI is set)
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
    echo "otel suite: no tests were collected or run: failing" >&2
    exit 1
fi
exit "$rc"
