//! Inverted dropout with hashed masks (shaders/dropout.wgsl): the mask is a
//! pure function of (seed, layer, element), so nothing is stored, backward
//! applies the same op to the gradient, and the CPU references
//! (`rnn::spec::dropout_keep`, `reference::lm::{dropout_dense,
//! dropout_keyed}`) reproduce it bit for bit. The tape ops: dropout, locked
//! dropout, embedding dropout.

use crate::autograd::{check_probability, Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::dim_u32;
use crate::rnn::PackedBatch;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 256;

crate::kernels::shader_params! {
    /// Mirrors `DropoutParams` in shaders/dropout.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct DropoutParams mirrors "DropoutParams" in Dropout {
        rows: u32,
        cols: u32,
        seed_lo: u32,
        seed_hi: u32,
        layer: u32,
        prob: f32,
        scale: f32,
        whole_rows: u32,
    }
}

const DROPOUT_APPLY: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_apply",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};
const DROPOUT_KEYED: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_keyed",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};
const DROPOUT_DENSE: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_dense",
    storage: &[(1, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};

impl DropoutParams {
    fn new(rows: usize, cols: usize, layer: usize, p: f32, seed: u64) -> Result<Self> {
        const OP: &str = "dropout";
        Ok(Self {
            rows: dim_u32(OP, "rows", rows)?,
            cols: dim_u32(OP, "cols", cols)?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            layer: dim_u32(OP, "layer", layer)?,
            prob: p,
            scale: 1.0 / (1.0 - p),
            whole_rows: 0,
        })
    }
}

fn launch(kernel: Kernel, x: &Tensor, pack_index: Option<&Tensor>, params: DropoutParams) -> Result<Tensor> {
    let out = Tensor::uninit(x.device(), x.shape(), DType::F32)?;
    let rt = &x.device().rt;
    let elements = params.rows * params.cols;
    let groups = grid(elements.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    let mut buffers = vec![x.buffer()];
    buffers.extend(pack_index.map(Tensor::buffer));
    buffers.push(out.buffer());
    rt.launch(kernel, &[("WG", f64::from(WG))], &params, &buffers, groups)?;
    Ok(out)
}

/// Dropout of a packed (N, F) activation feeding recurrent layer `layer`,
/// with the mask indexed by padded position (`pack_index[r] = b·T + t`), so
/// it does not depend on packing.
pub(crate) fn dropout_packed(x: &Tensor, pack_index: &Tensor, layer: usize, p: f32, seed: u64) -> Result<Tensor> {
    let &[rows, cols] = x.shape() else { unreachable!("packed activations are 2-D") };
    launch(DROPOUT_APPLY, x, Some(pack_index), DropoutParams::new(rows, cols, layer, p, seed)?)
}

/// Dropout of any tensor, the mask indexed by element.
pub(crate) fn dropout_dense(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    launch(DROPOUT_DENSE, x, None, DropoutParams::new(1, x.numel(), 0, p, seed)?)
}

/// Dropout of (N, F) rows with a key per row (`keys`, (N) u32): with
/// `whole_rows` the mask unit is the key (every row with that key kept or
/// dropped as a whole: AWD-LSTM's embedding dropout, keyed by token id);
/// without, it is (key, feature) (a mask shared by every row with the same
/// key: locked/variational dropout keyed by sequence, so one mask is shared
/// over time). Backward is the same op on the gradient.
pub(crate) fn dropout_keyed(x: &Tensor, keys: &Tensor, whole_rows: bool, p: f32, seed: u64) -> Result<Tensor> {
    const OP: &str = "dropout_keyed";
    let &[rows, cols] = x.shape() else {
        return Err(Error::Shape { op: OP, message: format!("x must be (N, F), got {:?}", x.shape()) });
    };
    if keys.shape() != [rows] || keys.dtype() != DType::U32 {
        return Err(Error::Shape {
            op: OP,
            message: format!("keys must be ({rows}) u32, got {:?} {:?}", keys.shape(), keys.dtype()),
        });
    }
    let mut params = DropoutParams::new(rows, cols, 0, p, seed)?;
    params.whole_rows = u32::from(whole_rows);
    if !whole_rows {
        // The mask index key·F + f must stay in u32.
        let max_key = keys.max_index().unwrap_or(0) as usize;
        dim_u32(OP, "key · features", (max_key + 1) * cols)?;
    }
    launch(DROPOUT_KEYED, x, Some(keys), params)
}

impl Tape {
    /// Inverted dropout with probability `p` (identity on an eval tape).
    pub fn dropout(&mut self, x: Var, p: f32) -> Result<Var> {
        check_probability("dropout", p)?;
        if !self.is_training() || p == 0.0 {
            return Ok(x);
        }
        let seed = self.next_seed();
        let out = dropout_dense(self.value(x)?, p, seed)?;
        Ok(self.record(out, DropoutBackward { x, p, seed }))
    }

    /// Locked (variational) dropout of a packed (N, F) activation: one mask
    /// per sequence and feature, shared by all its steps (AWD-LSTM's
    /// `LockedDropout`). Identity on an evaluation tape.
    pub fn locked_dropout(&mut self, x: Var, batch: &PackedBatch, p: f32) -> Result<Var> {
        check_probability("locked dropout", p)?;
        if !self.is_training() || p == 0.0 {
            return Ok(x);
        }
        let rows = self.value(x)?.shape().first().copied().unwrap_or(0);
        if rows != batch.total() {
            return Err(Error::Shape {
                op: "locked_dropout",
                message: format!("expected {} packed rows, got {rows}", batch.total()),
            });
        }
        let (offsets, sizes, sorted) = (batch.offsets(), batch.batch_sizes(), batch.sorted_rows());
        let mut keys = vec![0u32; rows];
        for t in 0..batch.max_len() {
            for s in 0..sizes[t] {
                keys[offsets[t] + s] = sorted[s] as u32;
            }
        }
        self.keyed_dropout(x, &keys, false, p)
    }

    /// Embedding dropout (AWD-LSTM's `embedded_dropout`): every occurrence
    /// of a dropped word id is zeroed, the rest scaled by 1/(1 − p), as if
    /// whole rows of the embedding matrix were dropped. `x` holds the
    /// gathered rows of `ids` (one per row). Identity on an evaluation tape.
    pub fn embedding_dropout(&mut self, x: Var, ids: &[u32], p: f32) -> Result<Var> {
        check_probability("embedding dropout", p)?;
        if !self.is_training() || p == 0.0 {
            return Ok(x);
        }
        self.keyed_dropout(x, ids, true, p)
    }

    fn keyed_dropout(&mut self, x: Var, keys: &[u32], whole_rows: bool, p: f32) -> Result<Var> {
        let xv = self.value(x)?;
        if xv.shape().len() != 2 || xv.shape()[0] != keys.len() {
            return Err(Error::Shape {
                op: "dropout_keyed",
                message: format!("x must be (N, F) with one key per row: {:?} for {} keys", xv.shape(), keys.len()),
            });
        }
        let seed = self.next_seed();
        let keys = Tensor::from_u32(self.device(), keys, &[keys.len()])?;
        let out = dropout_keyed(self.value(x)?, &keys, whole_rows, p, seed)?;
        Ok(self.record(out, KeyedDropoutBackward { x, keys, whole_rows, p, seed }))
    }
}

/// Backward of [`Tape::dropout`]: the same mask on the gradient.
#[derive(Debug)]
struct DropoutBackward {
    x: Var,
    p: f32,
    seed: u64,
}

impl Backward for DropoutBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        ctx.accumulate(self.x, dropout_dense(g, self.p, self.seed)?)
    }
}

/// Backward of the keyed dropouts (locked, embedding): the same mask.
#[derive(Debug)]
struct KeyedDropoutBackward {
    x: Var,
    keys: Tensor,
    whole_rows: bool,
    p: f32,
    seed: u64,
}

impl Backward for KeyedDropoutBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        ctx.accumulate(self.x, dropout_keyed(g, &self.keys, self.whole_rows, self.p, self.seed)?)
    }
}
