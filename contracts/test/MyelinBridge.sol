// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Vm} from "forge-std/Vm.sol";
import {Myelin} from "../src/Myelin.sol";

/// @notice Stands in at the precompile address during `forge test` and forwards every call
/// to `myelin precompile`, which runs the node's own precompile code (not a mock) over a
/// local model store. It returns the returndata, bubbles reverts, burns the gas the precompile
/// reported, and turns the precompile's out-of-gas into an out-of-gas halt.
/// Each call is priced as the first of its transaction (cold model load).
contract MyelinBridge {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    error StaticProbe();

    /// Halts under STATICCALL (TSTORE is a state change), else reverts with StaticProbe, which
    /// undoes the write: never changes state. TSTORE costs 100 gas, so the probe is cheap.
    function staticProbe() external {
        assembly ("memory-safe") {
            tstore(0, 1)
        }
        revert StaticProbe();
    }

    function _isStatic() private returns (bool) {
        try this.staticProbe{gas: 5_000}() {
            return false;
        } catch (bytes memory reason) {
            // A halt (static context) leaves no revert data; only 5,000 gas is lost with it.
            return reason.length != 4 || bytes4(reason) != StaticProbe.selector;
        }
    }

    fallback(bytes calldata data) external payable returns (bytes memory) {
        uint256 gasLimit = gasleft();
        bool isStatic = _isStatic();
        string[] memory cmd = new string[](isStatic ? 14 : 13);
        cmd[0] = vm.envOr("MYELIN_BIN", string("target/debug/myelin"));
        cmd[1] = "precompile";
        cmd[2] = "--abi";
        cmd[3] = "--store";
        cmd[4] = vm.envOr("MYELIN_STORE", string("cache/myelin-store"));
        cmd[5] = "--caller";
        cmd[6] = vm.toString(msg.sender);
        cmd[7] = "--gas";
        cmd[8] = vm.toString(gasLimit);
        cmd[9] = "--value";
        cmd[10] = vm.toString(msg.value);
        uint256 n = 11;
        if (isStatic) cmd[n++] = "--static";
        cmd[n++] = "--";
        cmd[n] = vm.toString(data);
        (uint256 status, uint256 gasUsed, bytes memory ret) = abi.decode(vm.ffi(cmd), (uint256, uint256, bytes));
        if (status == 2) {
            assembly ("memory-safe") {
                invalid() // out of gas: consume everything, like the precompile's halt
            }
        }
        uint256 spent = gasLimit - gasleft();
        if (gasUsed > spent) {
            uint256 burn = gasUsed - spent;
            if (burn >= gasleft()) {
                assembly ("memory-safe") {
                    invalid()
                }
            }
            uint256 until = gasleft() - burn;
            while (gasleft() > until) {}
        }
        if (status == 1) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}

/// @notice Base for tests of contracts that use Myelin: call `installMyelin()` in `setUp()`.
abstract contract MyelinTest is Test {
    function installMyelin() internal {
        vm.etch(Myelin.PRECOMPILE, type(MyelinBridge).runtimeCode);
    }

    /// Publishes a committed .myl file (path relative to the repo root) and returns its id.
    function publishFile(string memory path) internal returns (bytes32) {
        return Myelin.publish(vm.readFileBinary(path));
    }
}
