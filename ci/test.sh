#!/usr/bin/env bash
# The test suite: lint, strict typing of the reference implementation, then pytest
# (unit tests and the real-peer integration tests against dpdk-testpmd).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check reference_impl harness scenarios tests
ruff format --check reference_impl harness scenarios tests
mypy reference_impl
python -m pytest -q "$@"
