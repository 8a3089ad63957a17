// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMyelin} from "./IMyelin.sol";

/// @title Myelin: typed helpers over the Myelin precompile.
/// @notice Calls bubble the precompile's own custom errors (UnknownModel, InvalidInputLength,
/// ...) unchanged, so `vm.expectRevert(abi.encodeWithSelector(IMyelin.UnknownModel.selector, id))`
/// works in tests and block explorers decode them with IMyelin's ABI.
library Myelin {
    /// The precompile's default address (a chain may configure another one).
    address internal constant PRECOMPILE = 0x0000000000000000000000000000000000000a11;

    /// Probabilities and other fractions returned by this library have 18 decimals.
    uint256 internal constant ONE = 1e18;

    /// The precompile is not active on this chain (or not yet at this block).
    error MyelinUnavailable();
    /// An index is outside the model's output.
    error OutputIndexOutOfRange(uint256 index, uint256 length);

    // ---------------------------------------------------------------- calls

    /// Runs model `id` on raw int8 input (one byte per element).
    function infer(bytes32 id, bytes memory input) internal view returns (bytes memory output) {
        return abi.decode(_staticcall(abi.encodeCall(IMyelin.infer, (id, input))), (bytes));
    }

    /// Runs model `id` on fixed-point inputs with `decimals` decimals; outputs use the same.
    function inferFixed(bytes32 id, int256[] memory input, uint8 decimals) internal view returns (int256[] memory) {
        return abi.decode(_staticcall(abi.encodeCall(IMyelin.inferFixed, (id, input, decimals))), (int256[]));
    }

    /// Runs model `id` on several raw inputs in one call (one model load).
    function inferBatch(bytes32 id, bytes[] memory inputs) internal view returns (bytes[] memory) {
        return abi.decode(_staticcall(abi.encodeCall(IMyelin.inferBatch, (id, inputs))), (bytes[]));
    }

    /// Shapes, quantization and the gas one inference costs.
    function modelInfo(bytes32 id) internal view returns (IMyelin.ModelInfo memory) {
        return abi.decode(_staticcall(abi.encodeCall(IMyelin.modelInfo, (id))), (IMyelin.ModelInfo));
    }

    /// Publishes a model (state-changing: not from a view function).
    function publish(bytes memory model) internal returns (bytes32 id) {
        (bool ok, bytes memory ret) = PRECOMPILE.call(abi.encodeCall(IMyelin.publishModel, (model)));
        _check(ok, ret);
        return abi.decode(ret, (bytes32));
    }

    // ---------------------------------------------------------------- preparing inputs

    /// A feature vector standardized with the training statistics a model was trained with:
    /// `(x[i] − mean[i]) / std[i]`, everything with 18 decimals. Models of raw features with
    /// very different ranges take standardized ones (one int8 input scale cannot serve both
    /// 3 and 300); pass the result to `inferFixed` with 18 decimals.
    function standardize(int256[] memory x, int256[] memory mean, int256[] memory std)
        internal
        pure
        returns (int256[] memory z)
    {
        z = new int256[](x.length);
        for (uint256 i = 0; i < x.length; i++) {
            z[i] = ((x[i] - mean[i]) * int256(ONE)) / std[i];
        }
    }

    // ---------------------------------------------------------------- decoding int8 outputs

    /// Element `i` of a raw output as a signed int8.
    function int8At(bytes memory output, uint256 i) internal pure returns (int8) {
        if (i >= output.length) revert OutputIndexOutOfRange(i, output.length);
        return int8(uint8(output[i]));
    }

    /// The whole raw output as int8 values.
    function toInt8s(bytes memory output) internal pure returns (int8[] memory values) {
        values = new int8[](output.length);
        for (uint256 i = 0; i < output.length; i++) {
            values[i] = int8(uint8(output[i]));
        }
    }

    /// Index and value of the largest element (first one on ties, like the engine's argmax).
    function argmax(bytes memory output) internal pure returns (uint256 index, int8 value) {
        value = type(int8).min;
        for (uint256 i = 0; i < output.length; i++) {
            int8 v = int8(uint8(output[i]));
            if (v > value || i == 0) {
                (index, value) = (i, v);
            }
        }
    }

    /// Indices of the `k` largest elements, largest first (earlier index first on ties).
    function topK(bytes memory output, uint256 k) internal pure returns (uint256[] memory indices) {
        if (k > output.length) k = output.length;
        indices = new uint256[](k);
        bool[] memory taken = new bool[](output.length);
        for (uint256 j = 0; j < k; j++) {
            int16 best = -129;
            uint256 bestIndex;
            for (uint256 i = 0; i < output.length; i++) {
                int16 v = int16(int8(uint8(output[i])));
                if (!taken[i] && v > best) {
                    (best, bestIndex) = (v, i);
                }
            }
            taken[bestIndex] = true;
            indices[j] = bestIndex;
        }
    }

    /// Probability (18 decimals) of class `i` from a Softmax output (scale 1/256, zero point -128).
    function softmaxProbability(bytes memory output, uint256 i) internal pure returns (uint256) {
        return (uint256(int256(int8At(output, i)) + 128) * ONE) / 256;
    }

    /// Dequantizes element `i` with a tensor's quantization to 18 decimals, rounding toward
    /// zero (the precompile's inferFixed rounds half away from zero; use it for exact parity).
    function dequantize(bytes memory output, uint256 i, IMyelin.Quantization memory q) internal pure returns (int256) {
        int256 v = (int256(int8At(output, i)) - q.zeroPoint) * int256(q.scaleMult) * int256(ONE);
        int256 shift = int256(q.scaleShift) - 31;
        return shift >= 0 ? v * int256(2 ** uint256(shift)) : v / int256(2 ** uint256(-shift));
    }

    // ---------------------------------------------------------------- errors

    /// `node` of an `InvalidModel` error raised by the header or a whole-model check.
    uint16 internal constant HEADER = 0xFFFF;

    /// Short name of an `InvalidModel(code, node)` code (docs/SPEC.md §8), for tests, events
    /// and UIs; "unknown code" for a number SPEC does not define.
    function invalidModelReason(uint16 code) internal pure returns (string memory) {
        if (code == 1) return "model too large";
        if (code == 2) return "truncated";
        if (code == 3) return "bad magic";
        if (code == 4) return "unsupported version";
        if (code == 5) return "bad node count";
        if (code == 6) return "trailing bytes";
        if (code == 7) return "unknown op";
        if (code == 8) return "flag not 0 or 1";
        if (code == 10) return "multiplier not normalised";
        if (code == 11) return "shift out of range";
        if (code == 12) return "output scale mismatch";
        if (code == 13) return "per_channel not canonical";
        if (code == 14) return "count_include_pad not canonical";
        if (code == 15) return "identity node not canonical";
        if (code == 16) return "per-feature quantization not canonical";
        if (code == 20) return "bad rank";
        if (code == 21) return "zero dimension";
        if (code == 22) return "tensor too large";
        if (code == 23) return "bad tensor reference";
        if (code == 24) return "wrong input rank";
        if (code == 25) return "bad groups";
        if (code == 26) return "zero kernel or stride";
        if (code == 27) return "pad not below kernel";
        if (code == 28) return "kernel larger than input";
        if (code == 29) return "Add shapes differ";
        if (code == 30) return "Reshape changes size";
        if (code == 31) return "not encodable";
        if (code == 32) return "bad permutation";
        if (code == 33) return "bad slice";
        if (code == 34) return "Concat shapes differ";
        if (code == 35) return "bad axis";
        if (code == 36) return "shapes do not broadcast";
        if (code == 37) return "MatMul shapes differ";
        if (code == 38) return "bad tree";
        if (code == 39) return "tree feature out of range";
        if (code == 40) return "empty clamp range";
        if (code == 41) return "exp_table[0] is zero";
        if (code == 42) return "int32 overflow possible";
        if (code == 43) return "LayerNorm epsilon is zero";
        if (code == 44) return "bad index inputs";
        if (code == 45) return "bad index read";
        if (code == 46) return "Gather table too small";
        if (code == 47) return "tree too deep";
        if (code == 50) return "im2col too large";
        if (code == 51) return "too many MACs";
        if (code == 52) return "too many elementwise steps";
        if (code == 53) return "too many activations";
        return "unknown code";
    }

    // ---------------------------------------------------------------- plumbing

    function _staticcall(bytes memory data) private view returns (bytes memory ret) {
        bool ok;
        (ok, ret) = PRECOMPILE.staticcall(data);
        _check(ok, ret);
    }

    /// Bubbles the precompile's revert data; an empty success means nothing answered.
    function _check(bool ok, bytes memory ret) private pure {
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length == 0) revert MyelinUnavailable();
    }
}
