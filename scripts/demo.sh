#!/usr/bin/env bash
# Install Consentry and run the whole flow once, on embedded defaults, in a temporary home.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/consentry demo "$@"
