// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMyelin} from "../src/IMyelin.sol";
import {Myelin} from "../src/Myelin.sol";
import {MyelinTest} from "./MyelinBridge.sol";

contract MyelinLibTest is MyelinTest {
    bytes32 internal digits;

    function setUp() public {
        installMyelin();
        digits = publishFile("models/digits_mlp.myl");
    }

    function testDecodingHelpers() public pure {
        bytes memory out = hex"80ff7f0105";
        assertEq(Myelin.int8At(out, 0), -128);
        assertEq(Myelin.int8At(out, 1), -1);
        assertEq(Myelin.int8At(out, 2), 127);
        int8[] memory v = Myelin.toInt8s(out);
        assertEq(v.length, 5);
        assertEq(v[4], 5);
        (uint256 i, int8 best) = Myelin.argmax(out);
        assertEq(i, 2);
        assertEq(best, 127);
        uint256[] memory top = Myelin.topK(out, 3);
        assertEq(top[0], 2);
        assertEq(top[1], 4);
        assertEq(top[2], 3);
        assertEq(Myelin.softmaxProbability(out, 2), 255e18 / 256);
        assertEq(Myelin.softmaxProbability(out, 0), 0);
    }

    function testInvalidModelReasons() public pure {
        assertEq(Myelin.invalidModelReason(4), "unsupported version");
        assertEq(Myelin.invalidModelReason(6), "trailing bytes");
        assertEq(Myelin.invalidModelReason(42), "int32 overflow possible");
        assertEq(Myelin.invalidModelReason(53), "too many activations");
        assertEq(Myelin.invalidModelReason(0), "unknown code");
        assertEq(Myelin.invalidModelReason(9), "unknown code");
        assertEq(Myelin.invalidModelReason(Myelin.HEADER), "unknown code");
    }

    function testArgmaxTakesFirstOnTies() public pure {
        (uint256 i,) = Myelin.argmax(hex"0505");
        assertEq(i, 0);
        (i,) = Myelin.argmax(hex"80");
        assertEq(i, 0);
    }

    function testOutOfRangeIndexReverts() public {
        vm.expectRevert(abi.encodeWithSelector(Myelin.OutputIndexOutOfRange.selector, 3, 2));
        this.int8At(hex"0102", 3);
    }

    function int8At(bytes memory out, uint256 i) external pure returns (int8) {
        return Myelin.int8At(out, i);
    }

    function testModelInfo() public view {
        IMyelin.ModelInfo memory info = Myelin.modelInfo(digits);
        assertEq(info.inputShape.length, 1);
        assertEq(info.inputShape[0], 64);
        assertEq(info.outputShape[0], 10);
        assertEq(info.macs, 64 * 32 + 32 * 16); // 10 outputs run (and are charged) as a 16-lane panel
        assertEq(info.output.zeroPoint, -128, "softmax output");
        assertGt(info.inferGas, 0);
    }

    function testWrongInputLengthReverts() public {
        vm.expectRevert(abi.encodeWithSelector(IMyelin.InvalidInputLength.selector, 64, 10));
        this.infer(digits, new bytes(10));
    }

    function infer(bytes32 id, bytes memory input) external view returns (bytes memory) {
        return Myelin.infer(id, input);
    }

    /// The call costs what modelInfo publishes (plus the ABI plumbing around it).
    function testGasMatchesModelInfo() public view {
        uint256 published = Myelin.modelInfo(digits).inferGas;
        uint256 before = gasleft();
        Myelin.infer(digits, new bytes(64));
        uint256 used = before - gasleft();
        assertGe(used, published);
        assertLe(used, published + 15_000);
    }

    function testInferFixedMatchesRawInfer() public view {
        IMyelin.ModelInfo memory info = Myelin.modelInfo(digits);
        int256[] memory x = new int256[](64);
        bytes memory raw = new bytes(64);
        for (uint256 i = 0; i < 64; i++) {
            x[i] = int256(i % 17) * 1e18 / 16;
        }
        int256[] memory probs = Myelin.inferFixed(digits, x, 18);
        assertEq(probs.length, 10);
        // Quantize the same way by hand to cross-check: the input scale maps [0,1] onto int8.
        for (uint256 i = 0; i < 64; i++) {
            raw[i] = bytes1(uint8(_quantize(x[i], info.input)));
        }
        bytes memory out = Myelin.infer(digits, raw);
        for (uint256 k = 0; k < 10; k++) {
            assertEq(uint256(probs[k]), Myelin.softmaxProbability(out, k));
        }
    }

    /// clamp(round(x / 1e18 / scale) + zp), scale = mult · 2^(shift − 31), ties away from zero.
    function _quantize(int256 x, IMyelin.Quantization memory q) private pure returns (int8) {
        int256 shift = int256(q.scaleShift) - 31;
        int256 num = x * int256(2 ** uint256(-shift));
        int256 den = int256(1e18) * int256(q.scaleMult);
        int256 r = (num + (num >= 0 ? den / 2 : -den / 2)) / den + q.zeroPoint;
        return int8(r > 127 ? int256(127) : (r < -128 ? int256(-128) : r));
    }
}
