// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {HealthCover} from "../src/examples/HealthCover.sol";
import {IMyelin} from "../src/IMyelin.sol";
import {MyelinTest} from "./MyelinBridge.sol";

/// HealthCover against the real precompile and the committed diabetes_embed model: a model
/// with an index input whose ids the contract derives and appends after the features.
contract HealthCoverTest is MyelinTest {
    HealthCover internal cover;
    string internal fixture;

    function setUp() public {
        installMyelin();
        fixture = vm.readFile("contracts/test/fixtures/health.json");
        int256[] memory mean = _ints(vm.parseJsonUintArray(fixture, ".mean"));
        int256[] memory std = _ints(vm.parseJsonUintArray(fixture, ".std"));
        cover = new HealthCover(publishFile("models/diabetes_embed.myl"), mean, std, 0.01 ether, 0.1 ether);
    }

    function _ints(uint256[] memory u) internal pure returns (int256[] memory v) {
        v = new int256[](u.length);
        for (uint256 i = 0; i < u.length; i++) {
            v[i] = int256(u[i]);
        }
    }

    function _patient(uint256 i) internal view returns (int256[] memory labs, uint256 sex, uint256 age, bool high) {
        string memory key = string.concat(".patients[", vm.toString(i), "]");
        labs = _ints(vm.parseJsonUintArray(fixture, string.concat(key, ".labs")));
        sex = vm.parseJsonUint(fixture, string.concat(key, ".sex"));
        age = vm.parseJsonUint(fixture, string.concat(key, ".age"));
        high = vm.parseJsonBool(fixture, string.concat(key, ".high"));
    }

    /// Patients the float model is confident about land on the same side of 0.5 on chain.
    function testRiskSeparatesPatients() public view {
        for (uint256 i = 0; i < 6; i++) {
            (int256[] memory labs, uint256 sex, uint256 age, bool high) = _patient(i);
            uint256 r = cover.risk(labs, sex, age);
            if (high) assertGt(r, 0.5e18);
            else assertLt(r, 0.5e18);
        }
    }

    /// The categories matter: the same labs in another age band give another risk.
    function testAgeBandChangesRisk() public view {
        (int256[] memory labs, uint256 sex,,) = _patient(0);
        assertTrue(cover.risk(labs, sex, 25) != cover.risk(labs, sex, 75));
    }

    function testBuyAtQuotedPremium() public {
        (int256[] memory labs, uint256 sex, uint256 age,) = _patient(0);
        uint256 premium = cover.premiumFor(cover.risk(labs, sex, age));
        assertGt(premium, 0.01 ether);
        cover.buy{value: premium}(labs, sex, age);
        (uint256 paid,) = cover.policies(address(this));
        assertEq(paid, premium);
        vm.expectRevert(HealthCover.AlreadyCovered.selector);
        cover.buy{value: premium}(labs, sex, age);
    }

    /// An id outside its embedding table: the precompile's own error, with the id's position
    /// among the ids (sex is the first) and its value.
    function testUnknownCategoryRevertsWithInvalidIndex() public {
        (int256[] memory labs,, uint256 age,) = _patient(0);
        vm.expectRevert(abi.encodeWithSelector(IMyelin.InvalidIndex.selector, uint256(0), int256(2)));
        cover.risk(labs, 2, age);
    }
}
