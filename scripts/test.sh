#!/usr/bin/env bash
# Install if needed, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
# Two worker processes (SAMUSA_TEST_WORKERS; 0 runs in this process), each test file whole on
# one of them so module fixtures are built once; each worker's PyTorch gets its share of
# the cores (Testing/conftest.py).
WORKERS="${SAMUSA_TEST_WORKERS:-2}"
if [ "$WORKERS" = "0" ]; then
  exec "$ROOT/.venv/bin/python" -m pytest Testing "$@"
fi
exec "$ROOT/.venv/bin/python" -m pytest Testing -n "$WORKERS" --dist loadfile "$@"
