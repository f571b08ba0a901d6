//! GEMM on the GPU against the CPU reference: every kernel variant, every
//! transpose combination, awkward shapes, bias, alpha/beta and batches.

mod common;

use common::{assert_close, device, random, AWKWARD};
use wgrnn::ops::{gemm, gemm_and_sum_a, gemm_with_variant, matmul, sum_cols, GemmOptions, GemmVariant};
use wgrnn::{reference, Error, Tensor};

/// f32 dot products of length K carry rounding error up to about
/// K·eps·Σ|a·b| in the worst case and sqrt(K)·eps·Σ|a·b| typically
/// (eps = 6e-8); the reference accumulates in f64. Relative to Σ|a·b| (plus
/// |β·c| and |bias|; the batched test uses K ≥ Σ|a·b|). Measured worst:
/// 2.8e-7 on lavapipe and on llvmpipe GL over 484 comparisons (every
/// variant, transpose and awkward size; worst Shared, M = 1028, K = 64);
/// this bound is 11× that and far below any indexing mistake (order 1).
const GEMM_RTOL: f32 = 3e-6;

const ALL_VARIANTS: [GemmVariant; 5] =
    [GemmVariant::Register, GemmVariant::Vec4, GemmVariant::Shared, GemmVariant::Subgroup, GemmVariant::SubgroupWindow];

/// Every variant the test device runs (`Subgroup` and `SubgroupWindow`
/// need subgroups of 8: lavapipe has them, GL has none).
fn variants() -> Vec<GemmVariant> {
    ALL_VARIANTS.into_iter().filter(|v| v.runs_on(device())).collect()
}

/// Runs one GEMM on the GPU and the CPU and compares them.
#[allow(clippy::too_many_arguments)]
fn check(variant: GemmVariant, m: usize, k: usize, n: usize, opts: GemmOptions, with_bias: bool, seed: u64) {
    let dev = device();
    let a_shape = if opts.trans_a { [k, m] } else { [m, k] };
    let b_shape = if opts.trans_b { [n, k] } else { [k, n] };
    let a = random(m * k, seed);
    let b = random(k * n, seed + 1);
    let c0 = random(m * n, seed + 2);
    let bias = with_bias.then(|| random(n, seed + 3));

    let ta = Tensor::from_slice(dev, &a, &a_shape).unwrap();
    let tb = Tensor::from_slice(dev, &b, &b_shape).unwrap();
    let tc = Tensor::from_slice(dev, &c0, &[m, n]).unwrap();
    let tbias = bias.as_ref().map(|v| Tensor::from_slice(dev, v, &[n]).unwrap());
    gemm_with_variant(&ta, &tb, tbias.as_ref(), &tc, opts, variant).unwrap();
    let got = tc.to_vec().unwrap();

    let mut want = c0.clone();
    reference::gemm(&a, a_shape, &b, b_shape, bias.as_deref(), &mut want, opts);
    // Error scale: the same product on absolute values.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut scale: Vec<f32> = c0.iter().map(|c| (opts.beta * c).abs()).collect();
    let abs_opts = GemmOptions { alpha: opts.alpha.abs(), beta: 1.0, ..opts };
    let abs_bias = bias.as_deref().map(abs);
    reference::gemm(&abs(&a), a_shape, &abs(&b), b_shape, abs_bias.as_deref(), &mut scale, abs_opts);
    let what = format!("{variant:?} gemm M={m} K={k} N={n} {opts:?} bias={with_bias}");
    assert_close(&what, &got, &want, &scale, GEMM_RTOL);
}

fn all_transposes() -> [GemmOptions; 4] {
    let o = GemmOptions::default();
    [
        o,
        GemmOptions { trans_a: true, ..o },
        GemmOptions { trans_b: true, ..o },
        GemmOptions { trans_a: true, trans_b: true, ..o },
    ]
}

/// Every awkward size in each of M, K and N in turn (the other two held at
/// sizes that exercise tile edges), for every variant and transpose.
#[test]
fn gemm_matches_reference_on_awkward_shapes() {
    for variant in variants() {
        for opts in all_transposes() {
            for (i, &s) in AWKWARD.iter().enumerate() {
                let seed = 10 * i as u64;
                check(variant, s, 20, 36, opts, false, seed);
                check(variant, 36, s, 20, opts, false, seed + 1);
                check(variant, 20, 36, s, opts, false, seed + 2);
            }
        }
    }
}

/// Shapes where the vec4 kernel really runs (K, N and, transposed, M
/// multiples of 4) including partial 16×16 tiles and ≥ 1024 extents.
#[test]
fn gemm_vec4_shapes() {
    for opts in all_transposes() {
        for &(m, k, n) in &[(4, 4, 4), (64, 64, 64), (68, 132, 260), (1028, 64, 36), (12, 1024, 1032), (256, 128, 512)]
        {
            for variant in variants() {
                check(variant, m, k, n, opts, false, (m + k + n) as u64);
            }
        }
    }
}

/// Large shapes the vec4 kernel cannot take as they are (a vocabulary of
/// 4,415 as N, K or a transposed M) run it on zero-padded copies: every
/// transpose, with alpha, beta and bias, against the reference.
#[test]
fn gemm_vec4_pads_unaligned_operands() {
    for opts in all_transposes() {
        let opts = GemmOptions { alpha: 0.75, beta: -1.5, ..opts };
        for &(m, k, n) in &[(130, 64, 4415), (4415, 130, 64), (64, 4415, 130), (1031, 257, 3)] {
            for variant in variants()
                .into_iter()
                .filter(|v| matches!(v, GemmVariant::Vec4 | GemmVariant::Subgroup | GemmVariant::SubgroupWindow))
            {
                check(variant, m, k, n, opts, true, (m + n) as u64);
            }
        }
    }
}

/// alpha, beta (accumulation into old C) and the bias broadcast.
#[test]
fn gemm_alpha_beta_bias() {
    for variant in variants() {
        for opts in all_transposes() {
            let opts = GemmOptions { alpha: 0.75, beta: -1.5, ..opts };
            check(variant, 65, 64, 68, opts, true, 7);
            check(variant, 3, 17, 5, opts, true, 8);
            let accumulate = GemmOptions { alpha: 1.0, beta: 1.0, ..opts };
            check(variant, 64, 64, 64, accumulate, false, 9);
        }
    }
}

/// beta = 0 must ignore C entirely, even NaN (BLAS semantics; pooled
/// buffers hold garbage).
#[test]
fn gemm_beta_zero_ignores_nan_in_c() {
    let dev = device();
    for variant in variants() {
        let a = Tensor::from_slice(dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let c = Tensor::from_slice(dev, &[f32::NAN; 4], &[2, 2]).unwrap();
        gemm_with_variant(&a, &a, None, &c, GemmOptions::default(), variant).unwrap();
        assert_eq!(c.to_vec().unwrap(), vec![7.0, 10.0, 15.0, 22.0], "{variant:?}");
    }
}

/// Batched: 3-D A and B, and a 2-D B shared by every batch.
#[test]
fn gemm_batched() {
    let dev = device();
    // The second shape is big and unaligned enough for the vec4 kernel to
    // run on padded copies.
    for (batch, m, k, n) in [(3, 17, 8, 12), (3, 67, 33, 130)] {
        let a = random(batch * m * k, 1);
        let b = random(batch * k * n, 2);
        for variant in variants() {
            for shared_b in [false, true] {
                let ta = Tensor::from_slice(dev, &a, &[batch, m, k]).unwrap();
                let tb = if shared_b {
                    Tensor::from_slice(dev, &b[..k * n], &[k, n]).unwrap()
                } else {
                    Tensor::from_slice(dev, &b, &[batch, k, n]).unwrap()
                };
                let tc = Tensor::zeros(dev, &[batch, m, n]).unwrap();
                gemm_with_variant(&ta, &tb, None, &tc, GemmOptions::default(), variant).unwrap();
                let got = tc.to_vec().unwrap();
                for z in 0..batch {
                    let bz = if shared_b { &b[..k * n] } else { &b[z * k * n..(z + 1) * k * n] };
                    let mut want = vec![0.0; m * n];
                    reference::gemm(
                        &a[z * m * k..(z + 1) * m * k],
                        [m, k],
                        bz,
                        [k, n],
                        None,
                        &mut want,
                        GemmOptions::default(),
                    );
                    let scale = vec![k as f32; m * n];
                    let what = format!("{variant:?} ({m}, {k}, {n}) batch {z} shared_b={shared_b}");
                    assert_close(&what, &got[z * m * n..(z + 1) * m * n], &want, &scale, GEMM_RTOL);
                }
            }
        }
    }
}

/// The subgroup kernels share loads, not arithmetic: on the bench step's
/// GEMM shapes (and ragged edges, with alpha, beta and bias) they give
/// exactly `Vec4`'s bits; the windowed one too, split into windows over k
/// (the first three shapes: 20, 4 and 4 windows) or over columns (the
/// third), with and without alpha, beta and bias.
#[test]
fn gemm_subgroup_equals_vec4_bitwise() {
    let dev = device();
    if !GemmVariant::Subgroup.runs_on(dev) {
        // GL and adapters without 8-lane subgroups never build the kernel.
        assert!(dev.info().subgroup_size != Some(wgrnn::device::SUBGROUP_SIZE));
        return;
    }
    let shapes = [
        (512, 2560, 128, true, false),
        (2560, 512, 128, false, false),
        (2560, 128, 512, false, true),
        (36, 12, 260, true, true),
        (100, 8, 4, false, false),
    ];
    for (i, &(m, k, n, trans_a, trans_b)) in shapes.iter().enumerate() {
        for (opts, with_bias) in [
            (GemmOptions { trans_a, trans_b, alpha: 0.5, beta: 1.25 }, true),
            (GemmOptions { trans_a, trans_b, ..GemmOptions::default() }, false),
        ] {
            let a_shape = if trans_a { [k, m] } else { [m, k] };
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let seed = 100 * i as u64;
            let a = Tensor::from_slice(dev, &random(m * k, seed), &a_shape).unwrap();
            let b = Tensor::from_slice(dev, &random(k * n, seed + 1), &b_shape).unwrap();
            let bias = Tensor::from_slice(dev, &random(n, seed + 2), &[n]).unwrap();
            let c0 = random(m * n, seed + 3);
            let mut outs = Vec::new();
            let bias = with_bias.then_some(&bias);
            let compared = [GemmVariant::Vec4, GemmVariant::Subgroup, GemmVariant::SubgroupWindow];
            for variant in compared.into_iter().filter(|v| v.runs_on(dev)) {
                let c = Tensor::from_slice(dev, &c0, &[m, n]).unwrap();
                gemm_with_variant(&a, &b, bias, &c, opts, variant).unwrap();
                outs.push((variant, c.to_vec().unwrap()));
            }
            for (variant, out) in &outs[1..] {
                let differ = outs[0].1.iter().zip(out).position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(
                    differ,
                    None,
                    "({m}, {k}, {n}) {opts:?}: Vec4 {:?} vs {variant:?} {:?}",
                    differ.map(|i| outs[0].1[i]),
                    differ.map(|i| out[i])
                );
            }
        }
    }
}

/// `gemm_and_sum_a` gives exactly the bits of `gemm` then `sum_cols` (the
/// fused subgroup kernel sums A in sum_cols' order; other devices run
/// those two): weight-gradient shapes of the bench step and of a linear
/// head, ragged row tiles (M = 36, 100: lanes past M store no sums), more
/// than one column tile (N = 260), beta 0 over NaN garbage and beta 1.
#[test]
fn gemm_and_sum_a_equals_gemm_then_sum_cols_bitwise() {
    let dev = device();
    let shapes = [(512, 2560, 128), (384, 2560, 128), (4, 64, 128), (36, 12, 260), (100, 8, 4), (6, 10, 3)];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        for beta in [0.0, 1.0] {
            let opts = GemmOptions { trans_a: true, beta, ..GemmOptions::default() };
            let seed = 1000 + 10 * i as u64;
            let a = Tensor::from_slice(dev, &random(m * k, seed), &[k, m]).unwrap();
            let b = Tensor::from_slice(dev, &random(k * n, seed + 1), &[k, n]).unwrap();
            let c0 = if beta == 0.0 { vec![f32::NAN; m * n] } else { random(m * n, seed + 2) };
            let s0 = if beta == 0.0 { vec![f32::NAN; m] } else { random(m, seed + 3) };
            let (c_two, s_two) =
                (Tensor::from_slice(dev, &c0, &[m, n]).unwrap(), Tensor::from_slice(dev, &s0, &[m]).unwrap());
            gemm(&a, &b, None, &c_two, opts).unwrap();
            sum_cols(&a, &s_two, beta).unwrap();
            let (c_one, s_one) =
                (Tensor::from_slice(dev, &c0, &[m, n]).unwrap(), Tensor::from_slice(dev, &s0, &[m]).unwrap());
            gemm_and_sum_a(&a, &b, &c_one, opts, &s_one).unwrap();
            for (what, two, one) in [("C", &c_two, &c_one), ("sums", &s_two, &s_one)] {
                let (two, one) = (two.to_vec().unwrap(), one.to_vec().unwrap());
                let differ = two.iter().zip(&one).position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(differ, None, "({m}, {k}, {n}) beta {beta}: {what} differs at {differ:?}");
            }
            // And the sums are the column sums (f64 reference; k terms of
            // |a| ≤ 1 in f32: k·eps relative to Σ|a|).
            let av = a.to_vec().unwrap();
            let got = s_one.to_vec().unwrap();
            for col in 0..m {
                let old = if beta == 0.0 { 0.0 } else { f64::from(beta * s0[col]) };
                let want: f64 = (0..k).map(|r| f64::from(av[r * m + col])).sum::<f64>() + old;
                let scale: f64 = (0..k).map(|r| f64::from(av[r * m + col].abs())).sum::<f64>() + 1.0;
                assert!((f64::from(got[col]) - want).abs() <= 1e-6 * k as f64 * scale, "({m}, {k}, {n}) sums[{col}]");
            }
        }
    }
}

/// Bad input to `gemm_and_sum_a` is an error, not a wrong answer.
#[test]
fn gemm_and_sum_a_rejects_bad_input() {
    let dev = device();
    let a = Tensor::zeros(dev, &[8, 4]).unwrap();
    let b = Tensor::zeros(dev, &[8, 4]).unwrap();
    let c = Tensor::zeros(dev, &[4, 4]).unwrap();
    let at = GemmOptions { trans_a: true, ..GemmOptions::default() };
    let wrong_len = Tensor::zeros(dev, &[8]).unwrap();
    let err = gemm_and_sum_a(&a, &b, &c, at, &wrong_len).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("sums"), "{err}");
    let sums = Tensor::zeros(dev, &[4]).unwrap();
    let err = gemm_and_sum_a(&a, &b, &c, GemmOptions::default(), &sums).unwrap_err();
    assert!(err.to_string().contains("trans_a"), "{err}");
    // Sums written over A itself (a (1, 4) A seen as (4)).
    let a1 = Tensor::zeros(dev, &[1, 4]).unwrap();
    let b1 = Tensor::zeros(dev, &[1, 4]).unwrap();
    let err = gemm_and_sum_a(&a1, &b1, &c, at, &a1.reshape(&[4]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("share"), "{err}");
}

/// Asking for the subgroup kernel on a device without subgroups is an
/// error naming what is missing, not a shader that fails to build.
#[test]
fn gemm_subgroup_without_subgroups_is_an_error() {
    let options = wgrnn::DeviceOptions::from_env().unwrap().with_subgroups(false);
    let dev = wgrnn::Device::with_options(&options).unwrap();
    assert_eq!(dev.info().subgroup_size, None);
    assert!(!matches!(GemmVariant::for_device(&dev), GemmVariant::Subgroup | GemmVariant::SubgroupWindow));
    let a = Tensor::zeros(&dev, &[4, 4]).unwrap();
    let c = Tensor::zeros(&dev, &[4, 4]).unwrap();
    let err = gemm_with_variant(&a, &a, None, &c, GemmOptions::default(), GemmVariant::Subgroup).unwrap_err();
    assert!(matches!(err, Error::Config(_)) && err.to_string().contains("subgroups of 8"), "{err}");
}

#[test]
fn matmul_small_exact() {
    let dev = device();
    let a = Tensor::from_slice(dev, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = Tensor::from_slice(dev, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2]).unwrap();
    // Small integers: exact in f32.
    assert_eq!(matmul(&a, &b).unwrap().to_vec().unwrap(), vec![4.0, 5.0, 10.0, 11.0]);
}

#[test]
fn gemm_rejects_bad_shapes() {
    let dev = device();
    let a = Tensor::zeros(dev, &[2, 3]).unwrap();
    let b = Tensor::zeros(dev, &[4, 5]).unwrap();
    let c = Tensor::zeros(dev, &[2, 5]).unwrap();
    let err = wgrnn::ops::gemm(&a, &b, None, &c, GemmOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("inner dimensions differ"), "{err}");

    let b = Tensor::zeros(dev, &[3, 5]).unwrap();
    let wrong_c = Tensor::zeros(dev, &[5, 2]).unwrap();
    let err = wgrnn::ops::gemm(&a, &b, None, &wrong_c, GemmOptions::default()).unwrap_err();
    assert!(err.to_string().contains("C must be (2, 5)"), "{err}");

    let bias = Tensor::zeros(dev, &[4]).unwrap();
    let err = wgrnn::ops::gemm(&a, &b, Some(&bias), &c, GemmOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bias must be [5]"), "{err}");

    let ids = Tensor::from_u32(dev, &[0; 6], &[2, 3]).unwrap();
    let err = wgrnn::ops::gemm(&ids, &b, None, &c, GemmOptions::default()).unwrap_err();
    assert!(matches!(err, Error::DType { .. }), "{err}");

    let sq = Tensor::zeros(dev, &[3, 3]).unwrap();
    let err = wgrnn::ops::gemm(&sq, &sq, None, &sq, GemmOptions::default()).unwrap_err();
    assert!(err.to_string().contains("must not share its buffer"), "{err}");

    let err = matmul(&Tensor::zeros(dev, &[2, 3, 4]).unwrap(), &b).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

/// Variants that `same_bits` pairs give exactly the same bits: `Register`
/// and `Shared` (fma in k order), `Vec4`, `Subgroup` and `SubgroupWindow`
/// (vec4 multiply-adds in k order), on ragged and tiled shapes of every
/// transpose, with and without the fused column sums. The GEMM tuner only
/// chooses inside one such family, so tuning never changes a result.
#[test]
fn variants_with_the_same_bits_agree_bitwise() {
    let dev = device();
    let runs = variants();
    for (i, &(m, k, n)) in [(37, 19, 41), (128, 64, 96), (64, 260, 128)].iter().enumerate() {
        for opts in all_transposes() {
            let seed = 300 + 10 * i as u64;
            let a_shape = if opts.trans_a { [k, m] } else { [m, k] };
            let b_shape = if opts.trans_b { [n, k] } else { [k, n] };
            let a = Tensor::from_slice(dev, &random(m * k, seed), &a_shape).unwrap();
            let b = Tensor::from_slice(dev, &random(k * n, seed + 1), &b_shape).unwrap();
            let outs: Vec<(GemmVariant, Vec<f32>)> = runs
                .iter()
                .map(|&v| {
                    let c = Tensor::zeros(dev, &[m, n]).unwrap();
                    gemm_with_variant(&a, &b, None, &c, opts, v).unwrap();
                    (v, c.to_vec().unwrap())
                })
                .collect();
            for (x, out_x) in &outs {
                for (y, out_y) in outs.iter().filter(|(y, _)| y != x && y.same_bits(*x)) {
                    let differ = out_x.iter().zip(out_y).position(|(p, q)| p.to_bits() != q.to_bits());
                    assert_eq!(differ, None, "({m}, {k}, {n}) {opts:?}: {x} and {y} differ");
                }
            }
        }
    }
    assert!(GemmVariant::Register.same_bits(GemmVariant::Shared));
    assert!(GemmVariant::Vec4.same_bits(GemmVariant::SubgroupWindow));
    assert!(!GemmVariant::Shared.same_bits(GemmVariant::Vec4));
}
