// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Myelin: deterministic int8 neural-network inference as a precompile.
/// @notice The precompile lives at a fixed address (default 0x0000000000000000000000000000000000000a11).
/// Models are chain state: published once, named by keccak256 of their bytes, and run by every
/// node bit for bit (docs/SPEC.md). This file is THE interface: the Rust precompile reads it
/// with alloy's `sol!`, so Solidity and the node can never disagree on the ABI.
interface IMyelin {
    /// Quantization of a tensor: real = (q - zeroPoint) * scaleMult * 2^(scaleShift - 31).
    struct Quantization {
        int32 scaleMult;
        int8 scaleShift;
        int8 zeroPoint;
    }

    /// What a published model computes and what running it costs.
    struct ModelInfo {
        uint32[] inputShape;
        uint32[] outputShape;
        Quantization input;
        Quantization output;
        uint32 nodes;
        uint32 size;
        uint64 params;
        uint64 macs;
        uint64 elems;
        /// Gas of one `infer` call, including a cold model load.
        uint64 inferGas;
    }

    /// A model was stored (first publication only; publishing again is a no-op).
    event ModelPublished(bytes32 indexed id, address indexed publisher, uint256 size);

    /// No model with this id has been published.
    error UnknownModel(bytes32 id);
    /// The model bytes are not a valid Myelin v1 model: `code` is the first failing check
    /// (docs/SPEC.md §8, `Myelin.invalidModelReason` gives its name) and `node` the index of
    /// the node being read or checked, or 0xFFFF for the header and whole-model checks.
    error InvalidModel(uint16 code, uint16 node);
    /// The input does not have the length the model's input shape requires.
    error InvalidInputLength(uint256 expected, uint256 actual);
    /// `inferFixed` was called with more than 38 decimals.
    error InvalidDecimals(uint8 decimals);
    /// The precompile hit a state it cannot be in (a bug, or a stored model that no longer
    /// decodes). All gas given to the call is consumed.
    error InternalError();
    /// A state-changing function was called through STATICCALL (or an `eth_call` view context).
    error WriteInStaticContext();
    /// The precompile is not payable.
    error ValueNotAccepted();
    /// Called via DELEGATECALL or CALLCODE, which the precompile refuses.
    error IndirectCall();
    /// The calldata does not decode as a call of this interface.
    error MalformedCall();
    /// A chunked upload does not exist or its bytes do not hash to the declared id.
    error UploadMismatch(bytes32 id, string reason);
    /// Too many inputs in one batch.
    error BatchTooLarge(uint256 count, uint256 max);

    /// Validates and stores `model`; returns keccak256(model). Idempotent.
    function publishModel(bytes calldata model) external returns (bytes32 id);

    /// Starts (or restarts) a chunked upload by the caller of a model of `size` bytes whose
    /// keccak256 is `id`; for models larger than one transaction can carry.
    function beginUpload(bytes32 id, uint32 size) external;

    /// Writes `chunk` at byte `offset` (a multiple of 32) of the caller's upload of `id`.
    function writeChunk(bytes32 id, uint32 offset, bytes calldata chunk) external;

    /// Checks the uploaded bytes hash to `id`, validates and publishes them, and frees the upload.
    function commitUpload(bytes32 id) external returns (bytes32);

    /// Runs the model on raw int8 input (one byte per element, two's complement).
    function infer(bytes32 id, bytes calldata input) external view returns (bytes memory output);

    /// Runs the model on fixed-point numbers with `decimals` decimals (x = value / 10^decimals),
    /// quantized and dequantized with the model's parameters by the rule in docs/SPEC.md §6.
    function inferFixed(bytes32 id, int256[] calldata input, uint8 decimals)
        external
        view
        returns (int256[] memory output);

    /// Runs the model on several raw inputs.
    function inferBatch(bytes32 id, bytes[] calldata inputs) external view returns (bytes[] memory outputs);

    /// Describes a published model.
    function modelInfo(bytes32 id) external view returns (ModelInfo memory info);
}
