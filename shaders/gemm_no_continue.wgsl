// gemm_no_continue.wgsl — continued_block / continued_sums and k_loop for
// the storage module (prepended after gemm_b_storage.wgsl to
// gemm_subgroup.wgsl; gemm_b_uniform.wgsl has the windowed module's). Only the windowed
// module's dispatches continue (GemmParams.k_continue, set by
// src/ops/gemm.rs for SubgroupWindow alone); these keep subgroup_tile one
// function for both modules.
//
// Why zeros and not C's stored values: the continuation block is 128
// loads of C, each a per-lane loop on lavapipe, and LLVM compiled them into
// every Subgroup pipeline although none ever ran; constants let the
// compiler drop the block (cold pipeline compiles were the cost).
//
// Bindings: none.
// Workgroup mapping: gemm_subgroup.wgsl's.

fn continued_block(z: u32, row0: u32, col0: u32) -> mat4x4<f32> {
    return mat4x4<f32>();
}

fn continued_sums(row: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}

// The storage module's k-steps: one loop over this dispatch's k.
fn k_loop(acc: ptr<function, Acc>, a_sums: ptr<function, vec4<f32>>, a_base: u32, b_base: u32, row0: u32,
          col0: u32, lane: u32) {
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += 4u) {
        k_step(acc, a_sums, a_base, row0, k0, lane, b_fragments(b_base, k0, col0));
    }
}
