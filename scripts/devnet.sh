#!/usr/bin/env bash
# Runs Myelin on a real reth dev node: starts `myelin-node node --dev`, publishes the digit
# model with a transaction, deploys the DigitGame example, calls it with cast (eth_call and a
# transaction), prints results and gas, and stops the node.
# Needs the node binary (reth-ext/README.md, "Building"); set MYELIN_NODE to its path.
set -euo pipefail
cd "$(dirname "$0")/.."
node_bin=${MYELIN_NODE:-reth-ext/node/target/release/myelin-node}
[ -x "$node_bin" ] || node_bin=reth-ext/node/target/debug/myelin-node
[ -x "$node_bin" ] || { echo "build the node first: (cd reth-ext/node && cargo build --release --locked)"; exit 1; }
rpc=http://127.0.0.1:8545
key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 # reth --dev's first prefunded account
myelin=0x0000000000000000000000000000000000000a11

[ -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ] || npm ci --no-audit --no-fund
cargo build -q -p myelin-cli --bin myelin
scripts/forge build --quiet

datadir=$(mktemp -d)
"$node_bin" node --dev --http --http.api eth,net,web3 --datadir "$datadir" >"$datadir/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$datadir"' EXIT
for _ in $(seq 60); do scripts/cast chain-id --rpc-url $rpc >/dev/null 2>&1 && break; sleep 1; done
echo "node up: chain id $(scripts/cast chain-id --rpc-url $rpc), $(grep -o 'Myelin precompile configured.*' "$datadir/node.log" | head -1)"

run() { echo "\$ $*" | cut -c1-160; "$@"; }
id=$(target/debug/myelin inspect models/digits_mlp.myl | awk '/^id/ {print $2}')
run scripts/cast send --rpc-url $rpc --private-key $key $myelin "$(target/debug/myelin calldata publish models/digits_mlp.myl)" \
  | grep -E '^(status|gasUsed|blockNumber)'
run scripts/cast call --rpc-url $rpc $myelin "modelInfo(bytes32)((uint32[],uint32[],(int32,int8,int8),(int32,int8,int8),uint32,uint32,uint64,uint64,uint64,uint64))" "$id"
game=$(scripts/forge create --rpc-url $rpc --private-key $key --broadcast contracts/src/examples/DigitGame.sol:DigitGame \
  --constructor-args "$id" 500000000000000000 | awk '/Deployed to/ {print $3}')
echo "DigitGame deployed at $game"
pixels=$(node -e 'const f=require("./contracts/test/fixtures/digits.json");const s=f.samples[7];
  console.log("0x"+Buffer.from(s.pixels).toString("hex"))')
echo "held-out drawing of a 7: $pixels"
run scripts/cast call --rpc-url $rpc "$game" "classify(bytes)(uint8,uint256)" "$pixels"
run scripts/cast estimate --rpc-url $rpc "$game" "draw(bytes)" "$pixels"
run scripts/cast send --rpc-url $rpc --private-key $key "$game" "draw(bytes)" "$pixels" | grep -E '^(status|gasUsed|blockNumber)'
