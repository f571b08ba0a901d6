// gemm_b_storage.wgsl — b_fragment for gemm_vec4.wgsl, and b_fragments (a
// k-step's four) for gemm_subgroup.wgsl: op(B) read from its storage
// binding (prepended after gemm_vec4_common.wgsl by the kernel registry).
// gemm_b_uniform.wgsl reads the same fragments from uniform windows.
//
// Bindings: 2 b (gemm_vec4_common.wgsl).
// Workgroup mapping: the including kernel's.

// Fragment of op(B): k0..k0+3, columns col0..col0+3, as a matrix whose
// column j holds the four k values of column col0 + j.
fn b_fragment(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        // B stored (N, K): each column's four k values are contiguous.
        let last = p.n - 1u;
        return mat4x4<f32>(b[(base + min(col0, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 1u, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 2u, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 3u, last) * p.ldb + k0) / 4u]);
    }
    // B stored (K, N): columns are contiguous; clamp the group to the matrix.
    let cc = min(col0, p.n - 4u);
    return transpose(mat4x4<f32>(b[(base + k0 * p.ldb + cc) / 4u], b[(base + (k0 + 1u) * p.ldb + cc) / 4u],
                                 b[(base + (k0 + 2u) * p.ldb + cc) / 4u], b[(base + (k0 + 3u) * p.ldb + cc) / 4u]));
}

// The four fragments of a k-step (columns col0.., col0 + 4.., col0 + 8..,
// col0 + 12..), as gemm_subgroup.wgsl takes them.
struct BFrags { f0: mat4x4<f32>, f1: mat4x4<f32>, f2: mat4x4<f32>, f3: mat4x4<f32> }

fn b_fragments(base: u32, k0: u32, col0: u32) -> BFrags {
    return BFrags(b_fragment(base, k0, col0), b_fragment(base, k0, col0 + 4u), b_fragment(base, k0, col0 + 8u),
                  b_fragment(base, k0, col0 + 12u));
}
