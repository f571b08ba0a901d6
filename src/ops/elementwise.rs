//! Elementwise launchers (shaders/elementwise.wgsl) and the tape's `add`.

use crate::autograd::{Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::{check_no_alias, check_same_device, dim_u32};
use crate::runtime::BufferRange;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 256;

crate::kernels::shader_params! {
    /// Mirrors `ElementwiseParams` in shaders/elementwise.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct ElementwiseParams mirrors "ElementwiseParams" in Elementwise {
        n: u32,
        scalar: f32,
        _pad0: u32,
        _pad1: u32,
    }
}

const BINARY: &[(u32, Access)] = &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)];
const UNARY: &[(u32, Access)] = &[(1, Access::Read), (3, Access::ReadWrite)];
const NULLARY: &[(u32, Access)] = &[(3, Access::ReadWrite)];

const ADD: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_add", storage: BINARY, cell: &[] };
const MUL: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_mul", storage: BINARY, cell: &[] };
const SCALE: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_scale", storage: UNARY, cell: &[] };
const COPY: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_copy", storage: UNARY, cell: &[] };
const FILL: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_fill", storage: NULLARY, cell: &[] };
const AXPY: Kernel = Kernel { shader: Shader::Elementwise, entry: "elementwise_axpy", storage: UNARY, cell: &[] };

/// Checks f32 dtype, same device, equal shapes and that the output (last)
/// does not alias an input; returns the element count.
fn check_same_shape(op: &'static str, tensors: &[&Tensor]) -> Result<u32> {
    check_same_device(op, tensors)?;
    if let Some((out, inputs)) = tensors.split_last() {
        check_no_alias(op, out, inputs)?;
    }
    for t in tensors {
        t.expect_dtype(op, DType::F32)?;
    }
    let shape = tensors[0].shape();
    if let Some(t) = tensors.iter().find(|t| t.shape() != shape) {
        return Err(Error::Shape { op, message: format!("shapes differ: {:?} vs {:?}", shape, t.shape()) });
    }
    dim_u32(op, "element count", tensors[0].numel())
}

fn launch(kernel: Kernel, n: u32, scalar: f32, buffers: &[BufferRange<'_>], out: &Tensor) -> Result<()> {
    let rt = &out.device().rt;
    let groups = grid(n.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    let params = ElementwiseParams { n, scalar, _pad0: 0, _pad1: 0 };
    rt.launch(kernel, &[("WG", f64::from(WG))], &params, buffers, groups)
}

/// `out = x + y` (all the same shape).
pub fn elementwise_add(x: &Tensor, y: &Tensor, out: &Tensor) -> Result<()> {
    let n = check_same_shape("elementwise_add", &[x, y, out])?;
    launch(ADD, n, 0.0, &[x.buffer(), y.buffer(), out.buffer()], out)
}

/// `out = x * y` elementwise.
pub fn elementwise_mul(x: &Tensor, y: &Tensor, out: &Tensor) -> Result<()> {
    let n = check_same_shape("elementwise_mul", &[x, y, out])?;
    launch(MUL, n, 0.0, &[x.buffer(), y.buffer(), out.buffer()], out)
}

/// `out = alpha * x`.
pub fn elementwise_scale(x: &Tensor, alpha: f32, out: &Tensor) -> Result<()> {
    let n = check_same_shape("elementwise_scale", &[x, out])?;
    launch(SCALE, n, alpha, &[x.buffer(), out.buffer()], out)
}

/// `out = x`.
pub fn elementwise_copy(x: &Tensor, out: &Tensor) -> Result<()> {
    let n = check_same_shape("elementwise_copy", &[x, out])?;
    launch(COPY, n, 0.0, &[x.buffer(), out.buffer()], out)
}

/// `out = value` everywhere. Zero (+0.0) is a buffer clear, not a
/// dispatch: drivers implement it as a fill of memory, many times faster
/// than a kernel on a CPU driver (zero_grad of a large embedding).
pub fn elementwise_fill(out: &Tensor, value: f32) -> Result<()> {
    let n = check_same_shape("elementwise_fill", &[out])?;
    let range = out.buffer();
    // Clears need 4-byte-aligned ranges: always so for f32 views.
    if value.to_bits() == 0
        && range.offset.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
        && range.size.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
    {
        return out.device().rt.clear(range);
    }
    launch(FILL, n, value, &[range], out)
}

/// `out += alpha * x` (in place on `out`; accumulates gradients).
pub fn elementwise_axpy(alpha: f32, x: &Tensor, out: &Tensor) -> Result<()> {
    let n = check_same_shape("elementwise_axpy", &[x, out])?;
    launch(AXPY, n, alpha, &[x.buffer(), out.buffer()], out)
}

impl Tape {
    /// `a + b` (same shapes).
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let out = Tensor::uninit(self.device(), self.value(a)?.shape(), DType::F32)?;
        elementwise_add(self.value(a)?, self.value(b)?, &out)?;
        Ok(self.record(out, AddBackward { a, b }))
    }
}

/// Backward of [`Tape::add`].
#[derive(Debug)]
struct AddBackward {
    a: Var,
    b: Var,
}

impl Backward for AddBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        // Each input gets its own buffer (accumulation is in place, and `g`
        // stays this node's gradient).
        for input in [self.a, self.b] {
            let copy = Tensor::uninit(ctx.device(), g.shape(), DType::F32)?;
            elementwise_copy(g, &copy)?;
            ctx.accumulate(input, copy)?;
        }
        Ok(())
    }
}
