// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Myelin} from "../Myelin.sol";

/// @title CreditLending: an ETH lending pool that prices each loan with an on-chain credit model.
/// @notice The model maps a borrower's features to the probability of being a good borrower:
/// its last output (a Sigmoid's one output, or class 1 of a classifier's two probabilities).
/// Either an MLP trained on standardized features (models/credit_mlp.myl), which the pool
/// standardizes with the training mean and standard deviation, or a model that reads RAW
/// features because it quantizes each with its own scale (per-feature input quantization,
/// e.g. the gradient-boosted trees of models/breast_gbdt.myl): deploy it with empty `mean`
/// and `std` and the features go to the precompile as they are. The pool refuses scores below
/// `minScore` and charges `baseRateBps + (1 − score) · riskSpreadBps`.
contract CreditLending {
    uint256 internal constant ONE = 1e18;

    bytes32 public immutable model;
    uint256 public immutable minScore;
    uint256 public immutable baseRateBps;
    uint256 public immutable riskSpreadBps;
    /// Number of features the model reads.
    uint256 public immutable featureCount;
    /// Per-feature mean and standard deviation (18 decimals) the model was trained with; both
    /// empty for a model that reads raw features.
    int256[] internal mean;
    int256[] internal std;

    struct Loan {
        uint256 principal;
        uint256 rateBps;
        uint256 score;
    }

    mapping(address => Loan) public loans;

    event Deposited(address indexed from, uint256 amount);
    event LoanOpened(address indexed borrower, uint256 principal, uint256 score, uint256 rateBps);
    event LoanRepaid(address indexed borrower, uint256 paid);

    error WrongFeatureCount(uint256 expected, uint256 actual);
    error CreditTooLow(uint256 score, uint256 minScore);
    error LoanOutstanding();
    error NoLoan();
    error InsufficientLiquidity(uint256 available);
    error WrongRepayment(uint256 owed);

    constructor(bytes32 model_, int256[] memory mean_, int256[] memory std_, uint256 minScore_, uint256 baseRateBps_, uint256 riskSpreadBps_) {
        if (mean_.length != std_.length) revert WrongFeatureCount(mean_.length, std_.length);
        model = model_;
        featureCount = Myelin.modelInfo(model_).inputShape[0];
        if (mean_.length != 0 && mean_.length != featureCount) revert WrongFeatureCount(featureCount, mean_.length);
        mean = mean_;
        std = std_;
        minScore = minScore_;
        baseRateBps = baseRateBps_;
        riskSpreadBps = riskSpreadBps_;
    }

    function deposit() external payable {
        emit Deposited(msg.sender, msg.value);
    }

    /// Credit score (probability of a good borrower, 18 decimals) for raw features (18 decimals).
    function creditScore(int256[] calldata raw) public view returns (uint256) {
        if (raw.length != featureCount) revert WrongFeatureCount(featureCount, raw.length);
        int256[] memory x = mean.length == 0 ? raw : Myelin.standardize(raw, mean, std);
        int256[] memory out = Myelin.inferFixed(model, x, 18);
        return uint256(out[out.length - 1]);
    }

    /// Interest rate (basis points) for a score.
    function rateFor(uint256 score) public view returns (uint256) {
        return baseRateBps + ((ONE - score) * riskSpreadBps) / ONE;
    }

    /// Borrows `amount` wei, priced by the model.
    function borrow(int256[] calldata features, uint256 amount) external returns (uint256 rateBps) {
        if (loans[msg.sender].principal != 0) revert LoanOutstanding();
        uint256 score = creditScore(features);
        if (score < minScore) revert CreditTooLow(score, minScore);
        if (amount > address(this).balance) revert InsufficientLiquidity(address(this).balance);
        rateBps = rateFor(score);
        loans[msg.sender] = Loan(amount, rateBps, score);
        emit LoanOpened(msg.sender, amount, score, rateBps);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "transfer failed");
    }

    /// Amount owed: principal plus simple interest.
    function owed(address borrower) public view returns (uint256) {
        Loan memory l = loans[borrower];
        return l.principal + (l.principal * l.rateBps) / 10_000;
    }

    function repay() external payable {
        uint256 due = owed(msg.sender);
        if (due == 0) revert NoLoan();
        if (msg.value != due) revert WrongRepayment(due);
        delete loans[msg.sender];
        emit LoanRepaid(msg.sender, msg.value);
    }
}
