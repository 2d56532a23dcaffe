#!/usr/bin/env bash
# The project's test command: fetch the real test models (cached outside the repo), build,
# and run the whole test suite. Models go to $AUTOGLM_MODELS (default ~/.cache/autoglm/models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh
swift build -c release --product autoglm
swift test -c release "$@"
