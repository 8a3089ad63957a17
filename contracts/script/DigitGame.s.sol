// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console} from "forge-std/console.sol";
import {DigitGame} from "../src/examples/DigitGame.sol";
import {MyelinScript} from "./MyelinScript.sol";

/// Deploys DigitGame for a published digit model and submits a held-out drawing of a 0:
///   MODEL=models/digits_mlp.myl scripts/forge script contracts/script/DigitGame.s.sol \
///     --rpc-url $RPC --private-key $KEY --broadcast --skip-simulation
contract PlayDigitGame is MyelinScript {
    function run() external returns (DigitGame game, uint8 digit) {
        simulateMyelin();
        bytes32 id = keccak256(vm.readFileBinary(vm.envString("MODEL")));
        string memory fixture = vm.readFile("contracts/test/fixtures/digits.json");
        uint256[] memory p = vm.parseJsonUintArray(fixture, ".samples[0].pixels");
        bytes memory pixels = new bytes(64);
        for (uint256 i = 0; i < 64; i++) {
            pixels[i] = bytes1(uint8(p[i]));
        }
        vm.startBroadcast();
        game = new DigitGame(id, 0.5e18);
        bool scored;
        (digit, scored) = game.draw(pixels);
        vm.stopBroadcast();
        console.log("DigitGame at %s: drawing of a 0 classified as %s, scored %s", address(game), digit, scored);
    }
}
