// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Myelin} from "../Myelin.sol";

/// @title DigitGame: draw the digit the game asks for; an on-chain classifier judges it.
/// @notice The model is a digit classifier trained on scikit-learn's 8x8 digits
/// (models/digits_mlp.onnx or digits_cnn.onnx, converted to .myl by `myelin convert`). Every
/// node re-runs the same integer inference, so the verdict is part of consensus.
contract DigitGame {
    /// Id (keccak256) of the published classifier: input 64 pixels in [0, 1], output 10 probabilities.
    bytes32 public immutable model;
    /// Confidence (18 decimals) a drawing needs to score.
    uint256 public immutable minConfidence;
    /// The digit to draw next.
    uint8 public target;
    mapping(address => uint256) public score;

    event Drawn(address indexed player, uint8 digit, uint256 confidence, bool scored);

    error NotAnImage(uint256 length);
    error PixelTooBright(uint256 index, uint8 value);

    constructor(bytes32 model_, uint256 minConfidence_) {
        model = model_;
        minConfidence = minConfidence_;
    }

    /// Classifies an 8x8 drawing given as 64 bytes of intensity 0..16 (row by row).
    /// @return digit the most likely digit; confidence its probability (18 decimals).
    function classify(bytes calldata pixels) public view returns (uint8 digit, uint256 confidence) {
        if (pixels.length != 64) revert NotAnImage(pixels.length);
        int256[] memory x = new int256[](64);
        for (uint256 i = 0; i < 64; i++) {
            uint8 p = uint8(pixels[i]);
            if (p > 16) revert PixelTooBright(i, p);
            x[i] = (int256(uint256(p)) * 1e18) / 16;
        }
        int256[] memory probs = Myelin.inferFixed(model, x, 18);
        for (uint256 d = 0; d < probs.length; d++) {
            if (d == 0 || uint256(probs[d]) > confidence) {
                (digit, confidence) = (uint8(d), uint256(probs[d]));
            }
        }
    }

    /// Submits a drawing of the current target digit; scores if the model agrees confidently.
    function draw(bytes calldata pixels) external returns (uint8 digit, bool scored) {
        uint256 confidence;
        (digit, confidence) = classify(pixels);
        scored = digit == target && confidence >= minConfidence;
        if (scored) {
            score[msg.sender] += 1;
            target = (target + 1) % 10;
        }
        emit Drawn(msg.sender, digit, confidence, scored);
    }
}
