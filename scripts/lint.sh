#!/usr/bin/env bash
# The checks CI runs before the tests: ruff lint, ruff format and mypy --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(voicekit tests benchmarks examples scripts)
.venv/bin/ruff check "${paths[@]}"
.venv/bin/ruff format --check "${paths[@]}"
.venv/bin/mypy voicekit
