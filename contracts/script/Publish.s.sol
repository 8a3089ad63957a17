// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console} from "forge-std/console.sol";
import {Myelin} from "../src/Myelin.sol";
import {MyelinScript} from "./MyelinScript.sol";

/// Publishes a .myl model:
///   MODEL=models/digits_mlp.myl scripts/forge script contracts/script/Publish.s.sol \
///     --rpc-url $RPC --private-key $KEY --broadcast --skip-simulation
contract Publish is MyelinScript {
    function run() external returns (bytes32 id) {
        simulateMyelin();
        bytes memory model = vm.readFileBinary(vm.envString("MODEL"));
        vm.startBroadcast();
        id = Myelin.publish(model);
        vm.stopBroadcast();
        console.log("published %s bytes, id:", model.length);
        console.logBytes32(id);
    }
}
