// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {Myelin} from "../src/Myelin.sol";
import {MyelinBridge} from "../test/MyelinBridge.sol";

/// @notice Base for Foundry scripts against a live Myelin chain. forge executes a script
/// locally before broadcasting, on an EVM without the precompile; `simulateMyelin()` etches the
/// bridge (the real precompile code via `myelin precompile`) into that local simulation only,
/// so results seen by the script match the chain. Nothing etched is broadcast. Broadcast with
/// `--skip-simulation`: forge's on-chain simulation re-runs each transaction on a fresh fork
/// without the precompile and would budget far too little gas (the node's eth_estimateGas,
/// used instead, sees the precompile).
abstract contract MyelinScript is Script {
    function simulateMyelin() internal {
        vm.etch(Myelin.PRECOMPILE, type(MyelinBridge).runtimeCode);
        vm.allowCheatcodes(Myelin.PRECOMPILE); // scripts on a fork restrict cheatcodes to themselves
    }
}
