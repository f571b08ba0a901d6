//! Token sampling on the GPU (shaders/sample.wgsl): temperature, top-k and
//! top-p (nucleus) over logits (B, V), one draw per row, written where the
//! next step's embedding gather reads it. CPU reference:
//! [`crate::reference::lm::sample_logits`].

use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel, Shader};
use crate::ops::{check_same_device, dim_u32};
use crate::tensor::{DType, Tensor};

/// How tokens are drawn from logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOptions {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the k most likely tokens (ties at the k-th kept); 0 = all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability
    /// reaches `top_p` (nucleus sampling); 1 = all.
    pub top_p: f32,
    /// Seed of the draws: the same seed gives the same tokens.
    pub seed: u64,
    /// Up to [`MAX_BANNED`] ids never drawn (padding, `<bos>`, `<eos>`
    /// before a minimum length, …); see [`SampleOptions::with_banned`].
    pub banned: [Option<u32>; MAX_BANNED],
}

impl Default for SampleOptions {
    /// Plain sampling from the softmax (temperature 1, no filters), seed 0.
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 0, banned: [None; MAX_BANNED] }
    }
}

/// Ids one draw can ban (the shader's two vec4 of ids).
pub const MAX_BANNED: usize = 8;

/// Invocations per row of `sample_logits` (the shader's `WG`; the CPU
/// reference walks the kept mass in the same lane order).
pub(crate) const SAMPLE_WG: u32 = 256;

impl SampleOptions {
    /// These options with `ids` banned too, in the free slots (an id
    /// already banned takes none); more than [`MAX_BANNED`] in all is an
    /// error.
    pub fn with_banned(mut self, ids: &[u32]) -> Result<Self> {
        for &id in ids {
            if self.banned.contains(&Some(id)) {
                continue;
            }
            let slot = self.banned.iter_mut().find(|b| b.is_none()).ok_or_else(|| {
                Error::Config(format!("at most {MAX_BANNED} ids can be banned from sampling, {id} is one too many"))
            })?;
            *slot = Some(id);
        }
        Ok(self)
    }

    /// Rejects a negative or non-finite temperature and a top_p outside (0, 1].
    pub fn validate(&self) -> Result<()> {
        // 1/temperature must be finite too: a subnormal temperature would
        // turn every scaled logit into ±inf.
        if !(self.temperature.is_finite() && self.temperature >= 0.0)
            || (self.temperature > 0.0 && !(1.0 / self.temperature).is_finite())
        {
            return Err(Error::Config(format!(
                "temperature must be 0 (greedy) or a positive finite number with a finite inverse, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

crate::kernels::shader_params! {
    /// Mirrors `SampleParams` in shaders/sample.wgsl.
    #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct SampleParams mirrors "SampleParams" in Sample {
        rows: u32,
        vocab: u32,
        top_k: u32,
        greedy: u32,
        inv_temperature: f32,
        top_p: f32,
        seed_lo: u32,
        seed_hi: u32,
        step: u32,
        _pad: [u32; 3],
        ban: [u32; MAX_BANNED],
    }
}

const SAMPLE_LOGITS: Kernel = Kernel {
    shader: Shader::Sample,
    entry: "sample_logits",
    storage: &[(1, Access::Read), (2, Access::ReadWrite), (3, Access::ReadWrite)],
    cell: &[],
};

/// Draws one token per row of `logits` (B, V) into `next` (B) u32 and row
/// `step` of `tokens` (S, B) u32; draw `step` of a run uses the hash of
/// (seed, step, row), so a run is reproducible for its seed.
pub fn sample_logits(
    logits: &Tensor,
    next: &Tensor,
    tokens: &Tensor,
    step: usize,
    options: &SampleOptions,
) -> Result<()> {
    const OP: &str = "sample_logits";
    options.validate()?;
    check_same_device(OP, &[logits, next, tokens])?;
    logits.expect_dtype(OP, DType::F32)?;
    let &[rows, vocab] = logits.shape() else {
        return Err(Error::Shape { op: OP, message: format!("logits must be (B, V), got {:?}", logits.shape()) });
    };
    if vocab == 0 || rows == 0 {
        return Err(Error::Empty { op: OP, what: "logits".into() });
    }
    if next.shape() != [rows] || next.dtype() != DType::U32 {
        return Err(Error::Shape { op: OP, message: format!("next must be ({rows}) u32, got {:?}", next.shape()) });
    }
    match *tokens.shape() {
        [s, b] if b == rows && step < s && tokens.dtype() == DType::U32 => {}
        ref shape => {
            return Err(Error::Shape {
                op: OP,
                message: format!("tokens must be (S, {rows}) u32 with step {step} < S, got {shape:?}"),
            })
        }
    }
    let greedy = options.temperature == 0.0;
    let params = SampleParams {
        rows: dim_u32(OP, "rows", rows)?,
        vocab: dim_u32(OP, "vocab", vocab)?,
        top_k: dim_u32(OP, "top_k", options.top_k)?,
        greedy: u32::from(greedy),
        inv_temperature: if greedy { 1.0 } else { 1.0 / options.temperature },
        top_p: options.top_p,
        seed_lo: options.seed as u32,
        seed_hi: (options.seed >> 32) as u32,
        step: dim_u32(OP, "step", step)?,
        _pad: [0; 3],
        ban: options.banned.map(|b| b.unwrap_or(u32::MAX)),
    };
    let rt = &logits.device().rt;
    if params.rows > rt.limits.max_compute_workgroups_per_dimension {
        return Err(Error::OutOfRange {
            op: OP,
            message: format!(
                "{rows} rows exceed the device's {} workgroups",
                rt.limits.max_compute_workgroups_per_dimension
            ),
        });
    }
    rt.launch(SAMPLE_LOGITS, &[], &params, &[logits.buffer(), next.buffer(), tokens.buffer()], [params.rows, 1, 1])
}
