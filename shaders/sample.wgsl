// sample.wgsl — draws one token per row from logits (B, V) on the GPU, so
// generation needs no readback per token:
//   sample_logits   x = logits / temperature; keep the top_k largest (ties
//                   at the k-th value kept, as PyTorch's `logits < kth`
//                   filter does), then the smallest set whose probability
//                   reaches top_p (nucleus: a token is kept when the mass of
//                   the tokens strictly above it is below top_p); draw from
//                   the renormalised softmax with u = hash(seed, step, row).
//                   temperature = 0 is greedy: the first index of the max.
//                   Banned ids (up to 8) count as −FLT_MAX: never drawn
//                   while anything else is allowed.
// The k-th value and the nucleus threshold are found by bisection on the
// order-preserving u32 key of each float (32 rounds of a workgroup count or
// sum), so nothing is sorted. The draw walks the kept mass in a fixed order
// (invocation i owns elements i, i + WG, …; invocations in order), the
// order `reference::lm::sample_logits` follows on the CPU.
//
// Bindings:
//   0 p        uniform     SampleParams
//   1 logits   read        (B, V)
//   2 next     read_write  (B) u32: the drawn ids (the next step's input)
//   3 tokens   read_write  (S, B) u32: every step's ids, row `step`
// Workgroup mapping: one workgroup of WG invocations per batch row
// (workgroup x = row).
// Saves nothing.


// Mirrors `SampleParams` in src/ops/sample.rs.
struct SampleParams {
    rows: u32,
    vocab: u32,
    top_k: u32,        // 0 = no top-k filter
    greedy: u32,       // 1 = argmax
    inv_temperature: f32,
    top_p: f32,        // ≥ 1 = no nucleus filter
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // Up to MAX_BANNED ids never drawn (0xFFFFFFFF = none): padding,
    // <bos>, <eos> before a minimum length, …
    ban: array<vec4<u32>, MAX_BANNED / 4u>,
}

@group(0) @binding(0) var<uniform> p: SampleParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> next: array<u32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;

var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;
var<workgroup> total_f: f32;
var<workgroup> total_u: u32;
var<workgroup> chosen: u32;
var<workgroup> residual: f32;
var<workgroup> picked: u32;

// PCG-RXS-M-XS 32-bit hash; `pcg_hash` in src/rnn/spec.rs.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Order-preserving map of a float onto u32: a < b ⇔ key(a) < key(b).
fn key(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn sum_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s) { red_f[lid] += red_f[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { total_f = red_f[0]; }
    // A uniform value: the bisections below branch on it around barriers.
    return workgroupUniformLoad(&total_f);
}

fn sum_u(lid: u32, v: u32) -> u32 {
    red_u[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s) { red_u[lid] += red_u[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { total_u = red_u[0]; }
    return workgroupUniformLoad(&total_u);
}

fn max_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s) { red_f[lid] = max(red_f[lid], red_f[lid + s]); }
        workgroupBarrier();
    }
    if (lid == 0u) { total_f = red_f[0]; }
    return workgroupUniformLoad(&total_f);
}

const LOWEST: f32 = -3.4028235e38;

// MAX_BANNED comes from Rust; `scaled` compares against both vec4s.
const_assert MAX_BANNED == 8u;

// Scaled logit of id i of row `base`, LOWEST for a banned id.
fn scaled(base: u32, i: u32) -> f32 {
    if (any(vec4<u32>(i) == p.ban[0]) || any(vec4<u32>(i) == p.ban[1])) { return LOWEST; }
    return logits[base + i] * p.inv_temperature;
}

@compute @workgroup_size(WG)
fn sample_logits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wg.x;
    let base = row * p.vocab;

    if (p.greedy == 1u) {
        // Argmax, first index on ties: reduce (key, V − index) pairs as one
        // u64-like comparison done in two passes.
        var best_key = 0u;
        for (var i = lid; i < p.vocab; i += WG) { best_key = max(best_key, key(scaled(base, i))); }
        red_u[lid] = best_key;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s /= 2u) {
            if (lid < s) { red_u[lid] = max(red_u[lid], red_u[lid + s]); }
            workgroupBarrier();
        }
        let top = red_u[0];
        workgroupBarrier();
        var first = 0xFFFFFFFFu;
        for (var i = lid; i < p.vocab; i += WG) {
            if (key(scaled(base, i)) == top) { first = min(first, i); }
        }
        red_u[lid] = first;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s /= 2u) {
            if (lid < s) { red_u[lid] = min(red_u[lid], red_u[lid + s]); }
            workgroupBarrier();
        }
        if (lid == 0u) {
            next[row] = red_u[0];
            tokens[p.step * p.rows + row] = red_u[0];
        }
        return;
    }

    // Max of the scaled logits, for a stable softmax.
    var m = LOWEST;
    for (var i = lid; i < p.vocab; i += WG) { m = max(m, scaled(base, i)); }
    m = max_f(lid, m);

    // Top-k: the largest key t with count(key ≥ t) ≥ k.
    var floor_key = 0u;
    if (p.top_k > 0u && p.top_k < p.vocab) {
        var lo = 0u;
        var hi = 0xFFFFFFFFu;
        // Invariant: count(key ≥ lo) ≥ k; find the largest such lo.
        for (var round = 0u; round < 32u; round++) {
            // lo + ⌈(hi − lo) / 2⌉ without overflow (hi − lo + 1 wraps to 0
            // on the first round).
            let d = hi - lo;
            let mid = lo + d / 2u + (d & 1u);
            var c = 0u;
            for (var i = lid; i < p.vocab; i += WG) {
                c += select(0u, 1u, key(scaled(base, i)) >= mid);
            }
            if (sum_u(lid, c) >= p.top_k) { lo = mid; } else { hi = mid - 1u; }
            if (lo == hi) { break; }
        }
        floor_key = lo;
    }

    // Mass of the top-k survivors.
    var z = 0.0;
    for (var i = lid; i < p.vocab; i += WG) {
        let v = scaled(base, i);
        if (key(v) >= floor_key) { z += exp(v - m); }
    }
    z = sum_f(lid, z);

    // Nucleus: the smallest key t with mass(key > t) < top_p · z.
    if (p.top_p < 1.0) {
        var lo = floor_key;
        var hi = 0xFFFFFFFFu;
        let limit = p.top_p * z;
        for (var round = 0u; round < 32u; round++) {
            if (lo == hi) { break; }
            let mid = lo + (hi - lo) / 2u;
            var above = 0.0;
            for (var i = lid; i < p.vocab; i += WG) {
                let v = scaled(base, i);
                if (key(v) > mid) { above += exp(v - m); }
            }
            if (sum_f(lid, above) < limit) { hi = mid; } else { lo = mid + 1u; }
        }
        floor_key = lo;
    }

    // Kept mass per invocation, then the draw.
    var mine = 0.0;
    for (var i = lid; i < p.vocab; i += WG) {
        let v = scaled(base, i);
        if (key(v) >= floor_key) { mine += exp(v - m); }
    }
    red_f[lid] = mine;
    workgroupBarrier();
    if (lid == 0u) {
        let h = pcg_hash(pcg_hash(row ^ pcg_hash(p.step ^ pcg_hash(p.seed_lo ^ pcg_hash(p.seed_hi)))));
        let u = f32(h >> 8u) * (1.0 / 16777216.0);
        var total = 0.0;
        for (var j = 0u; j < WG; j++) { total += red_f[j]; }
        var goal = u * total;
        var who = 0u;
        var last = 0u;
        var found = false;
        for (var j = 0u; j < WG; j++) {
            if (red_f[j] > 0.0) {
                last = j;
                if (!found && goal < red_f[j]) { who = j; found = true; }
                else if (!found) { goal -= red_f[j]; }
            }
        }
        if (!found) { who = last; goal = red_f[last]; }
        chosen = who;
        residual = goal;
    }
    workgroupBarrier();
    if (lid == chosen) {
        var acc = 0.0;
        var pick = 0xFFFFFFFFu;
        var last_kept = 0u;
        for (var i = lid; i < p.vocab; i += WG) {
            let v = scaled(base, i);
            if (key(v) >= floor_key) {
                let w = exp(v - m);
                // A banned id has no mass: never the fallback either.
                if (w > 0.0) { last_kept = i; }
                acc += w;
                if (pick == 0xFFFFFFFFu && residual < acc) { pick = i; }
            }
        }
        // u·total rounded up to the total: the last id with mass.
        if (pick == 0xFFFFFFFFu) { pick = last_kept; }
        next[row] = pick;
        tokens[p.step * p.rows + row] = pick;
    }
}
