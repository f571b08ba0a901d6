//! CPU references of the language-model ops: AWD-LSTM's keyed (locked and
//! embedding) dropout and activation penalties, weight drop, and token
//! sampling. Same names as the GPU launchers.

use crate::ops::SampleOptions;
use crate::rnn::spec::{dropout_keep, pcg_hash};

/// `dropout_keyed`: x (N, F) with one key per row; the mask unit is the
/// key (`whole_rows`) or (key, feature). Inverted scaling 1/(1 − p).
pub fn dropout_keyed(x: &[f32], cols: usize, keys: &[u32], whole_rows: bool, p: f32, seed: u64) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    x.iter()
        .enumerate()
        .map(|(e, &v)| {
            let (r, f) = (e / cols, e % cols);
            let unit = if whole_rows { keys[r] } else { keys[r] * cols as u32 + f as u32 };
            if dropout_keep(seed, 0, unit, p) {
                v * scale
            } else {
                0.0
            }
        })
        .collect()
}

/// `dropout_dense` (weight drop's DropConnect on a whole weight tensor):
/// the mask indexed by element.
pub fn dropout_dense(x: &[f32], p: f32, seed: u64) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    x.iter().enumerate().map(|(e, &v)| if dropout_keep(seed, 0, e as u32, p) { v * scale } else { 0.0 }).collect()
}

/// `square_sum`: scale·Σ d² over x (N, F) with d = x (AR, `links` None) or
/// d = x_r − x_prev(r) for rows with a previous step (TAR, `links` the
/// (N, 2) prev/next table of `ops::temporal_links`). Returns the penalty
/// and its gradient w.r.t. x.
pub fn square_sum(x: &[f64], cols: usize, links: Option<&[u32]>, scale: f64) -> (f64, Vec<f64>) {
    let rows = x.len() / cols;
    let mut value = 0.0;
    let mut grad = vec![0.0; x.len()];
    for r in 0..rows {
        let prev = match links {
            None => None,
            Some(l) if l[2 * r] == u32::MAX => continue,
            Some(l) => Some(l[2 * r] as usize),
        };
        for f in 0..cols {
            let d = x[r * cols + f] - prev.map_or(0.0, |q| x[q * cols + f]);
            value += d * d;
            grad[r * cols + f] += 2.0 * scale * d;
            if let Some(q) = prev {
                grad[q * cols + f] -= 2.0 * scale * d;
            }
        }
    }
    (scale * value, grad)
}

/// Invocations per row in shaders/sample.wgsl: the reference walks the
/// kept mass in the kernel's order (invocation i owns i, i + WG, …).
const SAMPLE_WG: usize = crate::ops::sample::SAMPLE_WG as usize;

/// The uniform in [0, 1) of draw `step` of row `row`.
pub fn sample_uniform(seed: u64, step: u32, row: u32) -> f32 {
    let h = pcg_hash(pcg_hash(row ^ pcg_hash(step ^ pcg_hash(seed as u32 ^ pcg_hash((seed >> 32) as u32)))));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

fn is_banned(options: &SampleOptions, i: usize) -> bool {
    options.banned.contains(&Some(i as u32))
}

/// The ids that survive the top-k and top-p filters of one row of logits
/// (V), in id order, with their unnormalised weights exp(x − max).
pub fn sample_candidates(logits: &[f32], options: &SampleOptions) -> Vec<(usize, f64)> {
    let inv_t = 1.0 / f64::from(options.temperature);
    let scaled: Vec<f64> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| if is_banned(options, i) { f64::from(f32::MIN) } else { f64::from(l) * inv_t })
        .collect();
    let m = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]));
    let mut keep = vec![true; logits.len()];
    if options.top_k > 0 && options.top_k < logits.len() {
        let kth = scaled[order[options.top_k - 1]];
        for (i, &v) in scaled.iter().enumerate() {
            keep[i] = v >= kth;
        }
    }
    if options.top_p < 1.0 {
        let w: Vec<f64> = scaled.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = (0..w.len()).filter(|&i| keep[i]).map(|i| w[i]).sum();
        for i in 0..w.len() {
            // Kept when the mass strictly above it is below top_p.
            let above: f64 = (0..w.len()).filter(|&j| keep[j] && scaled[j] > scaled[i]).map(|j| w[j]).sum();
            keep[i] = keep[i] && above < f64::from(options.top_p) * z;
        }
    }
    (0..logits.len()).filter(|&i| keep[i]).map(|i| (i, (scaled[i] - m).exp())).collect()
}

/// `sample_logits` for one row: the token the kernel draws, computed in
/// f64 in the kernel's walking order. Greedy (temperature 0) is the first
/// index of the maximum.
pub fn sample_logits(logits: &[f32], options: &SampleOptions, step: u32, row: u32) -> u32 {
    if options.temperature == 0.0 {
        let allowed = |i: usize| if is_banned(options, i) { f32::MIN } else { logits[i] };
        let best = (0..logits.len()).map(allowed).fold(f32::NEG_INFINITY, f32::max);
        return (0..logits.len()).position(|i| allowed(i) == best).unwrap_or(0) as u32;
    }
    let kept = sample_candidates(logits, options);
    let mut walk: Vec<(usize, f64)> = Vec::with_capacity(kept.len());
    for lane in 0..SAMPLE_WG {
        walk.extend(kept.iter().filter(|(i, _)| i % SAMPLE_WG == lane));
    }
    let total: f64 = walk.iter().map(|(_, w)| w).sum();
    let target = f64::from(sample_uniform(options.seed, step, row)) * total;
    let mut acc = 0.0;
    for &(i, w) in &walk {
        acc += w;
        if target < acc {
            return i as u32;
        }
    }
    // Rounding past the total: the last id with mass (never a banned one).
    walk.iter().rev().find(|(_, w)| *w > 0.0).map_or(0, |&(i, _)| i as u32)
}

/// How far the draw of row `row` lies from the nearest boundary of the
/// cumulative kept mass, as a fraction of it: draws closer than f32
/// rounding may legitimately differ between GPU and reference.
pub fn sample_margin(logits: &[f32], options: &SampleOptions, step: u32, row: u32) -> f64 {
    let kept = sample_candidates(logits, options);
    let mut walk: Vec<f64> = Vec::new();
    for lane in 0..SAMPLE_WG {
        walk.extend(kept.iter().filter(|(i, _)| i % SAMPLE_WG == lane).map(|(_, w)| *w));
    }
    let total: f64 = walk.iter().sum();
    let u = f64::from(sample_uniform(options.seed, step, row));
    let mut acc = 0.0;
    let mut margin = f64::INFINITY;
    for w in walk {
        acc += w;
        margin = margin.min((acc / total - u).abs());
    }
    margin
}
