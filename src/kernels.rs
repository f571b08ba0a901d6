//! Kernel registry: every `shaders/*.wgsl` file embedded at compile time,
//! each kernel (entry point) described once with its bindings, and compiled
//! once per set of override constants into a cached pipeline
//! (see `Runtime::launch`).
//!
//! Binding convention, shared by every shader: `@binding(0)` is the uniform
//! params struct (bound with a dynamic offset into the params arena); storage
//! buffers use the binding numbers `Kernel::storage` lists, so entry points
//! of one file can share declarations and each bind only what it uses.

/// The shared WGSL prelude prepended to every shader: numerically safe
/// activations and grid helpers.
pub const PRELUDE: &str = include_str!("../shaders/prelude.wgsl");

/// Recurrent-kernel header prepended (after the prelude and the constants)
/// to every recurrent kernel: step params, packed-batch description, index
/// helpers, `CellGrad`.
pub const RECURRENT: &str = include_str!("../shaders/recurrent.wgsl");
/// The forward step kernels every cell shares (after the cell's WGSL).
pub const RECURRENT_FORWARD: &str = include_str!("../shaders/recurrent_forward.wgsl");
/// The backward step and initial-state kernels every cell shares.
pub const RECURRENT_BACKWARD: &str = include_str!("../shaders/recurrent_backward.wgsl");
/// The subgroup forward step kernel, appended to a cell's forward module.
pub const RECURRENT_FORWARD_SUBGROUP: &str = include_str!("../shaders/recurrent_forward_subgroup.wgsl");
/// The subgroup backward step kernel, appended to a cell's backward module.
pub const RECURRENT_BACKWARD_SUBGROUP: &str = include_str!("../shaders/recurrent_backward_subgroup.wgsl");

/// Which of a cell's two shader modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// recurrent_forward.wgsl with the cell.
    Forward,
    /// recurrent_backward.wgsl with the cell.
    Backward,
}

/// GEMM overrides and params struct, prepended to gemm.wgsl,
/// gemm_vec4.wgsl and gemm_subgroup.wgsl.
pub const GEMM_PARAMS: &str = include_str!("../shaders/gemm_params.wgsl");
/// The vec4 GEMMs' bindings, B fragment and C stores, prepended (after
/// [`GEMM_PARAMS`]) to gemm_vec4.wgsl and gemm_subgroup.wgsl.
pub const GEMM_VEC4_COMMON: &str = include_str!("../shaders/gemm_vec4_common.wgsl");
/// The vec4 GEMMs' B fragment from storage, prepended after
/// [`GEMM_VEC4_COMMON`].
pub const GEMM_B_STORAGE: &str = include_str!("../shaders/gemm_b_storage.wgsl");
/// The storage module's (never taken) continuation start: zeros, so no
/// pipeline compiles C loads it never runs. Prepended after
/// [`GEMM_B_STORAGE`] to `gemm_subgroup.wgsl`.
pub const GEMM_NO_CONTINUE: &str = include_str!("../shaders/gemm_no_continue.wgsl");
/// The B fragment from a uniform window, and the windowed GEMM's entries:
/// [`GEMM_B_STORAGE`]'s place in [`Shader::GemmSubgroupWindow`].
pub const GEMM_B_UNIFORM: &str = include_str!("../shaders/gemm_b_uniform.wgsl");

/// Every shader file of the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `shaders/gemm.wgsl`: general matrix multiply.
    Gemm,
    /// `shaders/gemm_vec4.wgsl`: GEMM reading vec4 fragments.
    GemmVec4,
    /// `shaders/gemm_subgroup.wgsl`: the vec4 GEMM with A shared across a
    /// subgroup (needs subgroups of [`crate::device::SUBGROUP_SIZE`]).
    GemmSubgroup,
    /// `shaders/gemm_subgroup.wgsl` reading op(B) from a 64 KiB uniform
    /// window (`shaders/gemm_b_uniform.wgsl`), one dispatch per window.
    GemmSubgroupWindow,
    /// `shaders/elementwise.wgsl`: add, mul, scale, fill, copy, axpy.
    Elementwise,
    /// `shaders/reduce.wgsl`: row and column sums.
    Reduce,
    /// `shaders/gather.wgsl`: gather rows by index.
    Gather,
    /// `shaders/dropout.wgsl`: hashed inverted dropout.
    Dropout,
    /// `shaders/embedding.wgsl`: deterministic embedding gradient.
    Embedding,
    /// `shaders/loss.wgsl`: cross-entropy and BCE with their metrics.
    Loss,
    /// `shaders/pooling.wgsl`: mean/max/last pooling over valid steps.
    Pooling,
    /// `shaders/optim.wgsl`: fused optimizer updates and clipping.
    Optim,
    /// `shaders/regularize.wgsl`: AWD-LSTM's activation penalties (AR, TAR).
    Regularize,
    /// `shaders/sample.wgsl`: temperature / top-k / top-p sampling.
    Sample,
    /// `shaders/pad.wgsl`: strided block copy with zero fill (GEMM padding).
    Pad,
    /// A cell's recurrent kernels: `shaders/cells/<cell>.wgsl` composed with
    /// recurrent_forward.wgsl or recurrent_backward.wgsl.
    Recurrent {
        /// The cell.
        cell: &'static crate::cells::Cell,
        /// Forward or backward module.
        pass: Pass,
        /// Rows per workgroup of the module's sequence kernels (its
        /// `SEQ_ROWS`; the step kernels ignore it). Launchers of step
        /// kernels use `SEQUENCE_ROWS` (src/rnn/gpu.rs).
        rows: u32,
    },
    /// A cell's subgroup step kernels: its forward or backward module
    /// (as [`Shader::Recurrent`] builds it) with
    /// `shaders/recurrent_{forward,backward}_subgroup.wgsl` appended. Needs
    /// subgroups of [`crate::device::SUBGROUP_SIZE`].
    RecurrentSubgroup {
        /// The cell.
        cell: &'static crate::cells::Cell,
        /// Forward or backward module.
        pass: Pass,
    },
}

impl Shader {
    /// Every shader file that is not a cell's, for validation tests.
    pub const PLAIN: [Shader; 15] = [
        Shader::Gemm,
        Shader::GemmVec4,
        Shader::GemmSubgroup,
        Shader::GemmSubgroupWindow,
        Shader::Elementwise,
        Shader::Reduce,
        Shader::Gather,
        Shader::Dropout,
        Shader::Embedding,
        Shader::Loss,
        Shader::Pooling,
        Shader::Optim,
        Shader::Regularize,
        Shader::Sample,
        Shader::Pad,
    ];

    /// Every shader module the crate builds: the plain ones, and both
    /// modules of every registered cell.
    pub fn all() -> Vec<Shader> {
        let mut all = Shader::PLAIN.to_vec();
        for cell in crate::cells::all_cells() {
            for rows in crate::rnn::gpu::SEQUENCE_ROW_CHOICES {
                all.push(Shader::Recurrent { cell, pass: Pass::Forward, rows });
                all.push(Shader::Recurrent { cell, pass: Pass::Backward, rows });
            }
            all.push(Shader::RecurrentSubgroup { cell, pass: Pass::Forward });
            all.push(Shader::RecurrentSubgroup { cell, pass: Pass::Backward });
        }
        all
    }

    /// File name under `shaders/` (for a cell's module, the shared step
    /// kernels' file; the label adds the cell).
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Gemm => "gemm.wgsl",
            Shader::GemmVec4 => "gemm_vec4.wgsl",
            Shader::GemmSubgroup | Shader::GemmSubgroupWindow => "gemm_subgroup.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Gather => "gather.wgsl",
            Shader::Dropout => "dropout.wgsl",
            Shader::Embedding => "embedding.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Pooling => "pooling.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Regularize => "regularize.wgsl",
            Shader::Sample => "sample.wgsl",
            Shader::Pad => "pad.wgsl",
            Shader::Recurrent { pass: Pass::Forward, .. } => "recurrent_forward.wgsl",
            Shader::Recurrent { pass: Pass::Backward, .. } => "recurrent_backward.wgsl",
            Shader::RecurrentSubgroup { pass: Pass::Forward, .. } => "recurrent_forward_subgroup.wgsl",
            Shader::RecurrentSubgroup { pass: Pass::Backward, .. } => "recurrent_backward_subgroup.wgsl",
        }
    }

    /// The module's label: the file name, and the cell for a cell's module.
    pub fn label(self) -> String {
        match self {
            Shader::Recurrent { cell, rows, .. } => format!("{} ({}, {rows} rows)", self.file_name(), cell.name),
            Shader::RecurrentSubgroup { cell, .. } => format!("{} ({})", self.file_name(), cell.name),
            Shader::GemmSubgroupWindow => format!("{} (B from a uniform window)", self.file_name()),
            _ => self.file_name().to_string(),
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Gemm => include_str!("../shaders/gemm.wgsl"),
            Shader::GemmVec4 => include_str!("../shaders/gemm_vec4.wgsl"),
            Shader::GemmSubgroup | Shader::GemmSubgroupWindow => include_str!("../shaders/gemm_subgroup.wgsl"),
            Shader::Elementwise => include_str!("../shaders/elementwise.wgsl"),
            Shader::Reduce => include_str!("../shaders/reduce.wgsl"),
            Shader::Gather => include_str!("../shaders/gather.wgsl"),
            Shader::Dropout => include_str!("../shaders/dropout.wgsl"),
            Shader::Embedding => include_str!("../shaders/embedding.wgsl"),
            Shader::Loss => include_str!("../shaders/loss.wgsl"),
            Shader::Pooling => include_str!("../shaders/pooling.wgsl"),
            Shader::Optim => include_str!("../shaders/optim.wgsl"),
            Shader::Regularize => include_str!("../shaders/regularize.wgsl"),
            Shader::Sample => include_str!("../shaders/sample.wgsl"),
            Shader::Pad => include_str!("../shaders/pad.wgsl"),
            Shader::Recurrent { pass: Pass::Forward, .. } => RECURRENT_FORWARD,
            Shader::Recurrent { pass: Pass::Backward, .. } => RECURRENT_BACKWARD,
            Shader::RecurrentSubgroup { pass: Pass::Forward, .. } => RECURRENT_FORWARD_SUBGROUP,
            Shader::RecurrentSubgroup { pass: Pass::Backward, .. } => RECURRENT_BACKWARD_SUBGROUP,
        }
    }

    /// The shared parts prepended to the file, in order, after the prelude
    /// and the constants: for a cell's module, recurrent.wgsl then the cell.
    pub fn includes(self) -> Vec<&'static str> {
        match self {
            Shader::Recurrent { cell, .. } => vec![RECURRENT, cell.wgsl],
            Shader::RecurrentSubgroup { cell, pass: Pass::Forward } => vec![RECURRENT, cell.wgsl, RECURRENT_FORWARD],
            Shader::RecurrentSubgroup { cell, pass: Pass::Backward } => vec![RECURRENT, cell.wgsl, RECURRENT_BACKWARD],
            Shader::Gemm => vec![GEMM_PARAMS],
            Shader::GemmVec4 => vec![GEMM_PARAMS, GEMM_VEC4_COMMON, GEMM_B_STORAGE],
            Shader::GemmSubgroup => vec![GEMM_PARAMS, GEMM_VEC4_COMMON, GEMM_B_STORAGE, GEMM_NO_CONTINUE],
            Shader::GemmSubgroupWindow => vec![GEMM_PARAMS, GEMM_VEC4_COMMON, GEMM_B_UNIFORM],
            _ => Vec::new(),
        }
    }

    /// Constants the shader shares with its Rust launcher, injected as WGSL
    /// `const`s so each has one source (the Rust constant). Tile sizes are
    /// consts, not overrides, because WGSL sizes function-scope arrays with
    /// const-expressions only.
    pub fn constants(self) -> Vec<(&'static str, u32)> {
        use crate::rnn::gpu::{vec4_groups, ROWS, UNITS};
        match self {
            Shader::Recurrent { cell, rows, .. } => vec![
                ("ROWS", ROWS),
                ("UNITS", UNITS),
                ("VEC4_GROUPS", vec4_groups(cell.gates)),
                ("GATES", cell.gates as u32),
                ("SEQ_ROWS", rows),
                ("W_WINDOW_VEC4S", (crate::rnn::gpu::W_WINDOW_BYTES / 16) as u32),
            ],
            Shader::RecurrentSubgroup { cell, pass } => {
                let mut constants = Shader::Recurrent { cell, pass, rows: crate::rnn::gpu::SEQUENCE_ROWS }.constants();
                constants.push(("SUBGROUP_SIZE", crate::device::SUBGROUP_SIZE));
                constants.push(("UNIFORM_ROWS", crate::rnn::gpu::UNIFORM_ROWS));
                constants.push(("UNIFORM_STATE_VEC4S", (crate::rnn::gpu::UNIFORM_STATE_BYTES / 16) as u32));
                constants.push(("SEQ_UNIFORM_HIDDEN", crate::rnn::gpu::SEQ_UNIFORM_HIDDEN));
                constants
            }
            Shader::Gemm => vec![("SM_BLOCK", crate::ops::gemm::SHARED_BLOCK)],
            Shader::GemmVec4 => vec![
                ("VEC4_TILE_ROWS", crate::ops::gemm::VEC4_TILE_ROWS),
                ("VEC4_TILE_COLS", crate::ops::gemm::VEC4_TILE_COLS),
            ],
            Shader::GemmSubgroup => vec![("SUBGROUP_SIZE", crate::device::SUBGROUP_SIZE)],
            Shader::GemmSubgroupWindow => vec![
                ("SUBGROUP_SIZE", crate::device::SUBGROUP_SIZE),
                ("B_WINDOW_VEC4S", (crate::ops::gemm::B_WINDOW_BYTES / 16) as u32),
            ],
            Shader::Optim => vec![
                ("CHUNK", crate::optim::CHUNK as u32),
                ("UPDATE_ELEMENTS", crate::optim::UPDATE_ELEMENTS),
                ("VEC4_UPDATE_GROUPS", crate::optim::VEC4_UPDATE_GROUPS),
            ],
            Shader::Sample => {
                vec![("WG", crate::ops::sample::SAMPLE_WG), ("MAX_BANNED", crate::ops::MAX_BANNED as u32)]
            }
            _ => Vec::new(),
        }
    }

    /// Complete WGSL source: the prelude, the constants shared with Rust,
    /// the includes, then the file.
    pub fn source(self) -> String {
        let constants: String = self
            .constants()
            .iter()
            .map(|(name, value)| format!("const {name}: u32 = {value}u; // from Rust\n"))
            .collect();
        let mut parts = vec![PRELUDE.to_string(), constants];
        parts.extend(self.includes().iter().map(|s| s.to_string()));
        parts.push(self.body().to_string());
        parts.join("\n")
    }

    /// Whether the module uses subgroup operations: it is built only on a
    /// device with subgroups of [`crate::device::SUBGROUP_SIZE`]
    /// ([`crate::DeviceInfo::subgroup_size`]), and naga validates it with
    /// the subgroup capability.
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Shader::GemmSubgroup | Shader::GemmSubgroupWindow | Shader::RecurrentSubgroup { .. })
    }

    /// The file's own text, without prelude or includes.
    pub fn file_text(self) -> &'static str {
        self.body()
    }

    /// The compiled module; `checked` keeps wgpu's runtime bounds checks
    /// (`WGRNN_CHECKED=1`).
    pub(crate) fn module(self, device: &wgpu::Device, checked: bool) -> wgpu::ShaderModule {
        let source = self.source();
        let label = self.label();
        let desc =
            wgpu::ShaderModuleDescriptor { label: Some(&label), source: wgpu::ShaderSource::Wgsl(source.into()) };
        if checked {
            return device.create_shader_module(desc);
        }
        // SAFETY: every kernel bounds-checks its own indices against sizes
        // the launcher validated on the host (tests cover ragged edges), so
        // naga's per-access clamping is pure overhead; on lavapipe it costs
        // a large part of GEMM throughput.
        unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
    }
}

/// How a kernel uses one storage binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`: read-only, and at most the device's
    /// `max_uniform_buffer_binding_size`. On lavapipe a uniform array read
    /// at a per-lane index is one hardware gather, where a storage load is
    /// a loop over the SIMD lanes (about 9× slower), so the kernels that
    /// read a small operand at per-lane addresses bind it this way.
    Uniform,
}

impl Access {
    pub(crate) fn read_only(self) -> bool {
        self != Access::ReadWrite
    }
}

/// One kernel: a shader entry point and its storage bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Shader file.
    pub shader: Shader,
    /// WGSL entry point; also the wgpu label and the Rust launcher's name.
    pub entry: &'static str,
    /// Storage bindings as (binding number, access); launchers pass buffers
    /// in this order.
    pub storage: &'static [(u32, Access)],
    /// A cell's own bindings, after `storage` (empty for other kernels).
    pub cell: &'static [crate::cells::CellBinding],
}

impl Kernel {
    /// Every storage binding as (binding number, access), in the order
    /// launchers pass buffers: `storage`, then the cell's.
    pub fn bindings(&self) -> impl Iterator<Item = (u32, Access)> + '_ {
        self.storage.iter().copied().chain(self.cell.iter().map(|c| (c.binding, c.access)))
    }

    /// Number of storage bindings.
    pub fn binding_count(&self) -> usize {
        self.storage.len() + self.cell.len()
    }
}

/// Cache key: a kernel plus its override constants (as bit patterns so the
/// key is `Eq + Hash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    kernel: Kernel,
    constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    pub(crate) fn new(kernel: Kernel, constants: &[(&'static str, f64)]) -> Self {
        Self { kernel, constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect() }
    }
}

/// Splits `n` workgroups over x and y so neither exceeds `max_per_dim`;
/// kernels recover the linear id as `wg.y * num_wg.x + wg.x`.
pub(crate) fn grid(n: u32, max_per_dim: u32) -> [u32; 3] {
    if n <= max_per_dim {
        [n, 1, 1]
    } else {
        let y = n.div_ceil(max_per_dim);
        [n.div_ceil(y), y, 1]
    }
}

/// Where a `#[repr(C)]` params struct must match its WGSL twin: the shader
/// that declares the struct, its WGSL name, and the Rust side's size and
/// member offsets (checked against naga's layouter by tests/shaders.rs).
#[derive(Debug, Clone, Copy)]
pub struct ParamsLayout {
    /// The Rust struct's name.
    pub rust_struct: &'static str,
    /// A shader whose source (includes and all) declares the WGSL struct.
    pub shader: Shader,
    /// The WGSL struct's name.
    pub wgsl_struct: &'static str,
    /// `size_of` the Rust struct in bytes.
    pub size: usize,
    /// (member name, byte offset) of every Rust member.
    pub members: &'static [(&'static str, usize)],
}

/// A uniform params struct that mirrors a WGSL struct; `Runtime::launch`
/// takes only these, so every params struct has a checked layout.
pub(crate) trait ShaderParams: bytemuck::Pod {
    /// Its layout, to compare with the WGSL declaration.
    const LAYOUT: ParamsLayout;
}

/// Declares a `#[repr(C)]` params struct and its [`ShaderParams`] layout:
/// `shader_params! { /// docs  #[derive(..)] pub(crate) struct Name mirrors
/// "WgslName" in ShaderVariant { fields } }` (or `in (shader expression)`).
/// The struct's own attributes (docs, derives) pass through.
macro_rules! shader_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident mirrors $wgsl:literal in $shader:ident {
            $($fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $crate::kernels::shader_params! {
            $(#[$meta])*
            $vis struct $name mirrors $wgsl in ($crate::kernels::Shader::$shader) {
                $($fvis $field: $ty),*
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident mirrors $wgsl:literal in ($shader:expr) {
            $($fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name { $($fvis $field: $ty),* }

        impl $crate::kernels::ShaderParams for $name {
            const LAYOUT: $crate::kernels::ParamsLayout = $crate::kernels::ParamsLayout {
                rust_struct: stringify!($name),
                shader: $shader,
                wgsl_struct: $wgsl,
                size: ::core::mem::size_of::<$name>(),
                members: &[$((stringify!($field), ::core::mem::offset_of!($name, $field))),*],
            };
        }
    };
}
pub(crate) use shader_params;

/// Every params struct of the crate with its layout. Each is declared with
/// `shader_params!`; tests/shaders.rs checks this list is complete (one
/// entry per `shader_params!` in src/) and compares each entry with naga's
/// layout of the WGSL struct.
#[doc(hidden)]
pub fn params_layouts() -> Vec<ParamsLayout> {
    fn of<P: ShaderParams>() -> ParamsLayout {
        P::LAYOUT
    }
    vec![
        of::<crate::ops::gemm::GemmParams>(),
        of::<crate::ops::elementwise::ElementwiseParams>(),
        of::<crate::ops::reduce::ReduceParams>(),
        of::<crate::ops::gather::GatherParams>(),
        of::<crate::ops::dropout::DropoutParams>(),
        of::<crate::ops::regularize::SquareSumParams>(),
        of::<crate::ops::pad::PadParams>(),
        of::<crate::ops::sample::SampleParams>(),
        of::<crate::ops::embedding::EmbeddingParams>(),
        of::<crate::ops::loss::LossParams>(),
        of::<crate::ops::pooling::PoolParams>(),
        of::<crate::optim::OptimParams>(),
        of::<crate::rnn::gpu::StepParams>(),
    ]
}
