//! `myelin-node`: reth's Ethereum node with the Myelin precompile.
//!
//! Everything is reth's `EthereumNode` (pool, network, payload builder, consensus, RPC add-ons)
//! except the executor component: it builds `EthEvmConfig` with [`MyelinEvmFactory`], so block
//! execution, payload building, `eth_call` / `eth_estimateGas`, `debug_trace*` and simulation
//! all create their EVMs through the factory and see the precompile from its activation on.
//!
//! The CLI is reth's own (`myelin-node node --dev --http`, ...) plus the `--myelin.*` flags.
//! Address and activation are consensus settings: every node of a chain must use the same ones.

use alloy_primitives::Address;
use clap::Parser;
use myelin_reth::{Activation, MyelinConfig, MyelinEvmFactory};
use reth_ethereum::{
    chainspec::ChainSpec,
    cli::{chainspec::EthereumChainSpecParser, interface::Cli},
    evm::EthEvmConfig,
    node::{
        api::{FullNodeTypes, NodeTypes},
        builder::{components::ExecutorBuilder, BuilderContext},
        node::EthereumAddOns,
        EthereumNode,
    },
    EthPrimitives,
};
use tracing::info;

/// Myelin settings, added next to reth's own `node` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Myelin")]
pub struct MyelinArgs {
    /// Address of the Myelin precompile (consensus: identical on every node of the chain).
    #[arg(long = "myelin.address", value_name = "ADDRESS", default_value_t = MyelinConfig::default().address)]
    pub address: Address,

    /// Activate the precompile from this block number on (consensus). Default: block 0.
    #[arg(
        long = "myelin.activation-block",
        value_name = "BLOCK",
        conflicts_with = "activation_timestamp"
    )]
    pub activation_block: Option<u64>,

    /// Activate the precompile from the first block whose timestamp is at least this (consensus).
    #[arg(long = "myelin.activation-timestamp", value_name = "UNIX_SECONDS")]
    pub activation_timestamp: Option<u64>,

    /// Prepared models kept in memory by this node (speed only: never changes gas or results).
    #[arg(long = "myelin.cache-models", value_name = "N", default_value_t = MyelinConfig::default().cache_models)]
    pub cache_models: usize,
}

impl MyelinArgs {
    pub fn config(&self) -> MyelinConfig {
        let activation = match (self.activation_block, self.activation_timestamp) {
            (_, Some(t)) => Activation::Timestamp(t),
            (Some(n), None) => Activation::Block(n),
            (None, None) => Activation::Block(0),
        };
        MyelinConfig { address: self.address, activation, cache_models: self.cache_models }
    }
}

/// reth's Ethereum executor component, with the Myelin EVM factory.
#[derive(Debug, Clone, Copy)]
pub struct MyelinExecutorBuilder {
    config: MyelinConfig,
}

impl<Node> ExecutorBuilder<Node> for MyelinExecutorBuilder
where
    Node: FullNodeTypes<Types: NodeTypes<ChainSpec = ChainSpec, Primitives = EthPrimitives>>,
{
    type EVM = EthEvmConfig<ChainSpec, MyelinEvmFactory>;

    async fn build_evm(self, ctx: &BuilderContext<Node>) -> eyre::Result<Self::EVM> {
        let mut evm_config = EthEvmConfig::new_with_evm_factory(
            ctx.chain_spec(),
            MyelinEvmFactory::new(self.config),
        );
        // Same as reth's `EthereumExecutorBuilder` (its optional JIT backend is not used here).
        if let Some(cache) = ctx.sender_recovery_cache() {
            evm_config = evm_config.with_sender_recovery_cache(cache.clone());
        }
        info!(
            target: "myelin",
            address = %self.config.address,
            activation = ?self.config.activation,
            cache_models = self.config.cache_models,
            "Myelin precompile configured"
        );
        Ok(evm_config)
    }
}

fn main() {
    // Same default as reth's binary.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        // SAFETY: single-threaded at this point (before the CLI starts its runtime).
        unsafe { std::env::set_var("RUST_BACKTRACE", "1") };
    }

    if let Err(err) =
        Cli::<EthereumChainSpecParser, MyelinArgs>::parse().run(async move |builder, args| {
            let executor = MyelinExecutorBuilder { config: args.config() };
            let handle = builder
                .with_types::<EthereumNode>()
                .with_components(EthereumNode::components().executor(executor))
                .with_add_ons(EthereumAddOns::default())
                .launch_with_debug_capabilities()
                .await?;
            handle.wait_for_node_exit().await
        })
    {
        eprintln!("Error: {err:?}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        myelin: MyelinArgs,
    }

    fn parse(args: &[&str]) -> Result<MyelinConfig, clap::Error> {
        let mut argv = vec!["myelin-node"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv).map(|c| c.myelin.config())
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(&[]).unwrap(), MyelinConfig::default());
    }

    #[test]
    fn flags() {
        let c = parse(&[
            "--myelin.address",
            "0x0000000000000000000000000000000000000b22",
            "--myelin.activation-block",
            "100",
            "--myelin.cache-models",
            "8",
        ])
        .unwrap();
        assert_eq!(c.address, "0x0000000000000000000000000000000000000b22".parse::<Address>().unwrap());
        assert_eq!(c.activation, Activation::Block(100));
        assert_eq!(c.cache_models, 8);
        let c = parse(&["--myelin.activation-timestamp", "1700000000"]).unwrap();
        assert_eq!(c.activation, Activation::Timestamp(1_700_000_000));
        assert!(parse(&["--myelin.activation-block", "1", "--myelin.activation-timestamp", "2"])
            .is_err());
    }
}
