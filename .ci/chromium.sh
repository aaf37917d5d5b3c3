#!/usr/bin/env bash
# Install Debian's chromium (when missing) for the headless report test, and print the export
# that points the test at it. Idempotent; CI runs as root.
# Usage: eval "$(.ci/chromium.sh)"   -> exports TUNEPROOF_CHROMIUM
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium from Debian packages ==" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium >&2
fi
path=$(command -v chromium)
"$path" --version >&2
echo "export TUNEPROOF_CHROMIUM=$path"
