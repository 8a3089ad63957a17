// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Myelin} from "../Myelin.sol";

/// @title HealthCover: a cover pool that prices each policy with an on-chain risk model that
/// reads categorical attributes through embeddings.
/// @notice The model (models/diabetes_embed.onnx → diabetes_embed.myl, a format-v2 model with
/// one index input) maps eight standardized lab measurements and three categories — sex, age
/// band, BMI class — to the probability that the insured's condition progresses beyond the
/// median within a year. The categories are ids the model looks up in its embedding tables
/// (Gather): they travel after the fixed-point features as plain integers, and an id outside
/// its table makes the precompile revert with `InvalidIndex`. The premium is
/// `basePremium + risk · riskLoading`.
contract HealthCover {
    uint256 internal constant ONE = 1e18;
    /// Lab measurements the model reads: BMI, blood pressure, six blood serum values.
    uint256 internal constant LABS = 8;

    bytes32 public immutable model;
    uint256 public immutable basePremium;
    uint256 public immutable riskLoading;
    /// Per-measurement mean and standard deviation (18 decimals) the model was trained with.
    int256[] internal mean;
    int256[] internal std;

    struct Policy {
        uint256 premium;
        uint256 risk;
    }

    mapping(address => Policy) public policies;

    event Covered(address indexed holder, uint256 premium, uint256 risk);

    error WrongLabCount(uint256 expected, uint256 actual);
    error WrongPremium(uint256 premium);
    error AlreadyCovered();

    constructor(bytes32 model_, int256[] memory mean_, int256[] memory std_, uint256 basePremium_, uint256 riskLoading_) {
        if (mean_.length != LABS || std_.length != LABS) revert WrongLabCount(LABS, mean_.length);
        model = model_;
        mean = mean_;
        std = std_;
        basePremium = basePremium_;
        riskLoading = riskLoading_;
    }

    /// Age band id of the model: under 30, 30s, 40s, 50s, 60s, 70 and over.
    function ageBand(uint256 age) public pure returns (uint256) {
        if (age < 30) return 0;
        return age >= 70 ? 5 : (age - 20) / 10;
    }

    /// BMI class id of the model for a BMI with 18 decimals: under 25, 25–30, 30–35, 35 and over.
    function bmiClass(int256 bmi) public pure returns (uint256) {
        if (bmi < 25e18) return 0;
        if (bmi < 30e18) return 1;
        return bmi < 35e18 ? 2 : 3;
    }

    /// Probability (18 decimals) of progression for raw lab values (18 decimals; `labs[0]` is
    /// the BMI), `sex` (0 or 1, the dataset's coding) and age in years.
    function risk(int256[] calldata labs, uint256 sex, uint256 age) public view returns (uint256) {
        if (labs.length != LABS) revert WrongLabCount(LABS, labs.length);
        int256[] memory z = Myelin.standardize(labs, mean, std);
        int256[] memory input = new int256[](LABS + 3);
        for (uint256 i = 0; i < LABS; i++) {
            input[i] = z[i];
        }
        input[LABS] = int256(sex);
        input[LABS + 1] = int256(ageBand(age));
        input[LABS + 2] = int256(bmiClass(labs[0]));
        int256[] memory out = Myelin.inferFixed(model, input, 18);
        return uint256(out[1]);
    }

    /// Premium (wei) for a risk.
    function premiumFor(uint256 risk_) public view returns (uint256) {
        return basePremium + (risk_ * riskLoading) / ONE;
    }

    /// Buys cover at the model's price: send exactly the quoted premium.
    function buy(int256[] calldata labs, uint256 sex, uint256 age) external payable returns (uint256 premium) {
        if (policies[msg.sender].premium != 0) revert AlreadyCovered();
        uint256 r = risk(labs, sex, age);
        premium = premiumFor(r);
        if (msg.value != premium) revert WrongPremium(premium);
        policies[msg.sender] = Policy(premium, r);
        emit Covered(msg.sender, premium, r);
    }
}
