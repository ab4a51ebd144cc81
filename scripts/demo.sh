#!/usr/bin/env bash
# The main job: install if needed, then segment the bundled ultrasound cine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/install.sh"
exec "$ROOT/.venv/bin/samusa" demo "$@"
