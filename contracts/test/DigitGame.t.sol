// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {DigitGame} from "../src/examples/DigitGame.sol";
import {MyelinTest} from "./MyelinBridge.sol";

contract DigitGameTest is MyelinTest {
    DigitGame internal game;
    string internal fixture;

    function setUp() public {
        installMyelin();
        bytes32 id = publishFile("models/digits_mlp.myl");
        game = new DigitGame(id, 0.5e18);
        fixture = vm.readFile("contracts/test/fixtures/digits.json");
    }

    function _drawing(uint256 i) internal view returns (bytes memory pixels, uint256 label) {
        string memory key = string.concat(".samples[", vm.toString(i), "]");
        uint256[] memory p = vm.parseJsonUintArray(fixture, string.concat(key, ".pixels"));
        pixels = new bytes(p.length);
        for (uint256 k = 0; k < p.length; k++) {
            pixels[k] = bytes1(uint8(p[k]));
        }
        label = vm.parseJsonUint(fixture, string.concat(key, ".label"));
    }

    /// Held-out scikit-learn digits, one per class: the on-chain model gets every one right.
    function testClassifiesHeldOutDigits() public view {
        for (uint256 i = 0; i < 10; i++) {
            (bytes memory pixels, uint256 label) = _drawing(i);
            (uint8 digit, uint256 confidence) = game.classify(pixels);
            assertEq(digit, label);
            assertGt(confidence, 0.3e18);
        }
    }

    function testDrawingTheTargetScoresAndAdvances() public {
        (bytes memory zero,) = _drawing(0);
        (uint8 digit, bool scored) = game.draw(zero);
        assertEq(digit, 0);
        assertTrue(scored);
        assertEq(game.score(address(this)), 1);
        assertEq(game.target(), 1);
        (, scored) = game.draw(zero); // target is 1 now
        assertFalse(scored);
        assertEq(game.score(address(this)), 1);
    }

    function testRejectsBadImages() public {
        vm.expectRevert(abi.encodeWithSelector(DigitGame.NotAnImage.selector, 3));
        game.classify(new bytes(3));
        bytes memory pixels = new bytes(64);
        pixels[5] = bytes1(uint8(17));
        vm.expectRevert(abi.encodeWithSelector(DigitGame.PixelTooBright.selector, 5, 17));
        game.classify(pixels);
    }
}
