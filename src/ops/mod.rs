//! GPU operations, one module per op. Each launcher validates its arguments
//! on the host (shapes, dtypes, devices, limits) and records one or more
//! dispatches; nothing is submitted until a readback or `Device::flush`.
//! Each has a CPU reference of the same name (in the op's module or in
//! [`crate::reference`]). The tape ops (embedding, linear, dropout, add,
//! pooling, losses, penalties) keep their forward (`impl Tape`), backward
//! rule, launchers and reference together in their module.

pub(crate) mod dropout;
pub(crate) mod elementwise;
pub mod embedding;
pub(crate) mod gather;
pub(crate) mod gemm;
pub mod gemm_tune;
pub(crate) mod linear;
pub mod loss;
pub(crate) mod pad;
pub mod pooling;
pub(crate) mod reduce;
pub(crate) mod regularize;
pub(crate) mod sample;

pub(crate) use dropout::{dropout_dense, dropout_packed};
pub use elementwise::{
    elementwise_add, elementwise_axpy, elementwise_copy, elementwise_fill, elementwise_mul, elementwise_scale,
};
pub use gather::gather_rows;
pub(crate) use gather::gather_rows_into;
pub(crate) use gather::gather_rows_or_zero;
pub use gemm::{gemm, gemm_and_sum_a, gemm_with_variant, matmul, GemmOptions, GemmVariant};
pub use pad::{copy_padded, copy_padded_into, Block};
pub use reduce::{sum_cols, sum_rows};
pub use regularize::temporal_links;
pub use sample::{sample_logits, SampleOptions, MAX_BANNED};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Checks that every tensor lives on the same device as the first.
pub(crate) fn check_same_device(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    if let Some((first, rest)) = tensors.split_first() {
        if rest.iter().any(|t| !first.same_device(t)) {
            return Err(Error::Shape { op, message: "tensors live on different devices".into() });
        }
    }
    Ok(())
}

/// Converts a dimension to the u32 the kernels index with.
pub(crate) fn dim_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::OutOfRange { op, message: format!("{what} = {v} exceeds u32 indexing") })
}

/// Rejects an output that shares elements with an input: results would
/// depend on invocation order. Disjoint views of one buffer are fine (the
/// launcher stages such reads, see `Runtime::launch`).
pub(crate) fn check_no_alias(op: &'static str, out: &Tensor, inputs: &[&Tensor]) -> Result<()> {
    if inputs.iter().any(|t| t.overlaps(out)) {
        return Err(Error::Shape {
            op,
            message: "the output tensor must not share its buffer range with an input".into(),
        });
    }
    Ok(())
}
