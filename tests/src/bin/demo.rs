//! The main job (`scripts/demo.sh`): publish real models as chain state and have Solidity
//! contracts call them, in real signed transactions executed block by block with the Myelin
//! EVM factory; print results and gas.

use alloy_primitives::{keccak256, Address, Bytes, B256, I256, U256};
use alloy_sol_types::{sol, SolCall, SolConstructor, SolError};
use myelin_precompile::abi::IMyelin;
use myelin_precompile::evm::DEFAULT_ADDRESS as MYELIN;
use myelin_reth::MyelinConfig;
use myelin_tests::chain::{artifact, Chain, Tx};
use revm::context_interface::result::ExecutionResult;

sol! {
    contract DigitGame {
        constructor(bytes32 model_, uint256 minConfidence_);
        function draw(bytes pixels) external returns (uint8 digit, bool scored);
    }
    contract CreditLending {
        constructor(bytes32 model_, int256[] mean_, int256[] std_, uint256 minScore_, uint256 baseRateBps_, uint256 riskSpreadBps_);
        function deposit() external payable;
        function borrow(int256[] features, uint256 amount) external returns (uint256 rateBps);
        error CreditTooLow(uint256 score, uint256 minScore);
    }
    contract HealthCover {
        constructor(bytes32 model_, int256[] mean_, int256[] std_, uint256 basePremium_, uint256 riskLoading_);
        function risk(int256[] labs, uint256 sex, uint256 age) external view returns (uint256);
        function buy(int256[] labs, uint256 sex, uint256 age) external payable returns (uint256 premium);
    }
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&read(path)).expect("fixture is JSON")
}

fn ints(v: &serde_json::Value) -> Vec<I256> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("decimal string").parse().expect("int256"))
        .collect()
}

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn pct(x: U256) -> f64 {
    x.to_string().parse::<f64>().unwrap_or(0.0) / 1e16
}

fn publish(chain: &mut Chain, path: &str) -> B256 {
    let model = read(path);
    let id = keccak256(&model);
    let r = chain.block(vec![Tx::call(
        MYELIN,
        IMyelin::publishModelCall {
            model: model.clone().into(),
        }
        .abi_encode(),
    )]);
    assert!(r[0].success, "publish failed: {:?}", r[0].result);
    println!(
        "  block {}: publishModel({path}, {} bytes) -> id {id}  gas {}",
        chain.number,
        model.len(),
        r[0].gas_used
    );
    id
}

fn deploy(chain: &mut Chain, code: Vec<u8>) -> Address {
    let address = chain.next_contract(0);
    let r = chain.block(vec![Tx::create(code)]);
    assert!(r[0].success, "deploy failed: {:?}", r[0].result);
    address
}

fn main() {
    let mut chain = Chain::new(MyelinConfig::default());
    println!(
        "Myelin demo: precompile at {MYELIN}, blocks executed by alloy-evm with MyelinEvmFactory\n"
    );

    println!("DigitGame: classify 8x8 drawings with a digit MLP trained on scikit-learn's digits");
    let digits = publish(&mut chain, "models/digits_mlp.myl");
    let ctor = DigitGame::constructorCall {
        model_: digits,
        minConfidence_: ether(1) / U256::from(2),
    };
    let game = deploy(
        &mut chain,
        [
            artifact("DigitGame.sol", "DigitGame").to_vec(),
            ctor.abi_encode(),
        ]
        .concat(),
    );
    println!("  block {}: DigitGame deployed at {game}", chain.number);
    let samples = json("contracts/test/fixtures/digits.json");
    for sample in samples["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .take(3)
    {
        let pixels: Vec<u8> = sample["pixels"]
            .as_array()
            .expect("pixels")
            .iter()
            .map(|p| p.as_u64().unwrap_or(0) as u8)
            .collect();
        let r = chain.block(vec![Tx::call(
            game,
            DigitGame::drawCall {
                pixels: Bytes::from(pixels),
            }
            .abi_encode(),
        )]);
        let out =
            DigitGame::drawCall::abi_decode_returns(r[0].result.output().expect("draw returns"))
                .expect("decodes");
        println!(
            "  block {}: draw(held-out drawing of a {}) -> classified {}, scored {}  gas {}",
            chain.number, sample["label"], out.digit, out.scored, r[0].gas_used
        );
    }

    let fixture = json("contracts/test/fixtures/credit.json");
    println!("\nCreditLending: an ETH pool pricing loans with a credit model (breast-cancer data as stand-in)");
    println!("  an MLP on features the pool standardizes in Solidity (models/credit_mlp.myl):");
    credit_pool(
        &mut chain,
        "models/credit_mlp.myl",
        ints(&fixture["mean"]),
        ints(&fixture["std"]),
    );
    println!(
        "  gradient-boosted trees on RAW features, quantized per feature (models/breast_gbdt.myl):"
    );
    credit_pool(&mut chain, "models/breast_gbdt.myl", Vec::new(), Vec::new());

    health_cover(&mut chain);
}

/// Deploys a CreditLending pool on `model` (standardizing with `mean`/`std`, or passing raw
/// features when both are empty), funds it, and has a bad then a good applicant borrow.
fn credit_pool(chain: &mut Chain, model: &str, mean: Vec<I256>, std: Vec<I256>) {
    let credit = publish(chain, model);
    let fixture = json("contracts/test/fixtures/credit.json");
    let ctor = CreditLending::constructorCall {
        model_: credit,
        mean_: mean,
        std_: std,
        minScore_: ether(1) / U256::from(2),
        baseRateBps_: U256::from(300),
        riskSpreadBps_: U256::from(2000),
    };
    let pool = deploy(
        chain,
        [
            artifact("CreditLending.sol", "CreditLending").to_vec(),
            ctor.abi_encode(),
        ]
        .concat(),
    );
    chain.block(vec![Tx::call(
        pool,
        CreditLending::depositCall {}.abi_encode(),
    )
    .value(ether(10))]);
    println!(
        "  block {}: pool {pool} deployed and funded with 10 ETH",
        chain.number
    );
    let applicants = fixture["applicants"].as_array().expect("applicants");
    for a in [&applicants[3], &applicants[0]] {
        let call = CreditLending::borrowCall {
            features: ints(&a["features"]),
            amount: ether(1),
        };
        let r = chain.block(vec![Tx::call(pool, call.abi_encode())]);
        match &r[0].result {
            ExecutionResult::Success { output, .. } => {
                let rate =
                    CreditLending::borrowCall::abi_decode_returns(output.data()).expect("rate");
                println!(
                    "  block {}: borrow(1 ETH) -> granted at {rate} bps  gas {}",
                    chain.number, r[0].gas_used
                );
            }
            ExecutionResult::Revert { output, .. } => {
                let e = CreditLending::CreditTooLow::abi_decode(output).expect("CreditTooLow");
                println!(
                    "  block {}: borrow(1 ETH) -> refused: credit score {:.1}% < {:.0}%  gas {}",
                    chain.number,
                    pct(e.score),
                    pct(e.minScore),
                    r[0].gas_used
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// HealthCover: a model with categorical embeddings (format v2, one index input of three
/// ids) priced per policy; the contract appends the ids after the standardized labs.
fn health_cover(chain: &mut Chain) {
    println!(
        "\nHealthCover: cover priced by a risk model with categorical embeddings (diabetes data)"
    );
    let model = publish(chain, "models/diabetes_embed.myl");
    let fixture = json("contracts/test/fixtures/health.json");
    let (base, loading) = (ether(1) / U256::from(100), ether(1) / U256::from(10));
    let ctor = HealthCover::constructorCall {
        model_: model,
        mean_: ints(&fixture["mean"]),
        std_: ints(&fixture["std"]),
        basePremium_: base,
        riskLoading_: loading,
    };
    let cover = deploy(
        chain,
        [
            artifact("HealthCover.sol", "HealthCover").to_vec(),
            ctor.abi_encode(),
        ]
        .concat(),
    );
    println!("  block {}: HealthCover deployed at {cover}", chain.number);
    let patients = fixture["patients"].as_array().expect("patients");
    // Quotes for a high-risk and a low-risk patient, then the first one buys cover.
    for (i, p) in [&patients[0], &patients[3]].into_iter().enumerate() {
        let (labs, sex, age) = (
            ints(&p["labs"]),
            U256::from(p["sex"].as_u64().expect("sex")),
            U256::from(p["age"].as_u64().expect("age")),
        );
        let quote = HealthCover::riskCall {
            labs: labs.clone(),
            sex,
            age,
        };
        let r = chain.block(vec![Tx::call(cover, quote.abi_encode())]);
        let risk = HealthCover::riskCall::abi_decode_returns(r[0].result.output().expect("risk"))
            .expect("decodes");
        println!(
            "  block {}: risk(labs, sex id {sex}, age {age}) -> {:.1}%  gas {}",
            chain.number,
            pct(risk),
            r[0].gas_used
        );
        if i == 0 {
            let premium = base + risk * loading / ether(1);
            let buy = HealthCover::buyCall { labs, sex, age };
            let b = chain.block(vec![Tx::call(cover, buy.abi_encode()).value(premium)]);
            assert!(b[0].success, "buy failed: {:?}", b[0].result);
            println!(
                "  block {}: buy() with the quoted premium {premium} wei -> covered  gas {}",
                chain.number, b[0].gas_used
            );
        }
    }
}
