#!/bin/sh
# Remove what postinstall generated, so removing the package leaves no /opt/consentry behind.
set -e
find /opt/consentry -depth -type d -name __pycache__ -exec rm -rf {} + 2>/dev/null || true
