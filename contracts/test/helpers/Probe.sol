// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Test helper: reaches the precompile in ways a plain transaction cannot.
contract Probe {
    error Forwarded(bool ok, bytes ret);

    /// STATICCALLs `to` and returns its result (success flag and returndata).
    function staticForward(address to, bytes calldata data) external view returns (bool ok, bytes memory ret) {
        (ok, ret) = to.staticcall(data);
    }

    /// CALLs `to`, then reverts with the result: whatever the call changed must be undone.
    function callThenRevert(address to, bytes calldata data) external {
        (bool ok, bytes memory ret) = to.call(data);
        revert Forwarded(ok, ret);
    }

    /// DELEGATECALLs `to`.
    function delegateForward(address to, bytes calldata data) external returns (bool ok, bytes memory ret) {
        (ok, ret) = to.delegatecall(data);
    }
}
