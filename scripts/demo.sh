#!/usr/bin/env bash
# The main job (README "Set-up"): installs the pinned Foundry toolchain if needed, compiles
# the Solidity examples, then publishes real models and has the example contracts call them
# in signed transactions executed block by block with the Myelin EVM (tests/src/bin/demo.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ] || npm ci --no-audit --no-fund
scripts/forge build --quiet
# Build with the same units as scripts/test.sh (`cargo test --workspace` resolves features for
# the whole workspace, dev-dependencies included; `cargo run -p` would resolve them for one
# package and rebuild burn and alloy with other features), so neither command rebuilds what
# the other built (`--examples` too: `cargo test` builds them, and with them the benches
# library outside test mode). The first run compiles the workspace (several minutes).
cargo build --workspace --bins --tests --examples
target/debug/demo
