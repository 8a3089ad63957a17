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
        /// Per index input (format v2; none in v1), the limit of each of its ids: an input's
        /// ids follow its int8 values (docs/SPEC.md §6) and each must be below its limit.
        uint16[][] indexLimits;
        /// Per-feature input quantization (format v3/v4; empty otherwise): feature `j` (the
        /// input's last axis) is `(q - zeroPoint) * scale` with its own entry, and `input` is
        /// all zeros. `inferFixed` quantizes each feature with its own (docs/SPEC.md §6).
        Quantization[] inputFeatures;
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
    /// An id of an index input is negative or not below its limit (`position` counts ids over
    /// all index inputs, in order, from 0).
    error InvalidIndex(uint256 position, int256 value);
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
    /// A chunked upload failed (docs/SPEC.md §6): `code` 1 = the chunk is empty or longer than
    /// 24576 bytes, 2 = a listed chunk was never written (`id` is the chunk's for both);
    /// 3 = the chunks add up to more than 16 MiB, 4 = they do not hash to `id` (the model's).
    error UploadMismatch(bytes32 id, uint16 code);
    /// Too many inputs in one batch.
    error BatchTooLarge(uint256 count, uint256 max);

    /// Validates and stores `model`; returns keccak256(model). Idempotent.
    function publishModel(bytes calldata model) external returns (bytes32 id);

    /// Stores `chunk` (1 to 24576 bytes) once, as the code of an account named by its hash,
    /// for a model larger than one transaction can carry; returns keccak256(chunk).
    /// Idempotent: an existing chunk is not stored or charged again.
    function writeChunk(bytes calldata chunk) external returns (bytes32 chunkId);

    /// Concatenates the written chunks in the order listed, checks the result hashes to `id`,
    /// then validates and publishes it exactly like `publishModel`.
    function commitUpload(bytes32 id, bytes32[] calldata chunks) external returns (bytes32);

    /// Runs the model on raw int8 input (one byte per element, two's complement), followed by
    /// the ids of its index inputs if it has any (two bytes each, big-endian).
    function infer(bytes32 id, bytes calldata input) external view returns (bytes memory output);

    /// Runs the model on fixed-point numbers with `decimals` decimals (x = value / 10^decimals),
    /// quantized and dequantized with the model's parameters by the rule in docs/SPEC.md §6;
    /// the ids of its index inputs, if any, follow as plain integers (not scaled).
    function inferFixed(bytes32 id, int256[] calldata input, uint8 decimals)
        external
        view
        returns (int256[] memory output);

    /// Runs the model on several raw inputs.
    function inferBatch(bytes32 id, bytes[] calldata inputs) external view returns (bytes[] memory outputs);

    /// Describes a published model.
    function modelInfo(bytes32 id) external view returns (ModelInfo memory info);
}
