#!/usr/bin/env bash
# Screenshots of the operations console for docs/console.md (docs/console/*.png), taken by the browser test as
# it walks an operator's morning in Debian's Chromium (needs chromium and chromium-driver).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/console
SCREENSHOTS="$PWD/docs/console" cargo test --test console_browser -- --ignored --nocapture
ls -l docs/console
