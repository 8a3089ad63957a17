// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMyelin} from "../src/IMyelin.sol";
import {Myelin} from "../src/Myelin.sol";
import {MyelinTest} from "./MyelinBridge.sol";

/// The bridge answers with the real precompile: every committed golden vector (hand-made
/// rounding and op edge cases plus random models) must come back byte for byte. A wrong
/// answer from the precompile fails this suite.
contract BridgeTest is MyelinTest {
    function setUp() public {
        installMyelin();
    }

    function testGoldenVectorsThroughTheBridge() public {
        string memory json = vm.readFile("tests/vectors/v1.json");
        uint256 n;
        while (vm.keyExistsJson(json, string.concat("$[", vm.toString(n), "]"))) {
            string memory at = string.concat("$[", vm.toString(n), "]");
            bytes memory model = vm.parseBytes(string.concat("0x", vm.parseJsonString(json, string.concat(at, ".model"))));
            bytes memory input = vm.parseBytes(string.concat("0x", vm.parseJsonString(json, string.concat(at, ".input"))));
            bytes memory output = vm.parseBytes(string.concat("0x", vm.parseJsonString(json, string.concat(at, ".output"))));
            bytes32 id = Myelin.publish(model);
            assertEq(id, keccak256(model));
            assertEq(Myelin.infer(id, input), output, vm.parseJsonString(json, string.concat(at, ".name")));
            n++;
        }
        assertGe(n, 50);
    }

    function testUnknownModelRevertBubbles() public {
        bytes32 id = keccak256("no such model");
        vm.expectRevert(abi.encodeWithSelector(IMyelin.UnknownModel.selector, id));
        this.callInfer(id, new bytes(3));
    }

    function callInfer(bytes32 id, bytes memory input) external view returns (bytes memory) {
        return Myelin.infer(id, input);
    }

    function testPublishUnderStaticcallIsRefused() public {
        (bool ok, bytes memory ret) =
            Myelin.PRECOMPILE.staticcall(abi.encodeCall(IMyelin.publishModel, (hex"4d594c4e01")));
        assertFalse(ok);
        assertEq(ret, abi.encodeWithSelector(IMyelin.WriteInStaticContext.selector));
    }

    function testMalformedModelIsRejectedWithCode() public {
        // "MYLN" then version 2: code 4 (unsupported version) at the header (node 0xFFFF).
        (bool ok, bytes memory ret) = Myelin.PRECOMPILE.call(abi.encodeCall(IMyelin.publishModel, (hex"4d594c4e02")));
        assertFalse(ok);
        assertEq(ret, abi.encodeWithSelector(IMyelin.InvalidModel.selector, uint16(4), Myelin.HEADER));
        assertEq(Myelin.invalidModelReason(4), "unsupported version");
    }

    function testTooManyDecimalsIsRejected() public {
        bytes32 id = publishFile("models/digits_mlp.myl");
        vm.expectRevert(abi.encodeWithSelector(IMyelin.InvalidDecimals.selector, uint8(39)));
        this.callInferFixed(id, new int256[](64), 39);
    }

    function callInferFixed(bytes32 id, int256[] memory input, uint8 decimals)
        external
        view
        returns (int256[] memory)
    {
        return Myelin.inferFixed(id, input, decimals);
    }

    function testTooLittleGasHalts() public {
        bytes32 id = publishFile("models/digits_mlp.myl");
        uint256 before = gasleft();
        (bool ok, bytes memory ret) =
            Myelin.PRECOMPILE.call{gas: 5_000}(abi.encodeCall(IMyelin.infer, (id, new bytes(64))));
        assertFalse(ok);
        assertEq(ret.length, 0);
        assertGe(before - gasleft(), 5_000, "all forwarded gas is consumed");
    }
}
