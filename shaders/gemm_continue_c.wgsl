// gemm_continue_c.wgsl — where a continuing gemm_subgroup dispatch
// (GemmParams.k_continue) starts, for the storage module (prepended after
// gemm_b_storage.wgsl to gemm_subgroup.wgsl; gemm_b_uniform.wgsl has the
// windowed module's): C's and the sums' stored values. Only the windowed
// module's dispatches continue; these keep subgroup_tile one function for
// both modules.
//
// Bindings: 4 c (gemm_vec4_common.wgsl), 5 a_sums4 (gemm_subgroup.wgsl).
// Workgroup mapping: gemm_subgroup.wgsl's.

fn continued_block(z: u32, row0: u32, col0: u32) -> mat4x4<f32> {
    return load_block(z, row0, col0);
}

fn continued_sums(row: u32) -> vec4<f32> {
    return a_sums4[row / 4u];
}
