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

/// Recurrent-kernel header prepended (after the prelude) to the LSTM, GRU
/// and RNN shaders: step params, packed-batch description, index helpers.
pub const RECURRENT: &str = include_str!("../shaders/recurrent.wgsl");

/// Shared LSTM forward bindings and epilogue, prepended to lstm.wgsl and
/// lstm_vec4.wgsl.
pub const LSTM_STEP: &str = include_str!("../shaders/lstm_step.wgsl");
/// Shared LSTM backward bindings and epilogue, prepended to
/// lstm_backward.wgsl and lstm_backward_vec4.wgsl.
pub const LSTM_BACKWARD_STEP: &str = include_str!("../shaders/lstm_backward_step.wgsl");

/// GEMM overrides and params struct, prepended to gemm.wgsl and
/// gemm_vec4.wgsl.
pub const GEMM_PARAMS: &str = include_str!("../shaders/gemm_params.wgsl");

/// Every shader file of the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `shaders/gemm.wgsl`: general matrix multiply.
    Gemm,
    /// `shaders/gemm_vec4.wgsl`: GEMM reading vec4 fragments.
    GemmVec4,
    /// `shaders/elementwise.wgsl`: add, mul, scale, fill, copy, axpy.
    Elementwise,
    /// `shaders/reduce.wgsl`: row and column sums.
    Reduce,
    /// `shaders/gather.wgsl`: gather rows by index.
    Gather,
    /// `shaders/dropout.wgsl`: hashed inverted dropout.
    Dropout,
    /// `shaders/lstm.wgsl`: fused LSTM step forward.
    Lstm,
    /// `shaders/lstm_backward.wgsl`: fused LSTM step backward.
    LstmBackward,
    /// `shaders/lstm_vec4.wgsl`: LSTM step forward for H % 4 == 0.
    LstmVec4,
    /// `shaders/lstm_backward_vec4.wgsl`: LSTM step backward for H % 4 == 0.
    LstmBackwardVec4,
    /// `shaders/gru.wgsl`: fused GRU step forward.
    Gru,
    /// `shaders/gru_backward.wgsl`: fused GRU step backward.
    GruBackward,
    /// `shaders/rnn.wgsl`: fused Elman RNN step forward.
    Rnn,
    /// `shaders/rnn_backward.wgsl`: fused Elman RNN step backward.
    RnnBackward,
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
}

impl Shader {
    /// All shaders, for validation tests.
    pub const ALL: [Shader; 21] = [
        Shader::Gemm,
        Shader::GemmVec4,
        Shader::Elementwise,
        Shader::Reduce,
        Shader::Gather,
        Shader::Dropout,
        Shader::Lstm,
        Shader::LstmBackward,
        Shader::LstmVec4,
        Shader::LstmBackwardVec4,
        Shader::Gru,
        Shader::GruBackward,
        Shader::Rnn,
        Shader::RnnBackward,
        Shader::Embedding,
        Shader::Loss,
        Shader::Pooling,
        Shader::Optim,
        Shader::Regularize,
        Shader::Sample,
        Shader::Pad,
    ];

    /// File name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Gemm => "gemm.wgsl",
            Shader::GemmVec4 => "gemm_vec4.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Gather => "gather.wgsl",
            Shader::Dropout => "dropout.wgsl",
            Shader::Lstm => "lstm.wgsl",
            Shader::LstmBackward => "lstm_backward.wgsl",
            Shader::LstmVec4 => "lstm_vec4.wgsl",
            Shader::LstmBackwardVec4 => "lstm_backward_vec4.wgsl",
            Shader::Gru => "gru.wgsl",
            Shader::GruBackward => "gru_backward.wgsl",
            Shader::Rnn => "rnn.wgsl",
            Shader::RnnBackward => "rnn_backward.wgsl",
            Shader::Embedding => "embedding.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Pooling => "pooling.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Regularize => "regularize.wgsl",
            Shader::Sample => "sample.wgsl",
            Shader::Pad => "pad.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Gemm => include_str!("../shaders/gemm.wgsl"),
            Shader::GemmVec4 => include_str!("../shaders/gemm_vec4.wgsl"),
            Shader::Elementwise => include_str!("../shaders/elementwise.wgsl"),
            Shader::Reduce => include_str!("../shaders/reduce.wgsl"),
            Shader::Gather => include_str!("../shaders/gather.wgsl"),
            Shader::Dropout => include_str!("../shaders/dropout.wgsl"),
            Shader::Lstm => include_str!("../shaders/lstm.wgsl"),
            Shader::LstmBackward => include_str!("../shaders/lstm_backward.wgsl"),
            Shader::LstmVec4 => include_str!("../shaders/lstm_vec4.wgsl"),
            Shader::LstmBackwardVec4 => include_str!("../shaders/lstm_backward_vec4.wgsl"),
            Shader::Gru => include_str!("../shaders/gru.wgsl"),
            Shader::GruBackward => include_str!("../shaders/gru_backward.wgsl"),
            Shader::Rnn => include_str!("../shaders/rnn.wgsl"),
            Shader::RnnBackward => include_str!("../shaders/rnn_backward.wgsl"),
            Shader::Embedding => include_str!("../shaders/embedding.wgsl"),
            Shader::Loss => include_str!("../shaders/loss.wgsl"),
            Shader::Pooling => include_str!("../shaders/pooling.wgsl"),
            Shader::Optim => include_str!("../shaders/optim.wgsl"),
            Shader::Regularize => include_str!("../shaders/regularize.wgsl"),
            Shader::Sample => include_str!("../shaders/sample.wgsl"),
            Shader::Pad => include_str!("../shaders/pad.wgsl"),
        }
    }

    /// Whether the shader is a recurrent step kernel (gets [`RECURRENT`]).
    fn is_recurrent(self) -> bool {
        matches!(
            self,
            Shader::Lstm
                | Shader::LstmBackward
                | Shader::LstmVec4
                | Shader::LstmBackwardVec4
                | Shader::Gru
                | Shader::GruBackward
                | Shader::Rnn
                | Shader::RnnBackward
        )
    }

    /// The shared parts prepended to the file, in order (the prelude first).
    pub fn includes(self) -> Vec<&'static str> {
        let mut parts = vec![PRELUDE];
        if self.is_recurrent() {
            parts.push(RECURRENT);
        }
        match self {
            Shader::Lstm | Shader::LstmVec4 => parts.push(LSTM_STEP),
            Shader::LstmBackward | Shader::LstmBackwardVec4 => parts.push(LSTM_BACKWARD_STEP),
            Shader::Gemm | Shader::GemmVec4 => parts.push(GEMM_PARAMS),
            _ => {}
        }
        parts
    }

    /// Complete WGSL source: the includes, then the file.
    pub fn source(self) -> String {
        let mut source = self.includes().join("\n");
        source.push('\n');
        source.push_str(self.body());
        source
    }

    /// The file's own text, without prelude or header.
    pub fn file_text(self) -> &'static str {
        self.body()
    }

    pub(crate) fn module(self, device: &wgpu::Device) -> wgpu::ShaderModule {
        let source = self.source();
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(self.file_name()),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
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
}

impl Access {
    pub(crate) fn read_only(self) -> bool {
        self == Access::Read
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
