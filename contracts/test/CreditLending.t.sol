// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CreditLending} from "../src/examples/CreditLending.sol";
import {MyelinTest} from "./MyelinBridge.sol";

contract CreditLendingTest is MyelinTest {
    CreditLending internal pool;
    string internal fixture;

    function setUp() public {
        installMyelin();
        fixture = vm.readFile("contracts/test/fixtures/credit.json");
        int256[] memory mean = _ints(vm.parseJsonUintArray(fixture, ".mean"));
        int256[] memory std = _ints(vm.parseJsonUintArray(fixture, ".std"));
        pool = new CreditLending(publishFile("models/credit_mlp.myl"), mean, std, 0.5e18, 300, 2000);
        pool.deposit{value: 100 ether}();
    }

    receive() external payable {}

    function _ints(uint256[] memory u) internal pure returns (int256[] memory v) {
        v = new int256[](u.length);
        for (uint256 i = 0; i < u.length; i++) {
            v[i] = int256(u[i]);
        }
    }

    function _applicant(uint256 i) internal view returns (int256[] memory features, uint256 label) {
        string memory key = string.concat(".applicants[", vm.toString(i), "]");
        features = _ints(vm.parseJsonUintArray(fixture, string.concat(key, ".features")));
        label = vm.parseJsonUint(fixture, string.concat(key, ".label"));
    }

    /// Held-out applicants: good ones (label 1) score high, bad ones (label 0) low.
    function testScoresSeparateGoodFromBad() public view {
        for (uint256 i = 0; i < 6; i++) {
            (int256[] memory f, uint256 label) = _applicant(i);
            uint256 score = pool.creditScore(f);
            if (label == 1) assertGt(score, 0.5e18);
            else assertLt(score, 0.5e18);
        }
    }

    function testGoodApplicantBorrowsAtRiskPricedRate() public {
        (int256[] memory f,) = _applicant(0);
        uint256 balanceBefore = address(this).balance;
        uint256 rate = pool.borrow(f, 1 ether);
        assertGe(rate, 300);
        assertLe(rate, 2300);
        assertEq(address(this).balance, balanceBefore + 1 ether);
        assertEq(pool.owed(address(this)), 1 ether + (1 ether * rate) / 10_000);
        pool.repay{value: pool.owed(address(this))}();
        assertEq(pool.owed(address(this)), 0);
    }

    function testBadApplicantIsRefused() public {
        (int256[] memory f,) = _applicant(3);
        uint256 score = pool.creditScore(f);
        vm.expectRevert(abi.encodeWithSelector(CreditLending.CreditTooLow.selector, score, 0.5e18));
        pool.borrow(f, 1 ether);
    }

    function testWrongFeatureCountReverts() public {
        vm.expectRevert(abi.encodeWithSelector(CreditLending.WrongFeatureCount.selector, 30, 2));
        pool.creditScore(new int256[](2));
    }
}

/// The same pool backed by gradient-boosted trees on RAW features (models/breast_gbdt.myl,
/// quantized per feature): no standardization in Solidity, the same verdicts.
contract CreditLendingTreesTest is MyelinTest {
    CreditLending internal pool;
    string internal fixture;

    function setUp() public {
        installMyelin();
        fixture = vm.readFile("contracts/test/fixtures/credit.json");
        pool = new CreditLending(
            publishFile("models/breast_gbdt.myl"), new int256[](0), new int256[](0), 0.5e18, 300, 2000
        );
        pool.deposit{value: 100 ether}();
    }

    receive() external payable {}

    function _applicant(uint256 i) internal view returns (int256[] memory features, uint256 label) {
        string memory key = string.concat(".applicants[", vm.toString(i), "]");
        uint256[] memory u = vm.parseJsonUintArray(fixture, string.concat(key, ".features"));
        features = new int256[](u.length);
        for (uint256 k = 0; k < u.length; k++) {
            features[k] = int256(u[k]);
        }
        label = vm.parseJsonUint(fixture, string.concat(key, ".label"));
    }

    function testTreesScoreRawFeatures() public view {
        for (uint256 i = 0; i < 6; i++) {
            (int256[] memory f, uint256 label) = _applicant(i);
            uint256 score = pool.creditScore(f);
            if (label == 1) assertGt(score, 0.5e18);
            else assertLt(score, 0.5e18);
        }
    }

    function testTreesPriceAndRefuse() public {
        (int256[] memory good,) = _applicant(0);
        uint256 rate = pool.borrow(good, 1 ether);
        assertGe(rate, 300);
        assertLe(rate, 2300);
        (int256[] memory bad,) = _applicant(3);
        uint256 score = pool.creditScore(bad);
        vm.expectRevert(abi.encodeWithSelector(CreditLending.CreditTooLow.selector, score, 0.5e18));
        vm.prank(address(0xB0B));
        pool.borrow(bad, 1 ether);
    }

    function testTreesRefuseWrongFeatureCount() public {
        vm.expectRevert(abi.encodeWithSelector(CreditLending.WrongFeatureCount.selector, 30, 2));
        pool.creditScore(new int256[](2));
    }
}
