//! `myelin`: from a trained ONNX model to a Myelin model on chain, and everything around it.

use std::io::Write;
use std::path::{Path, PathBuf};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::{SolCall, SolInterface, SolValue};
use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use myelin_cli::conformance;
use myelin_cli::convert::{self, ConvertOptions};
use myelin_cli::npy;
use myelin_cli::store::DirStore;
use myelin_precompile::abi::IMyelin;
use myelin_precompile::error::Code;
use myelin_precompile::input;
use myelin_precompile::model::{Node, TreeNode};
use myelin_precompile::{decode, gas, CallContext, Engine, Myelin, Outcome, ValidModel};

#[derive(Parser)]
#[command(
    name = "myelin",
    version,
    about = "Deterministic int8 neural networks inside the EVM"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize a float ONNX model into a Myelin model, calibrating on sample rows (or with
    /// the scales of a QDQ model quantized by onnxruntime).
    Convert {
        onnx: PathBuf,
        #[command(flatten)]
        quant: QuantArgs,
        #[arg(short, long)]
        output: PathBuf,
        /// Print the per-layer conversion report.
        #[arg(long)]
        report: bool,
    },
    /// Show a model's id, graph, shapes, quantization, size, MACs and gas.
    Inspect { model: PathBuf },
    /// Run a model on .npy rows: float32 in the model's natural shape, quantized with the
    /// model's input parameters; outputs dequantized to float32 (or int8 with --raw).
    Run {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// int8 in, int8 out: no (de)quantization.
        #[arg(long)]
        raw: bool,
    },
    /// Classification accuracy (top-1; a single output is a probability thresholded at 0.5).
    Eval {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        labels: PathBuf,
    },
    /// Float ONNX vs quantized Myelin model on the same rows: what quantization cost. With
    /// the conversion's own options (--calib ... as given to `convert`; none for a QDQ
    /// model), also the error of every node against the float tensor it approximates.
    Compare {
        onnx: PathBuf,
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        quant: QuantArgs,
    },
    /// Play conformance vectors (tests/vectors/*.json, schema in docs/SPEC.md) through the
    /// precompile: one ok/FAIL line per vector; exits non-zero if any fails.
    Conformance { vectors: PathBuf },
    /// Calldata (hex) for calls of the precompile.
    Calldata {
        #[command(subcommand)]
        call: CalldataCall,
    },
    /// Execute one precompile call (hex calldata) against a local model store directory with
    /// the node's own precompile code; prints status, gas used and returndata.
    Precompile {
        /// Directory holding published models and the precompile's storage.
        #[arg(long, default_value = "cache/myelin-store")]
        store: PathBuf,
        #[arg(long, default_value_t = Address::ZERO)]
        caller: Address,
        #[arg(long, default_value_t = 30_000_000)]
        gas: u64,
        #[arg(long, default_value_t = U256::ZERO)]
        value: U256,
        /// The call is a STATICCALL.
        #[arg(long = "static")]
        is_static: bool,
        /// Print one hex string abi.encode(uint8 status, uint64 gasUsed, bytes returndata)
        /// (status 0 success, 1 revert, 2 out of gas): the Foundry bridge reads this.
        #[arg(long)]
        abi: bool,
        calldata: String,
    },
}

/// How `convert` quantizes (and `compare` re-converts to find each node's quantization).
#[derive(clap::Args)]
struct QuantArgs {
    /// Calibration rows (float32 .npy, first axis = samples); optional for a QDQ model.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// How activation ranges are chosen from the calibration rows.
    #[arg(long, value_enum, default_value_t)]
    calibration: convert::Calibration,
    /// Keep the biases as trained (no correction of each layer's mean error).
    #[arg(long)]
    no_bias_correction: bool,
}

impl QuantArgs {
    fn convert(&self, onnx: &Path, progress: bool) -> Result<convert::Converted> {
        let calib = self.calib.as_deref().map(npy::read).transpose()?;
        let opts = ConvertOptions {
            progress,
            calibration: self.calibration,
            bias_correction: !self.no_bias_correction,
        };
        convert::convert(onnx, calib.as_ref(), &opts)
    }
}

#[derive(Subcommand)]
enum CalldataCall {
    /// publishModel(bytes) of a .myl file.
    Publish { model: PathBuf },
    /// infer(bytes32,bytes): row `row` of a float32 .npy quantized with the model's parameters.
    Infer {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 0)]
        row: usize,
    },
    /// modelInfo(bytes32).
    Info { model: PathBuf },
    /// writeChunk... then commitUpload for a model too large for one transaction: one
    /// calldata per line, each chunk in its own transaction, the commit last.
    Upload {
        model: PathBuf,
        /// Bytes per chunk (at most 24576, the EIP-170 code size).
        #[arg(long, default_value_t = gas::MAX_CHUNK_BYTES)]
        chunk: usize,
    },
}

/// `println!` that returns a failed write as an error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        // A reader that closed the pipe (`myelin inspect m.myl | head`) has all it wanted:
        // end quietly, as a program killed by SIGPIPE would, not with an error.
        let closed = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed {
            return;
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(path: &Path) -> Result<(Vec<u8>, ValidModel)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let model = decode(&bytes)
        .with_context(|| format!("{} is not a valid Myelin model", path.display()))?;
    Ok((bytes, model))
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Runs the engine on every row of `x` (float32, natural shape; ids, if the model has index
/// inputs, after the features) and dequantizes.
fn infer_rows(model: &ValidModel, x: &npy::Array) -> Result<Vec<Vec<f32>>> {
    let analysis = model.analysis();
    let per_row = convert::row_len(model);
    ensure!(
        x.shape.len() >= 2 && x.row_len() == per_row,
        "input {:?} does not match the model: expected [N, {:?}] ({per_row} values per row{})",
        x.shape,
        analysis.shapes[0],
        if per_row > analysis.input_len() {
            ", ids included"
        } else {
            ""
        }
    );
    let engine = Engine::new(model.clone());
    let data = x.to_f32();
    data.chunks(per_row)
        .enumerate()
        .map(|(i, row)| {
            let input = convert::row_input(model, row).with_context(|| format!("row {i}"))?;
            Ok(convert::dequantize_output(model, &engine.run_input(&input)))
        })
        .collect()
}

/// A precompile revert for people: the `IMyelin` error it encodes, with the name of an
/// `InvalidModel` code (the strings `Myelin.invalidModelReason` returns on chain).
fn describe_revert(data: &[u8]) -> String {
    use IMyelin::IMyelinErrors as E;
    match E::abi_decode(data) {
        Ok(E::InvalidModel(e)) => {
            let name = Code::ALL
                .iter()
                .find(|c| c.number() == e.code)
                .map_or("unknown code", |c| c.name());
            format!("InvalidModel(code {} \"{name}\", node {})", e.code, e.node)
        }
        // `Variant(Variant { fields })` or `Variant(Variant)`: the inner error is enough.
        Ok(e) => {
            let text = format!("{e:?}");
            let inner = text.split_once('(').map_or(&text[..], |(_, rest)| {
                rest.strip_suffix(')').unwrap_or(rest)
            });
            if inner.contains('{') {
                inner.to_string()
            } else {
                format!("{inner}()")
            }
        }
        Err(_) => "not an IMyelin error".into(),
    }
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert {
            onnx,
            quant,
            output,
            report,
        } => {
            let c = quant.convert(&onnx, true)?;
            std::fs::write(&output, &c.bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            if report {
                out!("{}", c.report);
            }
            out!(
                "wrote {} ({} bytes, id {}, {} MACs, {} gas per infer)",
                output.display(),
                c.bytes.len(),
                keccak256(&c.bytes),
                c.model.analysis().total.macs,
                gas::infer_call(&c.model, c.bytes.len())
            );
        }
        Command::Inspect { model } => {
            let (bytes, v) = load(&model)?;
            let (m, a) = (v.model(), v.analysis());
            out!("model     {}", model.display());
            out!("id        {}", keccak256(&bytes));
            out!("size      {} bytes, {} parameters", bytes.len(), a.params);
            match m.tensor_quant() {
                Some(q) => out!(
                    "input     {:?}  scale {:.6e}  zero point {}",
                    a.shapes[0],
                    q.scale.to_f64(),
                    q.zero_point
                ),
                None => {
                    out!("input     {:?}  quantized per feature:", a.shapes[0]);
                    for (j, q) in m.input_quant.iter().enumerate() {
                        out!(
                            "  feature {j:<4} scale {:.6e}  zero point {}",
                            q.scale.to_f64(),
                            q.zero_point
                        );
                    }
                }
            }
            for (k, input) in m.index_inputs.iter().enumerate() {
                out!(
                    "ids {k}     {} ids after the input, limits {:?}",
                    input.limits.len(),
                    input.limits
                );
            }
            out!(
                "output    {:?}  scale {:.6e}  zero point {}",
                a.output_shape(),
                m.output_scale.to_f64(),
                a.output_zero_point()
            );
            out!(
                "{:>4}  {:<12} {:<10} {:<16} {:>12} {:>10}",
                "node",
                "op",
                "inputs",
                "output",
                "MACs",
                "elems"
            );
            for (i, (n, c)) in m.nodes.iter().zip(&a.costs).enumerate() {
                let inputs = n
                    .inputs()
                    .iter()
                    .map(|t| format!("t{t}"))
                    .collect::<Vec<_>>()
                    .join(",");
                out!(
                    "{i:>4}  {:<12} {inputs:<10} {:<16} {:>12} {:>10}",
                    n.op_name(),
                    format!("{:?}", a.shapes[i + 1]),
                    c.macs,
                    c.elems
                );
                if let Node::TreeEnsemble(t) = n {
                    let nodes: usize = t.trees.iter().map(|t| t.nodes.len()).sum();
                    let splits = (t.trees.iter().flat_map(|t| &t.nodes))
                        .filter(|n| matches!(n, TreeNode::Split { .. }))
                        .count();
                    out!(
                        "      {} trees, {nodes} nodes ({splits} splits), depth {}",
                        t.trees.len(),
                        t.depth()
                    );
                }
            }
            out!(
                "total     {} MACs, {} elementwise steps",
                a.total.macs,
                a.total.elems
            );
            out!(
                "gas       {} per infer call (cold model), {} per extra batch item",
                gas::infer_call(&v, bytes.len()),
                gas::inference(&v)
            );
            out!("publish   {} gas", gas::publish(bytes.len()));
        }
        Command::Run {
            model,
            input,
            output,
            raw,
        } => {
            let (_, v) = load(&model)?;
            let a = v.analysis().clone();
            let x = npy::read(&input)?;
            let out_shape: Vec<usize> = a.output_shape().iter().map(|&d| d as usize).collect();
            if raw {
                let engine = Engine::new(v.clone());
                let npy::ArrayData::I8(q) = &x.data else {
                    bail!("--raw needs an int8 (|i1) .npy input")
                };
                ensure!(
                    v.model().index_inputs.is_empty(),
                    "--raw takes int8 rows, which cannot hold ids: run this model without --raw"
                );
                ensure!(
                    x.row_len() == a.input_len(),
                    "rows have {} values; the model takes {}",
                    x.row_len(),
                    a.input_len()
                );
                let y: Vec<i8> = q
                    .chunks(a.input_len())
                    .flat_map(|row| engine.run(row))
                    .collect();
                npy::write_i8(&output, &[&[x.rows()][..], &out_shape].concat(), &y)?;
            } else {
                let y: Vec<f32> = infer_rows(&v, &x)?.concat();
                npy::write_f32(&output, &[&[x.rows()][..], &out_shape].concat(), &y)?;
            }
            out!("wrote {} rows to {}", x.rows(), output.display());
        }
        Command::Eval {
            model,
            input,
            labels,
        } => {
            let (_, v) = load(&model)?;
            let ys = infer_rows(&v, &npy::read(&input)?)?;
            let labels = npy::read(&labels)?
                .to_i64()
                .context("labels must be integer class ids")?;
            ensure!(
                labels.len() == ys.len(),
                "{} labels for {} rows",
                labels.len(),
                ys.len()
            );
            let predicted = |y: &Vec<f32>| {
                if y.len() == 1 {
                    (y[0] >= 0.5) as usize
                } else {
                    argmax(y)
                }
            };
            let correct = ys
                .iter()
                .zip(&labels)
                .filter(|(y, &l)| predicted(y) as i64 == l)
                .count();
            out!(
                "accuracy {:.4} ({correct}/{} rows)",
                correct as f64 / ys.len() as f64,
                ys.len()
            );
        }
        Command::Compare {
            onnx,
            model,
            input,
            quant,
        } => {
            let (bytes, v) = load(&model)?;
            let x = npy::read(&input)?;
            let q = infer_rows(&v, &x)?;
            let f = convert::run_float(&onnx, &x)?.to_f32();
            let per_row = f.len() / x.rows();
            let (mut agree, mut max_err, mut sum_err) = (0usize, 0f32, 0f64);
            for (qy, fy) in q.iter().zip(f.chunks(per_row)) {
                agree += (argmax(qy) == argmax(fy)) as usize;
                for (a, b) in qy.iter().zip(fy) {
                    max_err = max_err.max((a - b).abs());
                    sum_err += (a - b).abs() as f64;
                }
            }
            out!("rows {}", q.len());
            out!("top-1 agreement {:.4}", agree as f64 / q.len() as f64);
            out!(
                "max abs error {max_err:.6}, mean abs error {:.6}",
                sum_err / f.len() as f64
            );
            // each node's quantization is not in the model: convert again to learn it
            match quant.convert(&onnx, false) {
                Ok(c) if c.bytes == bytes => {
                    let errors = convert::layer_errors(&onnx, &c, &x)?;
                    write!(
                        std::io::stdout(),
                        "per node:\n{}",
                        convert::format_layer_errors(&errors)
                    )?;
                }
                Ok(_) => out!(
                    "per node: skipped, converting {} with these options does not give {} \
                     (pass the --calib, --calibration, --no-bias-correction it was converted with)",
                    onnx.display(),
                    model.display()
                ),
                Err(e) => out!("per node: skipped ({e:#})"),
            }
        }
        Command::Conformance { vectors } => {
            let text = std::fs::read_to_string(&vectors)
                .with_context(|| format!("reading {}", vectors.display()))?;
            let vectors = conformance::parse(&text)
                .with_context(|| format!("{} is not a vector file", vectors.display()))?;
            let failed = conformance::run(&vectors, &mut std::io::stdout())?;
            ensure!(failed == 0, "{failed} of {} vectors failed", vectors.len());
        }
        Command::Calldata { call } => match call {
            CalldataCall::Publish { model } => {
                let (bytes, ..) = load(&model)?;
                out!(
                    "{}",
                    hex0x(
                        &IMyelin::publishModelCall {
                            model: bytes.into()
                        }
                        .abi_encode()
                    )
                );
            }
            CalldataCall::Infer { model, input, row } => {
                let (bytes, v) = load(&model)?;
                let x = npy::read(&input)?;
                let n = convert::row_len(&v);
                ensure!(
                    row < x.rows() && x.row_len() == n,
                    "row {row} of {:?} is not an input of shape {:?} ({n} values per row)",
                    x.shape,
                    v.analysis().shapes[0]
                );
                let q = input::encode(&convert::row_input(
                    &v,
                    &x.to_f32()[row * n..(row + 1) * n],
                )?);
                out!(
                    "{}",
                    hex0x(
                        &IMyelin::inferCall {
                            id: keccak256(&bytes),
                            input: q.into()
                        }
                        .abi_encode()
                    )
                );
            }
            CalldataCall::Info { model } => {
                let (bytes, ..) = load(&model)?;
                out!(
                    "{}",
                    hex0x(
                        &IMyelin::modelInfoCall {
                            id: keccak256(&bytes)
                        }
                        .abi_encode()
                    )
                );
            }
            CalldataCall::Upload { model, chunk } => {
                ensure!(
                    (1..=gas::MAX_CHUNK_BYTES).contains(&chunk),
                    "--chunk must be 1..={} bytes",
                    gas::MAX_CHUNK_BYTES
                );
                let (bytes, ..) = load(&model)?;
                let mut chunks: Vec<B256> = Vec::new();
                for c in bytes.chunks(chunk) {
                    let call = IMyelin::writeChunkCall {
                        chunk: c.to_vec().into(),
                    };
                    out!("{}", hex0x(&call.abi_encode()));
                    chunks.push(keccak256(c));
                }
                let commit = IMyelin::commitUploadCall {
                    id: keccak256(&bytes),
                    chunks,
                };
                out!("{}", hex0x(&commit.abi_encode()));
            }
        },
        Command::Precompile {
            store,
            caller,
            gas,
            value,
            is_static,
            abi,
            calldata,
        } => {
            let data = hex::decode(calldata.trim().trim_start_matches("0x"))
                .context("calldata is not hex")?;
            let mut host = DirStore::open(&store)?;
            let ctx = CallContext {
                caller,
                value,
                is_static,
                is_direct: true,
                gas_limit: gas,
            };
            let Ok(outcome) = Myelin::new(1).call(&mut host, &ctx, &data);
            let (status, gas_used, ret) = match &outcome {
                Outcome::Success { gas_used, output } => (0u8, *gas_used, output.clone()),
                Outcome::Revert { gas_used, output } => (1, *gas_used, output.clone()),
                Outcome::OutOfGas => (2, gas, Default::default()),
            };
            if abi {
                let encoded = (U256::from(status), U256::from(gas_used), ret).abi_encode_params();
                write!(std::io::stdout(), "{}", hex0x(&encoded))?;
            } else {
                let name = ["success", "revert", "out of gas"][status as usize];
                out!(
                    "status     {name}\ngas used   {gas_used}\nreturndata {}",
                    hex0x(&ret)
                );
                if status == 1 {
                    out!("error      {}", describe_revert(&ret));
                }
                for (topics, data) in &host.state.logs {
                    let topics: Vec<String> = topics.iter().map(B256::to_string).collect();
                    out!(
                        "log        topics [{}] data {}",
                        topics.join(", "),
                        hex0x(data)
                    );
                }
            }
            if status == 0 {
                host.commit()?;
            }
        }
    }
    Ok(())
}
