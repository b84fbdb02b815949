#!/usr/bin/env bash
# The load benchmark in one command: builds the release binary and the load driver, then runs every phase
# against a loopback sink. Arguments go to the driver (see --help), e.g. bench/load.sh --duration 30.
# Side by side with prometheus-webhook-dingtalk v2.1.0: PEER_BIN=/path/to/it bench/load.sh --rounds 3.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two builds: the driver's dev-dependencies must not change the binary being measured.
cargo build --release --locked --bin dingtalk-bridge
cargo build --release --locked --example loadbench
exec target/release/examples/loadbench --bridge target/release/dingtalk-bridge "$@"
