//! The ABI, read from the one interface file Solidity developers also import
//! (`contracts/src/IMyelin.sol`), so the two sides cannot drift apart.

alloy_sol_types::sol!(
    #[sol(all_derives)]
    "../contracts/src/IMyelin.sol"
);
