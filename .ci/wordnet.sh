#!/usr/bin/env bash
# Install Debian's WordNet 3.0 database (when missing) for synonym replacement
# (augment.methods: [synonym]) and its tests, and print the export that points tuneproof at it.
# Idempotent; CI runs as root.
# Usage: eval "$(.ci/wordnet.sh)"   -> exports TUNEPROOF_WORDNET
set -euo pipefail

dir=/usr/share/wordnet
if [ ! -f "$dir/index.noun" ]; then
    echo "== installing wordnet-base from Debian packages ==" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends wordnet-base >&2
fi
test -f "$dir/index.noun" && test -f "$dir/data.noun"
echo "export TUNEPROOF_WORDNET=$dir"
