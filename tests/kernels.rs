//! Elementwise, reduction and gather kernels on the GPU against their CPU
//! references, on awkward sizes.

mod common;

use common::{assert_close, device, random, AWKWARD};
use wgrnn::{ops, reference, Error, Tensor};

/// Elementwise ops are a single f32 operation each, correctly rounded on
/// every conforming backend: results must match the CPU bit for bit.
const EXACT: f32 = 0.0;
/// Sums of N terms in f32 (sequential, one invocation per output) against an
/// f64 reference, relative to Σ|x| (plus |β·old|): error ≤ N·eps worst
/// case, ≈ sqrt(N)·eps typically. Measured worst: 1.9e-7 on lavapipe and on
/// llvmpipe GL over 144 comparisons (N ≤ 1031); this bound is 11× that.
const SUM_RTOL: f32 = 2e-6;

fn upload(v: &[f32]) -> Tensor {
    Tensor::from_slice(device(), v, &[v.len()]).unwrap()
}

#[test]
fn elementwise_ops_match_reference() {
    let dev = device();
    for (i, &n) in AWKWARD.iter().enumerate() {
        let x = random(n, i as u64);
        let y = random(n, 100 + i as u64);
        let (tx, ty) = (upload(&x), upload(&y));
        let out = Tensor::zeros(dev, &[n]).unwrap();
        let ones = vec![1.0; n];
        let mut want = vec![0.0; n];

        ops::elementwise_add(&tx, &ty, &out).unwrap();
        reference::elementwise_add(&x, &y, &mut want);
        assert_close(&format!("add n={n}"), &out.to_vec().unwrap(), &want, &ones, EXACT);

        ops::elementwise_mul(&tx, &ty, &out).unwrap();
        reference::elementwise_mul(&x, &y, &mut want);
        assert_close(&format!("mul n={n}"), &out.to_vec().unwrap(), &want, &ones, EXACT);

        ops::elementwise_scale(&tx, -2.5, &out).unwrap();
        reference::elementwise_scale(&x, -2.5, &mut want);
        assert_close(&format!("scale n={n}"), &out.to_vec().unwrap(), &want, &ones, EXACT);

        ops::elementwise_copy(&ty, &out).unwrap();
        reference::elementwise_copy(&y, &mut want);
        assert_close(&format!("copy n={n}"), &out.to_vec().unwrap(), &want, &ones, EXACT);

        ops::elementwise_fill(&out, 0.375).unwrap();
        reference::elementwise_fill(&mut want, 0.375);
        assert_close(&format!("fill n={n}"), &out.to_vec().unwrap(), &want, &ones, EXACT);

        // axpy accumulates into the filled values. a = 0.5 makes a·x exact,
        // so fused into one FMA or not, the result is rounded once: exact
        // (measured: 0 on lavapipe and llvmpipe GL, every size).
        ops::elementwise_axpy(0.5, &tx, &out).unwrap();
        reference::elementwise_axpy(0.5, &x, &mut want);
        let got = out.to_vec().unwrap();
        assert_close(&format!("axpy n={n}"), &got, &want, &ones, EXACT);
    }
}

/// More elements than 65535 workgroups × 256 invocations: the dispatch is
/// split over x and y and every element must still be written exactly once.
#[test]
fn elementwise_covers_grids_beyond_one_dimension() {
    let dev = device();
    let n = 65_535 * 256 + 777;
    let out = Tensor::full(dev, &[n], 1.0).unwrap();
    let x = Tensor::full(dev, &[n], 2.0).unwrap();
    ops::elementwise_axpy(3.0, &x, &out).unwrap();
    let got = out.to_vec().unwrap();
    let wrong = got.iter().position(|&v| v != 7.0);
    assert_eq!(wrong, None, "element {wrong:?} is {:?}", wrong.map(|i| got[i]));
}

#[test]
fn sums_match_reference() {
    let dev = device();
    for (i, &m) in AWKWARD.iter().enumerate() {
        // 12, 64 and 516 run sum_cols_vec4 (N % 4 == 0; 516 spans three
        // workgroups of columns), 1, 5 and 129 the scalar kernel.
        for &n in &[1usize, 5, 12, 64, 129, 516] {
            let x = random(m * n, (i * 7 + n) as u64);
            let tx = Tensor::from_slice(dev, &x, &[m, n]).unwrap();
            let abs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            for beta in [0.0, 1.0] {
                let old_rows = random(m, 3);
                let rows = Tensor::from_slice(dev, &old_rows, &[m]).unwrap();
                ops::sum_rows(&tx, &rows, beta).unwrap();
                let mut want = old_rows.clone();
                reference::sum_rows(&x, [m, n], &mut want, beta);
                let mut scale = old_rows.iter().map(|v| (beta * v).abs()).collect::<Vec<_>>();
                reference::sum_rows(&abs, [m, n], &mut scale, 1.0);
                assert_close(
                    &format!("sum_rows {m}x{n} beta={beta}"),
                    &rows.to_vec().unwrap(),
                    &want,
                    &scale,
                    SUM_RTOL,
                );

                let old_cols = random(n, 4);
                let cols = Tensor::from_slice(dev, &old_cols, &[n]).unwrap();
                ops::sum_cols(&tx, &cols, beta).unwrap();
                let mut want = old_cols.clone();
                reference::sum_cols(&x, [m, n], &mut want, beta);
                let mut scale = old_cols.iter().map(|v| (beta * v).abs()).collect::<Vec<_>>();
                reference::sum_cols(&abs, [m, n], &mut scale, 1.0);
                assert_close(
                    &format!("sum_cols {m}x{n} beta={beta}"),
                    &cols.to_vec().unwrap(),
                    &want,
                    &scale,
                    SUM_RTOL,
                );
            }
        }
    }
}

#[test]
fn gather_rows_matches_reference() {
    let dev = device();
    // cols % 4 == 0 takes the vec4 entry.
    for &(rows, cols, count) in
        &[(1, 1, 1), (3, 17, 5), (64, 65, 63), (257, 3, 1031), (1031, 129, 17), (7, 4, 9), (50, 128, 77)]
    {
        let table = random(rows * cols, rows as u64);
        let idx: Vec<u32> = (0..count).map(|i| ((i * 7919 + 3) % rows) as u32).collect();
        let tt = Tensor::from_slice(dev, &table, &[rows, cols]).unwrap();
        let ti = Tensor::from_u32(dev, &idx, &[count]).unwrap();
        let got = ops::gather_rows(&tt, &ti).unwrap();
        assert_eq!(got.shape(), [count, cols]);
        let want = reference::gather_rows(&table, [rows, cols], &idx);
        // A gather copies values: exact.
        assert_close(
            &format!("gather {rows}x{cols} count={count}"),
            &got.to_vec().unwrap(),
            &want,
            &vec![1.0; want.len()],
            EXACT,
        );
    }
}

#[test]
fn gather_rejects_out_of_range_ids() {
    let dev = device();
    let table = Tensor::zeros(dev, &[10, 4]).unwrap();
    let ids = Tensor::from_u32(dev, &[0, 9, 10], &[3]).unwrap();
    let err = ops::gather_rows(&table, &ids).unwrap_err();
    assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("index 10 is out of range for a table of 10 rows"), "{err}");

    let negative = Tensor::from_i32(dev, &[-1], &[1]).unwrap();
    assert!(matches!(ops::gather_rows(&table, &negative), Err(Error::DType { .. })));

    let floats = Tensor::zeros(dev, &[3]).unwrap();
    assert!(matches!(ops::gather_rows(&table, &floats), Err(Error::DType { .. })));
}

#[test]
fn elementwise_rejects_bad_input() {
    let dev = device();
    let a = Tensor::zeros(dev, &[4]).unwrap();
    let b = Tensor::zeros(dev, &[5]).unwrap();
    let err = ops::elementwise_add(&a, &b, &a.clone()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");

    let out = Tensor::zeros(dev, &[4]).unwrap();
    let err = ops::elementwise_add(&a, &out, &out).unwrap_err();
    assert!(err.to_string().contains("must not share its buffer"), "{err}");

    let m = Tensor::zeros(dev, &[3, 4]).unwrap();
    let err = ops::sum_cols(&m, &Tensor::zeros(dev, &[3]).unwrap(), 0.0).unwrap_err();
    assert!(err.to_string().contains("out must be [4]"), "{err}");
}

/// `copy_padded` against its reference: widening with zeros, narrowing
/// from a strided source, batched and shared sources; a block reaching
/// past its source is an error, not an out-of-bounds read.
#[test]
fn copy_padded_matches_reference() {
    use wgrnn::ops::{copy_padded, Block};
    let dev = device();
    let src = random(3 * 5 * 7, 4);
    let t = Tensor::from_slice(dev, &src, &[3, 5, 7]).unwrap();
    for (block, batch, out_rows, out_cols) in [
        (Block { rows: 5, cols: 7, ld: 7, batch_stride: 35 }, Some(3), 8, 12),
        (Block { rows: 4, cols: 3, ld: 7, batch_stride: 35 }, Some(3), 4, 3),
        (Block { rows: 5, cols: 7, ld: 7, batch_stride: 0 }, Some(2), 5, 9),
        (Block { rows: 2, cols: 6, ld: 7, batch_stride: 0 }, None, 3, 8),
    ] {
        let got = copy_padded(&t, block, batch, out_rows, out_cols).unwrap();
        let nb = batch.unwrap_or(1);
        let want =
            reference::copy_padded(&src, block.rows, block.cols, block.ld, block.batch_stride, nb, out_rows, out_cols);
        assert_eq!(got.to_vec().unwrap(), want, "{block:?} batch {batch:?} → ({out_rows}, {out_cols})");
    }
    let past = Block { rows: 5, cols: 7, ld: 8, batch_stride: 35 };
    assert!(copy_padded(&t, past, Some(3), 5, 8).is_err(), "reads past the source");
    let empty = Block { rows: 0, cols: 7, ld: 7, batch_stride: 0 };
    assert!(copy_padded(&t, empty, None, 1, 7).is_err());
}
