//! Device selection: one call gives a ready adapter + device + queue, or a
//! clear [`Error`].
//!
//! Selection order: hardware adapters (discrete, integrated, virtual) before
//! software ones (lavapipe, WARP), and native backends (Vulkan, Metal, DX12)
//! before GL. Two environment variables override it:
//! `WGRNN_BACKEND=vulkan|metal|dx12|gl` and `WGRNN_ADAPTER=<name substring>`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// Backends wgrnn can run on, as named in `WGRNN_BACKEND`.
const BACKEND_NAMES: &[(&str, wgpu::Backend)] = &[
    ("vulkan", wgpu::Backend::Vulkan),
    ("metal", wgpu::Backend::Metal),
    ("dx12", wgpu::Backend::Dx12),
    ("gl", wgpu::Backend::Gl),
];

/// How long a readback waits for the GPU unless told otherwise: far longer
/// than any step on a software driver, short enough that a hung GPU ends in
/// an `Err` instead of a process that never returns.
pub const DEFAULT_READBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// How to pick an adapter and run it. [`DeviceOptions::from_env`] reads the
/// `WGRNN_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Only consider adapters of this backend; `None` = all of them.
    pub backend: Option<wgpu::Backend>,
    /// Only consider adapters whose name contains this (case-insensitive).
    pub adapter: Option<String>,
    /// Build shaders with wgpu's runtime bounds checks (`WGRNN_CHECKED=1`):
    /// an out-of-bounds access is clamped to the buffer instead of being
    /// undefined. Slower; CI runs the GPU tests once this way so a kernel
    /// that indexes past a buffer cannot pass on a lenient driver.
    pub checked: bool,
    /// Most bytes of free buffers the pool keeps for reuse
    /// (`WGRNN_POOL_BUDGET`, in bytes); past it, free buffers are released
    /// to the driver, largest first. `None` keeps every buffer (fastest when
    /// shapes repeat; memory grows with every new shape).
    pub pool_budget: Option<u64>,
    /// Most bytes of device memory the pool may hold, lent and cached
    /// together (`WGRNN_MEMORY_LIMIT`, in bytes). An allocation past it
    /// first releases cached buffers, then fails with
    /// [`Error::OutOfMemory`] naming the tensor. `None`: only the driver's
    /// own limits apply.
    pub memory_limit: Option<u64>,
    /// Longest a readback or [`Device::synchronize`] waits for the GPU
    /// before returning an [`Error::Gpu`] (`WGRNN_READBACK_TIMEOUT`, in
    /// seconds). Default [`DEFAULT_READBACK_TIMEOUT`].
    pub readback_timeout: Duration,
    /// Forces the recurrent kernel variant (`WGRNN_KERNEL=recurrent=step`,
    /// `recurrent=sequence` or `recurrent=sequence/ROWS`); `None` lets
    /// wgrnn choose. Every variant computes the same bits.
    pub recurrent_kernel: Option<crate::rnn::RecurrentKernel>,
    /// Forces the GEMM kernel variant (`WGRNN_KERNEL=gemm=register`,
    /// `vec4`, `shared`, `subgroup` or `subgroup_window`); `None` lets
    /// wgrnn choose ([`crate::ops::gemm_tune`]). Variants of different
    /// families ([`crate::ops::GemmVariant::same_bits`]) round differently
    /// in the last bits. A variant the adapter cannot run makes
    /// [`Device::with_options`] fail.
    pub gemm_variant: Option<crate::ops::GemmVariant>,
    /// Use subgroup operations where the adapter has them with a fixed
    /// subgroup size of [`SUBGROUP_SIZE`] (the subgroup kernels);
    /// `WGRNN_SUBGROUPS=0` turns them off. Default on. Either way the
    /// results are the same bits: the subgroup kernels only share loads.
    pub subgroups: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            backend: None,
            adapter: None,
            checked: false,
            pool_budget: None,
            memory_limit: None,
            readback_timeout: DEFAULT_READBACK_TIMEOUT,
            recurrent_kernel: None,
            gemm_variant: None,
            subgroups: true,
        }
    }
}

impl DeviceOptions {
    /// Options from `WGRNN_BACKEND`, `WGRNN_ADAPTER` and `WGRNN_CHECKED`; an
    /// unknown backend name or checked value is an error naming the
    /// accepted values.
    pub fn from_env() -> Result<Self> {
        let backend = std::env::var("WGRNN_BACKEND").ok();
        let adapter = std::env::var("WGRNN_ADAPTER").ok();
        let checked = std::env::var("WGRNN_CHECKED").ok();
        let budget = std::env::var("WGRNN_POOL_BUDGET").ok();
        let limit = std::env::var("WGRNN_MEMORY_LIMIT").ok();
        let timeout = std::env::var("WGRNN_READBACK_TIMEOUT").ok();
        let kernel = std::env::var("WGRNN_KERNEL").ok();
        let subgroups = std::env::var("WGRNN_SUBGROUPS").ok();
        let forced = match kernel.as_deref() {
            Some(value) => crate::tune::ForcedKernels::parse(value)?,
            None => crate::tune::ForcedKernels::default(),
        };
        Ok(Self {
            subgroups: parse_flag("WGRNN_SUBGROUPS", subgroups.as_deref(), true)?,
            recurrent_kernel: forced.recurrent,
            gemm_variant: forced.gemm,
            checked: parse_checked(checked.as_deref())?,
            pool_budget: parse_bytes("WGRNN_POOL_BUDGET", budget.as_deref())?,
            memory_limit: parse_bytes("WGRNN_MEMORY_LIMIT", limit.as_deref())?,
            readback_timeout: parse_timeout(timeout.as_deref())?,
            ..Self::parse(backend.as_deref(), adapter.as_deref())?
        })
    }

    /// Options from the string values the environment variables would hold.
    /// Empty strings mean "not set".
    pub fn parse(backend: Option<&str>, adapter: Option<&str>) -> Result<Self> {
        let backend = match backend.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => {
                let lower = name.to_ascii_lowercase();
                let found = BACKEND_NAMES.iter().find(|(n, _)| *n == lower);
                match found {
                    Some((_, b)) => Some(*b),
                    None => {
                        let accepted: Vec<&str> = BACKEND_NAMES.iter().map(|(n, _)| *n).collect();
                        return Err(Error::Config(format!(
                            "WGRNN_BACKEND={name:?} is not a backend wgrnn knows; accepted values: {}",
                            accepted.join(", ")
                        )));
                    }
                }
            }
        };
        let adapter = adapter.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(Self { backend, adapter, ..Self::default() })
    }

    /// These options with a cap on the pool's cached bytes.
    pub fn with_pool_budget(mut self, bytes: Option<u64>) -> Self {
        self.pool_budget = bytes;
        self
    }

    /// These options with a cap on all device memory the pool holds.
    pub fn with_memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// These options with another readback timeout.
    pub fn with_readback_timeout(mut self, timeout: Duration) -> Self {
        self.readback_timeout = timeout;
        self
    }

    /// These options with the recurrent kernel variant forced (`Some`) or
    /// left to wgrnn (`None`); see [`DeviceOptions::recurrent_kernel`].
    pub fn with_recurrent_kernel(mut self, kernel: Option<crate::rnn::RecurrentKernel>) -> Self {
        self.recurrent_kernel = kernel;
        self
    }

    /// These options with the GEMM variant forced (`Some`) or left to
    /// wgrnn (`None`); see [`DeviceOptions::gemm_variant`].
    pub fn with_gemm_variant(mut self, variant: Option<crate::ops::GemmVariant>) -> Self {
        self.gemm_variant = variant;
        self
    }

    /// These options with the subgroup kernels allowed or not; see
    /// [`DeviceOptions::subgroups`].
    pub fn with_subgroups(mut self, subgroups: bool) -> Self {
        self.subgroups = subgroups;
        self
    }

    /// These options with shader bounds checks on or off.
    pub fn with_checked(mut self, checked: bool) -> Self {
        self.checked = checked;
        self
    }

    /// Backend sets to try, in order: native APIs first, GL only when no
    /// native adapter can run compute (probing GL on headless Linux is slow
    /// and noisy, and GL is the weakest compute backend).
    fn backend_tiers(&self) -> Vec<wgpu::Backends> {
        match self.backend {
            Some(b) => vec![wgpu::Backends::from(b)],
            None => vec![wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12, wgpu::Backends::GL],
        }
    }
}

/// What the device runs on, for examples and benchmarks to print.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API: `vulkan`, `metal`, `dx12` or `gl`.
    pub backend: String,
    /// Kind of device: `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu`, `Other`.
    pub device_type: String,
    /// Driver name and version, e.g. `llvmpipe Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver: String,
    /// Whether this is a software rasterizer (lavapipe, WARP) running on the CPU.
    pub is_software: bool,
    /// Largest storage buffer binding the kernels may use, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Most invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Most storage buffers one kernel may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Whether shaders are built with runtime bounds checks
    /// ([`DeviceOptions::checked`]).
    pub checked_shaders: bool,
    /// The subgroup size, when the device was created with subgroup
    /// operations and every subgroup has this one size (lavapipe: 8 with
    /// 256-bit SIMD). The subgroup kernels (`gemm_subgroup`, the subgroup
    /// step kernels) are written for exactly [`SUBGROUP_SIZE`] lanes and
    /// run only where this is `Some(SUBGROUP_SIZE)`.
    pub subgroup_size: Option<u32>,
}

/// The subgroup size the subgroup kernels are written for: 8 lanes, the
/// SIMD width of lavapipe on AVX2 (also Intel's SIMD8). There one load
/// instruction is a loop over the 8 lanes, so the lanes load 8 different
/// vec4s of an operand they all need and share them with
/// `subgroupBroadcast` (a register move) instead of each loading all of it.
pub const SUBGROUP_SIZE: u32 = 8;

/// `WGRNN_POOL_BUDGET` / `WGRNN_MEMORY_LIMIT`: unset or empty = no cap;
/// else a number of bytes.
fn parse_bytes(var: &str, value: Option<&str>) -> Result<Option<u64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::Config(format!("{var}={v:?}: expected a number of bytes, e.g. 268435456"))),
    }
}

/// `WGRNN_READBACK_TIMEOUT`: unset or empty = the default; else seconds > 0
/// (fractions allowed).
fn parse_timeout(value: Option<&str>) -> Result<Duration> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_READBACK_TIMEOUT),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| Error::Config(format!("WGRNN_READBACK_TIMEOUT={v:?}: expected seconds > 0, e.g. 60"))),
    }
}

/// `WGRNN_CHECKED`: unset, empty, `0` or `false` = off; `1` or `true` = on.
fn parse_checked(value: Option<&str>) -> Result<bool> {
    parse_flag("WGRNN_CHECKED", value, false)
}

/// A boolean `WGRNN_*` variable: 1, true, 0 or false; unset or empty =
/// `default`.
fn parse_flag(var: &str, value: Option<&str>, default: bool) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(default),
        Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(Error::Config(format!("{var}={other:?}: accepted values are 1, true, 0, false"))),
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}, {}, driver {}] max storage binding {} MiB, max buffer {} MiB, {} invocations/workgroup",
            self.name,
            self.backend,
            self.device_type,
            self.driver,
            self.max_storage_buffer_binding_size >> 20,
            self.max_buffer_size >> 20,
            self.max_compute_invocations_per_workgroup
        )?;
        if let Some(size) = self.subgroup_size {
            write!(f, ", subgroups of {size}")?;
        }
        if self.checked_shaders {
            write!(f, ", bounds-checked shaders")?;
        }
        Ok(())
    }
}

/// A ready GPU: adapter, device, queue, and the runtime (kernel cache,
/// buffer pool, command recorder) shared by every tensor made on it.
/// Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Device {
    pub(crate) rt: Arc<Runtime>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device").field("info", &self.rt.info).finish()
    }
}

impl Device {
    /// The best adapter allowed by `WGRNN_BACKEND` / `WGRNN_ADAPTER`.
    pub fn new() -> Result<Self> {
        Self::with_options(&DeviceOptions::from_env()?)
    }

    /// The best adapter allowed by `options`.
    pub fn with_options(options: &DeviceOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(options))
    }

    async fn with_options_async(options: &DeviceOptions) -> Result<Self> {
        let mut found = Err(Error::NoAdapter { detail: String::new() });
        for backends in options.backend_tiers() {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = backends;
            let instance = wgpu::Instance::new(desc);
            found = pick_adapter(instance.enumerate_adapters(backends).await, options);
            if found.is_ok() {
                break;
            }
        }
        let adapter = found?;
        let info = adapter.get_info();

        // Ask for everything the adapter offers: the kernels bind many
        // storage buffers and large tensors need the biggest bindings.
        let limits = adapter.limits();
        // Timestamps only serve the step profile; ask for them where offered.
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut required_features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        // Subgroup operations serve the subgroup kernels, which need one
        // fixed subgroup size; ask for them only where the adapter has that.
        let subgroup_size = (adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size
            && info.subgroup_min_size == SUBGROUP_SIZE
            && options.subgroups)
            .then_some(SUBGROUP_SIZE);
        if subgroup_size.is_some() {
            required_features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgrnn"),
                required_features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;

        let limits = device.limits();
        let info = DeviceInfo {
            name: info.name.clone(),
            backend: info.backend.to_str().to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            checked_shaders: options.checked,
            subgroup_size,
        };
        let device = Self { rt: Arc::new(Runtime::new(device, queue, limits, info, options, timestamps)) };
        if let Some(variant) = options.gemm_variant {
            device.check_gemm_variant(variant)?;
        }
        Ok(device)
    }

    /// Adapter name, backend, device type, driver and the limits that matter.
    pub fn info(&self) -> &DeviceInfo {
        &self.rt.info
    }

    /// The device's wgpu limits (all the adapter offers).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.rt.limits
    }

    /// Submits everything recorded so far without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.rt.flush().map(|_| ())
    }

    /// Submits everything recorded so far and waits until the GPU is idle.
    pub fn synchronize(&self) -> Result<()> {
        self.rt.synchronize()
    }

    /// Number of compute dispatches recorded since the device was made;
    /// lets tests and benches count dispatches per operation.
    pub fn dispatch_count(&self) -> u64 {
        self.rt.dispatch_count()
    }

    /// Number of command buffers submitted since the device was made: a
    /// training step adds one, when its results are first read.
    pub fn submission_count(&self) -> u64 {
        self.rt.submissions()
    }

    /// Number of GPU → host copies (tensor reads) since the device was made;
    /// each one waits for the GPU, so a hot loop should add none per step.
    pub fn readback_count(&self) -> u64 {
        self.rt.readbacks()
    }

    /// Number of storage buffers created since the device was made (buffer
    /// pool misses); a training loop past its first step adds none.
    pub fn buffers_created(&self) -> u64 {
        self.rt.buffers_created()
    }

    /// Device memory held by the buffer pool: bytes lent to tensors, bytes
    /// cached for reuse, the peak of their sum, and the budget.
    pub fn memory_stats(&self) -> crate::runtime::MemoryStats {
        self.rt.memory_stats()
    }

    /// Starts a profile: from now on every dispatch is attributed to a
    /// kernel family and timed alone (see [`crate::profile`]), until
    /// [`Device::finish_profile`]. Pending work is finished first. Returns
    /// how the dispatches will be timed. Profiling is slow: it is for
    /// finding where time goes, not for measuring throughput.
    pub fn start_profile(&self) -> Result<crate::profile::Timing> {
        self.rt.start_profile()
    }

    /// Ends the profile and returns its table.
    pub fn finish_profile(&self) -> Result<crate::profile::Profile> {
        self.rt.finish_profile()
    }

    /// Releases the GPU device now, as a driver reset or an unplugged GPU
    /// would: every later call that touches it (allocating, launching,
    /// reading) returns [`Error::Gpu`] saying the device was lost. Tensors
    /// made on it can still be dropped. Lets a program (or a test) check
    /// that it survives losing its GPU.
    pub fn destroy(&self) {
        self.rt.destroy();
    }

    /// Changes the readback timeout ([`DeviceOptions::readback_timeout`])
    /// from now on, e.g. for one known-long evaluation.
    pub fn set_readback_timeout(&self, timeout: Duration) {
        self.rt.set_readback_timeout(timeout);
    }

    /// Forces the recurrent kernel variant from now on, as `WGRNN_KERNEL`
    /// does ([`DeviceOptions::recurrent_kernel`]); `None` lets wgrnn choose.
    /// A sequence variant a layer cannot use falls back to one it can.
    pub fn set_recurrent_kernel(&self, kernel: Option<crate::rnn::RecurrentKernel>) {
        self.rt.kernels.force_recurrent(kernel);
    }

    /// Forces the GEMM variant from now on, as `WGRNN_KERNEL=gemm=...`
    /// does ([`DeviceOptions::gemm_variant`]); `None` lets wgrnn choose.
    /// `Err` (and nothing changed) if this adapter cannot run `variant`.
    pub fn set_gemm_variant(&self, variant: Option<crate::ops::GemmVariant>) -> Result<()> {
        if let Some(variant) = variant {
            self.check_gemm_variant(variant)?;
        }
        self.rt.kernels.force_gemm(variant);
        Ok(())
    }

    /// `Err` saying why this adapter cannot run the GEMM `variant`.
    fn check_gemm_variant(&self, variant: crate::ops::GemmVariant) -> Result<()> {
        if variant.runs_on(self) {
            return Ok(());
        }
        Err(Error::Config(format!(
            "GEMM variant {variant} cannot run on {}: it needs subgroups of {} lanes{} (this adapter: {}, uniform bindings of {} bytes)",
            self.info().name,
            SUBGROUP_SIZE,
            if variant == crate::ops::GemmVariant::SubgroupWindow { " and 64 KiB uniform bindings" } else { "" },
            self.info().subgroup_size.map_or("no subgroups".to_string(), |s| format!("subgroups of {s}")),
            self.limits().max_uniform_buffer_binding_size,
        )))
    }

    /// `Err` if the device was lost (by [`Device::destroy`] or the driver).
    pub fn check_alive(&self) -> Result<()> {
        self.rt.check_alive()
    }

    /// `Err` naming `what` when a tensor of `shape` could not be made on
    /// this device (a zero or overflowing dimension, or more bytes than a
    /// storage buffer may hold), without allocating anything. Model
    /// constructors call it before filling host memory with initial values.
    pub fn check_tensor(&self, what: &str, shape: &[usize]) -> Result<()> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Empty { op: "Device::check_tensor", what: format!("{what} {shape:?}") });
        }
        // A product past u64 is as much too large as any other.
        let bytes = shape.iter().try_fold(4u64, |acc, &d| u64::try_from(d).ok().and_then(|d| acc.checked_mul(d)));
        self.rt.check_size(&format!("{what} {shape:?}"), bytes.unwrap_or(u64::MAX))
    }

    /// The underlying wgpu device, for callers that mix in their own work.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.rt.device
    }
}

/// Ranks adapters: hardware before software, native APIs before GL.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

fn pick_adapter(adapters: Vec<wgpu::Adapter>, options: &DeviceOptions) -> Result<wgpu::Adapter> {
    let all_names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({})", i.name, i.backend.to_str())
        })
        .collect();
    let compute_capable =
        |a: &wgpu::Adapter| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
    let mut candidates: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(compute_capable)
        .filter(|a| match &options.adapter {
            Some(want) => a.get_info().name.to_lowercase().contains(&want.to_lowercase()),
            None => true,
        })
        .collect();
    candidates.sort_by_key(|a| adapter_rank(&a.get_info()));
    if let Some(best) = candidates.into_iter().next() {
        return Ok(best);
    }
    let mut detail = String::new();
    if let Some(b) = options.backend {
        detail.push_str(&format!(" for WGRNN_BACKEND={}", b.to_str()));
    }
    if let Some(name) = &options.adapter {
        detail.push_str(&format!(" matching WGRNN_ADAPTER={name:?}"));
    }
    if !all_names.is_empty() {
        detail.push_str(&format!(" (adapters present: {})", all_names.join(", ")));
    }
    Err(Error::NoAdapter { detail })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_bytes, parse_checked, parse_flag, parse_timeout, DeviceOptions, DEFAULT_READBACK_TIMEOUT};

    #[test]
    fn byte_values() {
        let parse = |v| parse_bytes("WGRNN_POOL_BUDGET", v);
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some(" ")).unwrap(), None);
        assert_eq!(parse(Some("268435456")).unwrap(), Some(268_435_456));
        let err = parse(Some("256M")).unwrap_err().to_string();
        assert!(err.contains("WGRNN_POOL_BUDGET") && err.contains("number of bytes"), "{err}");
        let err = parse_bytes("WGRNN_MEMORY_LIMIT", Some("-1")).unwrap_err().to_string();
        assert!(err.contains("WGRNN_MEMORY_LIMIT"), "{err}");
    }

    #[test]
    fn timeout_values() {
        assert_eq!(parse_timeout(None).unwrap(), DEFAULT_READBACK_TIMEOUT);
        assert_eq!(parse_timeout(Some("")).unwrap(), DEFAULT_READBACK_TIMEOUT);
        assert_eq!(parse_timeout(Some("2.5")).unwrap(), Duration::from_millis(2500));
        for bad in ["0", "-3", "NaN", "inf", "ten"] {
            let err = parse_timeout(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("WGRNN_READBACK_TIMEOUT") && err.contains("seconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn checked_values() {
        for (v, want) in [(None, false), (Some(""), false), (Some("0"), false), (Some("False"), false)] {
            assert_eq!(parse_checked(v).unwrap(), want, "{v:?}");
        }
        assert!(parse_checked(Some(" 1 ")).unwrap());
        assert!(parse_checked(Some("TRUE")).unwrap());
        let err = parse_checked(Some("yes please")).unwrap_err().to_string();
        assert!(err.contains("WGRNN_CHECKED") && err.contains("accepted values"), "{err}");
    }

    /// `WGRNN_SUBGROUPS` defaults to on; only 0/false turn it off.
    #[test]
    fn subgroups_values() {
        for (v, want) in [(None, true), (Some(""), true), (Some("1"), true), (Some("0"), false), (Some("false"), false)]
        {
            assert_eq!(parse_flag("WGRNN_SUBGROUPS", v, true).unwrap(), want, "{v:?}");
        }
        let err = parse_flag("WGRNN_SUBGROUPS", Some("off"), true).unwrap_err().to_string();
        assert!(err.contains("WGRNN_SUBGROUPS=\"off\"") && err.contains("accepted values"), "{err}");
        assert!(DeviceOptions::default().subgroups);
        assert!(!DeviceOptions::default().with_subgroups(false).subgroups);
    }
}
