//! References of the basic kernels in [`crate::ops`].

use crate::ops::GemmOptions;

/// `C = alpha · op(A) · op(B) + beta · C + bias` on row-major host data.
/// `a_shape`/`b_shape` are the stored 2-D shapes (before `op`); C is (M, N).
/// With `beta == 0` the old C is ignored, as on the GPU.
pub fn gemm(
    a: &[f32],
    a_shape: [usize; 2],
    b: &[f32],
    b_shape: [usize; 2],
    bias: Option<&[f32]>,
    c: &mut [f32],
    opts: GemmOptions,
) {
    let (m, k) = if opts.trans_a { (a_shape[1], a_shape[0]) } else { (a_shape[0], a_shape[1]) };
    let n = if opts.trans_b { b_shape[0] } else { b_shape[1] };
    let at = |i: usize, kk: usize| {
        if opts.trans_a {
            a[kk * m + i]
        } else {
            a[i * k + kk]
        }
    };
    let bt = |kk: usize, j: usize| {
        if opts.trans_b {
            b[j * k + kk]
        } else {
            b[kk * n + j]
        }
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for kk in 0..k {
                acc += f64::from(at(i, kk)) * f64::from(bt(kk, j));
            }
            let mut v = f64::from(opts.alpha) * acc;
            if let Some(bias) = bias {
                v += f64::from(bias[j]);
            }
            if opts.beta != 0.0 {
                v += f64::from(opts.beta) * f64::from(c[i * n + j]);
            }
            c[i * n + j] = v as f32;
        }
    }
}

/// `out = x + y`.
pub fn elementwise_add(x: &[f32], y: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = a + b;
    }
}

/// `out = x * y`.
pub fn elementwise_mul(x: &[f32], y: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = a * b;
    }
}

/// `out = alpha * x`.
pub fn elementwise_scale(x: &[f32], alpha: f32, out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(x) {
        *o = alpha * a;
    }
}

/// `out = x`.
pub fn elementwise_copy(x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(x);
}

/// `out = value`.
pub fn elementwise_fill(out: &mut [f32], value: f32) {
    out.fill(value);
}

/// `out += alpha * x`.
pub fn elementwise_axpy(alpha: f32, x: &[f32], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(x) {
        *o += alpha * a;
    }
}

/// `out[m] = Σ_n x[m, n] + beta · out[m]` for x (M, N).
pub fn sum_rows(x: &[f32], shape: [usize; 2], out: &mut [f32], beta: f32) {
    let [m, n] = shape;
    for i in 0..m {
        let s: f64 = x[i * n..(i + 1) * n].iter().map(|&v| f64::from(v)).sum();
        let old = if beta != 0.0 { f64::from(beta) * f64::from(out[i]) } else { 0.0 };
        out[i] = (s + old) as f32;
    }
}

/// `out[n] = Σ_m x[m, n] + beta · out[n]` for x (M, N).
pub fn sum_cols(x: &[f32], shape: [usize; 2], out: &mut [f32], beta: f32) {
    let [m, n] = shape;
    for j in 0..n {
        let s: f64 = (0..m).map(|i| f64::from(x[i * n + j])).sum();
        let old = if beta != 0.0 { f64::from(beta) * f64::from(out[j]) } else { 0.0 };
        out[j] = (s + old) as f32;
    }
}

/// `out[i, :] = table[idx[i], :]` for table (rows, cols); returns (count, cols).
/// Panics on an out-of-range index (references are for tests).
pub fn gather_rows(table: &[f32], shape: [usize; 2], idx: &[u32]) -> Vec<f32> {
    let cols = shape[1];
    idx.iter().flat_map(|&r| table[r as usize * cols..(r as usize + 1) * cols].iter().copied()).collect()
}

/// `copy_padded`: the (rows, cols) block of `src` (rows `ld` apart,
/// batches `batch_stride` apart) into a zeroed (batch, out_rows, out_cols)
/// grid.
#[allow(clippy::too_many_arguments)]
pub fn copy_padded(
    src: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
    batch_stride: usize,
    batch: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; batch * out_rows * out_cols];
    for z in 0..batch {
        for r in 0..rows.min(out_rows) {
            for c in 0..cols.min(out_cols) {
                out[(z * out_rows + r) * out_cols + c] = src[z * batch_stride + r * ld + c];
            }
        }
    }
    out
}
