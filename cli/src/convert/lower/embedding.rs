//! Categorical ids and embedding lookups. An integer graph input becomes an index input of
//! the Myelin model (format v2): its ids are never a tensor, only a run of positions
//! ([`IdSlice`]) that `Gather` nodes select from (`x_cat[:, c]`, as `torch.onnx.export`
//! writes it: `Gather(x_cat, c, axis=1)`) and that embedding lookups read
//! (`Gather(<module>.weight, ids)`: one Myelin Gather of the table quantized to int8).
//! Each position's limit is the smallest table that reads it, so validation can prove every
//! lookup in range and the precompile refuses a larger id before running anything.

use super::*;

/// A run of one index input's ids, with the ONNX shape (batch axis dropped) they have there.
#[derive(Clone, Debug)]
pub(super) struct IdSlice {
    pub(super) input: usize,
    pub(super) start: usize,
    pub(super) count: usize,
    pub(super) shape: Vec<usize>,
}

pub(in crate::convert) fn lower_gather(
    lowerer: &mut Lowerer<'_>,
    node: &Node,
    out: String,
) -> Result<()> {
    let (data, indices) = in01(node)?;
    let axis = node.int("axis", 0)?;
    if let Some(ids) = lowerer.ids.get(data).cloned() {
        let picked = select_ids(lowerer, &ids, indices, axis)?;
        lowerer.ids.insert(out, picked);
        return Ok(());
    }
    let (Some(ids), Some(table)) = (lowerer.ids.get(indices).cloned(), lowerer.konst(data)) else {
        bail!(
            "Gather is supported as an embedding lookup (a constant table [rows, dim] indexed \
             by integer ids from a graph input) or as a selection of id columns; here it reads \
             `{data}` with `{indices}`"
        );
    };
    ensure!(
        axis == 0 && table.dims.len() == 2,
        "an embedding lookup takes a table [rows, dim] along axis 0; got {:?} along axis {axis}",
        table.dims
    );
    let (rows, dim) = (table.dims[0], table.dims[1]);
    ensure!(
        (1..=u16::MAX as usize).contains(&rows),
        "an embedding table has 1 to 65535 rows; `{data}` has {rows}"
    );
    let values = table.f32();
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let q = quant::act_quant(lo as f64, hi as f64);
    let limits = &mut lowerer.limits[ids.input][ids.start..ids.start + ids.count];
    for limit in limits.iter_mut() {
        *limit = (*limit).min(rows as u16);
    }
    let id = lowerer.emit(
        m::Node::Gather(m::Gather {
            index: ids.input as u8,
            start: ids.start as u16,
            count: ids.count as u16,
            rows: rows as u16,
            dim: u32::try_from(dim)?,
            zero_point: q.zp,
            table: values
                .iter()
                .map(|&v| quant::quantize(v as f64, q))
                .collect(),
        }),
        node.name.clone(),
        format!(
            "{} ids from {}, table {rows}×{dim} in [{lo:.4}, {hi:.4}], scale {:.6e}, zero point {}",
            ids.count, ids.start, q.scale, q.zp
        ),
    );
    let rows_of = Act {
        id,
        shape: vec![ids.count, dim],
        q,
    };
    let shape = [&ids.shape[..], &[dim]].concat();
    let y = lowerer.reshape(node, rows_of, shape)?;
    lowerer.set(&out, Val::Act(y));
    Ok(())
}

/// `Gather(ids, c, axis=1)`: the id columns `c` (a scalar, or consecutive positions).
fn select_ids(lowerer: &Lowerer<'_>, ids: &IdSlice, indices: &str, axis: i64) -> Result<IdSlice> {
    let picks = lowerer
        .konst(indices)
        .ok_or_else(|| anyhow!("ids can only be selected by constant positions"))?;
    let last = ids.shape.len() as i64; // the ONNX axis of the ids' last dimension
    ensure!(
        ids.shape.len() == 1 && (axis == last || axis == -1),
        "ids {:?} can only be selected along their last axis (axis {last})",
        ids.shape
    );
    let positions: Vec<usize> = picks
        .i64()?
        .into_iter()
        .map(|p| if p < 0 { p + ids.count as i64 } else { p })
        .map(|p| usize::try_from(p).ok().filter(|&p| p < ids.count))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("id positions {:?} out of 0..{}", picks.i64(), ids.count))?;
    let start = *positions
        .first()
        .ok_or_else(|| anyhow!("no id positions selected"))?;
    ensure!(
        positions.iter().enumerate().all(|(i, &p)| p == start + i),
        "id positions {positions:?} must be consecutive"
    );
    Ok(IdSlice {
        input: ids.input,
        start: ids.start + start,
        count: positions.len(),
        shape: picks.dims.clone(),
    })
}
