#!/usr/bin/env bash
# The main job (README "Set-up"): installs the pinned Foundry toolchain if needed, compiles
# the Solidity examples, then publishes real models and has the example contracts call them
# in signed transactions executed block by block with the Myelin EVM (tests/src/bin/demo.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ] || npm ci --no-audit --no-fund
scripts/forge build --quiet
cargo run -p myelin-tests --bin demo  # the first run compiles the workspace (several minutes)
