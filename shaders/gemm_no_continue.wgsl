// gemm_no_continue.wgsl — continued_block / continued_sums for the storage
// module (prepended after gemm_b_storage.wgsl to gemm_subgroup.wgsl;
// gemm_b_uniform.wgsl has the windowed module's). Only the windowed
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
