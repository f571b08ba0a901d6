//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in wgrnn, each variant with a message that
/// says what was wrong and, where there is one, how to fix it.
#[derive(Debug, Error)]
pub enum Error {
    /// No usable adapter (GPU or software rasterizer) was found.
    #[error("no GPU adapter found{detail}. wgrnn needs a Vulkan, Metal, DX12 or GL driver; on headless Linux install the software Vulkan driver with `apt-get install mesa-vulkan-drivers`")]
    NoAdapter {
        /// Extra context (which backends or adapter filter were tried).
        detail: String,
    },

    /// A configuration value (environment variable or option) was not understood.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter `{adapter}`: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// The driver's reason.
        message: String,
    },

    /// Tensor shapes do not fit the operation.
    #[error("shape mismatch in {op}: {message}")]
    Shape {
        /// The operation that rejected its arguments.
        op: &'static str,
        /// What was wrong.
        message: String,
    },

    /// A tensor or argument is empty where the operation needs elements.
    #[error("{op}: {what} is empty (zero elements); every dimension must be at least 1")]
    Empty {
        /// The operation.
        op: &'static str,
        /// Which argument.
        what: String,
    },

    /// A value is outside the range the operation accepts (an index ≥ the
    /// number of rows, say).
    #[error("{op}: {message}")]
    OutOfRange {
        /// The operation.
        op: &'static str,
        /// What was out of range.
        message: String,
    },

    /// A buffer would exceed what the device allows.
    #[error("{what} needs {bytes} bytes but the device allows at most {limit} bytes ({limit_name})")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Requested size.
        bytes: u64,
        /// The device limit.
        limit: u64,
        /// Which wgpu limit it is.
        limit_name: &'static str,
    },

    /// An allocation would take the pool past its memory limit
    /// ([`crate::DeviceOptions::memory_limit`]), or the driver ran out of
    /// memory creating the buffer.
    #[error("out of device memory allocating {what}: {bytes} bytes requested with {in_use} bytes in use{}", limit.map(|l| format!(" and a limit of {l} bytes (WGRNN_MEMORY_LIMIT)")).unwrap_or_default())]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Requested size.
        bytes: u64,
        /// Bytes lent to live tensors at the time.
        in_use: u64,
        /// The configured limit, if that is what refused it.
        limit: Option<u64>,
    },

    /// A dtype did not match what the operation needs.
    #[error("{op}: expected a {expected} tensor, got {got}")]
    DType {
        /// The operation.
        op: &'static str,
        /// Expected dtype name.
        expected: &'static str,
        /// Actual dtype name.
        got: &'static str,
    },

    /// A file (checkpoint, safetensors) is corrupt, truncated or does not
    /// hold what was asked for.
    #[error("{0}")]
    Format(String),

    /// Bad input data: a missing or unreadable file, malformed CSV, a
    /// missing column, an unknown label, an empty text. Names the file and,
    /// where there is one, the 1-based line the record starts on.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Data {
        /// The file (as the caller named it).
        file: String,
        /// 1-based line of the offending record.
        line: Option<u64>,
        /// What was wrong.
        message: String,
    },

    /// A value that must be finite is not (a diverged loss, say).
    #[error("{0}")]
    NonFinite(String),

    /// The GPU reported an error (validation, out of memory, lost device,
    /// failed buffer mapping).
    #[error("GPU error: {0}")]
    Gpu(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
