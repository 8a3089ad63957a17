// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMyelin} from "../src/IMyelin.sol";
import {Myelin} from "../src/Myelin.sol";
import {MyelinTest} from "./MyelinBridge.sol";

/// The bridge answers with the real precompile: every committed golden vector (hand-made
/// rounding and op edge cases, random models, and one invalid model per validation rule) must
/// come back byte for byte: the id, the output, `modelInfo`'s gas, and the exact revert bytes
/// of `publishModel` for a rejected model. A wrong answer from the precompile fails this suite.
contract BridgeTest is MyelinTest {
    function setUp() public {
        installMyelin();
    }

    function _hex(string memory json, string memory key) private pure returns (bytes memory) {
        return vm.parseBytes(string.concat("0x", vm.parseJsonString(json, key)));
    }

    function testGoldenVectorsThroughTheBridge() public {
        string memory json = vm.readFile("tests/vectors/v1.json");
        uint256 n;
        uint256 rejected;
        while (vm.keyExistsJson(json, string.concat("$[", vm.toString(n), "]"))) {
            string memory key = string.concat("$[", vm.toString(n), "]");
            string memory name = vm.parseJsonString(json, string.concat(key, ".name"));
            bytes memory model = _hex(json, string.concat(key, ".model"));
            bytes32 id = bytes32(_hex(json, string.concat(key, ".id")));
            assertEq(keccak256(model), id, name);
            if (vm.keyExistsJson(json, string.concat(key, ".error"))) {
                uint16 code = uint16(vm.parseJsonUint(json, string.concat(key, ".error.code")));
                uint16 node = uint16(vm.parseJsonUint(json, string.concat(key, ".error.node")));
                (bool ok, bytes memory ret) =
                    Myelin.PRECOMPILE.call(abi.encodeCall(IMyelin.publishModel, (model)));
                assertFalse(ok, name);
                assertEq(ret, abi.encodeWithSelector(IMyelin.InvalidModel.selector, code, node), name);
                rejected++;
            } else {
                assertEq(Myelin.publish(model), id, name);
                bytes memory input = _hex(json, string.concat(key, ".input"));
                assertEq(Myelin.infer(id, input), _hex(json, string.concat(key, ".output")), name);
                assertEq(Myelin.modelInfo(id).inferGas, vm.parseJsonUint(json, string.concat(key, ".inferGas")), name);
            }
            n++;
        }
        assertGe(n, 200);
        assertGe(rejected, 30);
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
        // "MYLN" then version 5: code 4 (unsupported version) at the header (node 0xFFFF).
        (bool ok, bytes memory ret) = Myelin.PRECOMPILE.call(abi.encodeCall(IMyelin.publishModel, (hex"4d594c4e05")));
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
