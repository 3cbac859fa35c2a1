#!/usr/bin/env bash
# Build the documentation site (Sphinx + furo + MyST + sphinx-click) into docs/_build/html.
# Warnings are errors, so a broken link, reference or generated page fails the build.
#   scripts/docs.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${1:-docs/_build/html}"
exec .venv/bin/python -m sphinx -W --keep-going -n -q -b html docs "$OUT"
