//! The per-device runtime: pipeline cache, buffer pool and the command
//! recorder that batches every launch into one command buffer until a
//! readback or an explicit flush.
//!
//! Why one recorder: a training step is hundreds of small dispatches; each
//! submit or readback costs tens of microseconds (lavapipe) to several
//! (real GPUs). Launches append to one open compute pass; their uniform
//! parameters go to a CPU-side arena uploaded once per submit and bound with
//! dynamic offsets, so steady-state launches create no buffers at all.
//!
//! Buffer reuse rule: a buffer released while commands are still being
//! recorded is quarantined until that command buffer is submitted. Hence a
//! buffer handed out by the pool has no unsubmitted use, and
//! `queue.write_buffer` into it (which runs before the next submit's
//! commands) can never overwrite data an earlier recorded command reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::device::{DeviceInfo, DeviceOptions};
use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel, PipelineKey};
use crate::profile::{Family, FamilyTime, KernelTime, Profile, Timing};

/// Bytes reserved per dispatch in the uniform arena (≥ any params struct and
/// a multiple of every adapter's `min_uniform_buffer_offset_alignment`).
const PARAM_SLOT: u64 = 256;
/// Dispatches per submit before the arena is full and the recorder flushes.
const ARENA_SLOTS: u64 = 4096;
/// Bind groups kept before the cache is cleared (bounds memory held by
/// buffers that only a cached bind group still references).
const BIND_GROUP_CACHE_MAX: usize = 8192;

/// Usage of every pooled tensor buffer (uniform too: a kernel may bind a
/// small tensor as a uniform array, see [`Access::Uniform`]).
const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::UNIFORM)
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
/// Usage of readback staging buffers.
const STAGING_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

pub(crate) struct Runtime {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) info: DeviceInfo,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
    layouts: Mutex<HashMap<Kernel, Arc<wgpu::BindGroupLayout>>>,
    state: Mutex<State>,
    dispatches: AtomicU64,
    /// Storage buffers created (pool misses); steady-state loops add none.
    buffers_created: AtomicU64,
    /// Command buffers submitted.
    submissions: AtomicU64,
    /// GPU → host copies (each waits for the GPU).
    readbacks: AtomicU64,
    /// First GPU error no error scope caught (wgpu's default handler would
    /// panic); reported by the next flush or readback.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Most bytes the pool keeps cached for reuse; past it, free buffers are
    /// dropped (largest first) at the next release or submission.
    budget: Option<u64>,
    /// Most bytes lent and cached together; past it an allocation is an
    /// [`Error::OutOfMemory`].
    memory_limit: Option<u64>,
    /// Longest a wait for the GPU may take before it is an error, in
    /// nanoseconds (atomic: [`crate::Device::set_readback_timeout`]).
    readback_timeout_ns: AtomicU64,
    /// Why the device was lost, once it is: every later entry point fails
    /// with this instead of calling into a dead device.
    lost: Arc<Lost>,
    /// Whether the device was created with timestamp queries.
    timestamps: bool,
    /// The profile being recorded ([`crate::Device::start_profile`]).
    profiler: Mutex<Option<Profiler>>,
    /// Whether `profiler` holds a profile: launches read this flag, not the
    /// lock, when nobody profiles.
    profiling: AtomicBool,
    /// Which kernel variants run the recurrent layers.
    pub(crate) kernels: crate::tune::KernelChoices,
}

/// Why the device was lost, shared with wgpu's device-lost callback. The
/// flag keeps the check every entry point makes to one atomic load.
#[derive(Default)]
struct Lost {
    flag: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Lost {
    /// Records the first reason given.
    fn set(&self, reason: impl FnOnce() -> String) {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(reason);
        self.flag.store(true, Ordering::Release);
    }
}

/// The part of a storage buffer one tensor occupies, in bytes: what a
/// kernel binds for it ([`crate::Tensor`] views of one buffer bind only
/// their own range) and what reads and writes touch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferRange<'a> {
    /// The pooled buffer.
    pub(crate) buffer: &'a wgpu::Buffer,
    /// First byte (a multiple of the device's storage offset alignment).
    pub(crate) offset: u64,
    /// Bytes (a nonzero multiple of 4).
    pub(crate) size: u64,
}

impl BufferRange<'_> {
    /// The bind-group cache key of this range.
    fn key(&self) -> (wgpu::Buffer, u64, u64) {
        (self.buffer.clone(), self.offset, self.size)
    }
}

/// A cached bind group's key: the kernel and each binding's (buffer,
/// offset, size).
type BindGroupKey = (Kernel, Vec<(wgpu::Buffer, u64, u64)>);

/// One dispatch, ready to record into a compute pass.
struct Dispatch<'a> {
    kernel: Kernel,
    pipeline: &'a wgpu::ComputePipeline,
    bind_group: &'a wgpu::BindGroup,
    /// Its parameters' offset in the uniform arena.
    offset: u32,
    workgroups: [u32; 3],
}

impl Dispatch<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(self.pipeline);
        pass.set_bind_group(0, self.bind_group, &[self.offset]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}

/// Dispatches timed by one batch of timestamp queries before they are
/// resolved and read.
const PROFILE_BATCH: u32 = 1024;

/// A profile in the making: time and dispatches per family so far, and in
/// timestamp mode the queries not yet read.
struct Profiler {
    timing: Timing,
    totals: [(u64, Duration); Family::ALL.len()],
    /// Dispatches and time per (family, entry point), in first-seen order.
    kernels: Vec<KernelTime>,
    queries: Option<TimestampQueries>,
}

/// A query set with a begin and an end slot per dispatch, and the families
/// of the dispatches whose slots are written but not yet read.
struct TimestampQueries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    pending: Vec<(Family, &'static str)>,
}

impl Profiler {
    fn add(&mut self, family: Family, entry: &'static str, time: Duration) {
        let slot = &mut self.totals[Family::ALL.iter().position(|&f| f == family).unwrap_or(Family::ALL.len() - 1)];
        slot.0 += 1;
        slot.1 += time;
        match self.kernels.iter_mut().find(|k| k.family == family && k.entry == entry) {
            Some(k) => {
                k.dispatches += 1;
                k.time += time;
            }
            None => self.kernels.push(KernelTime { family, entry, dispatches: 1, time }),
        }
    }
}

pub(crate) struct CachedPipeline {
    pipeline: wgpu::ComputePipeline,
    layout: Arc<wgpu::BindGroupLayout>,
}

struct State {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// CPU copy of this batch's uniform parameters, `PARAM_SLOT` bytes each.
    params: Vec<u8>,
    arena: wgpu::Buffer,
    /// Storage buffers ready for reuse, keyed by their (bucketed) size.
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Released while the current encoder was open; freed on submit.
    quarantine: Vec<wgpu::Buffer>,
    staging_free: HashMap<u64, Vec<wgpu::Buffer>>,
    bind_groups: HashMap<BindGroupKey, wgpu::BindGroup>,
    /// Bytes of storage buffers lent to tensors.
    in_use: u64,
    /// Bytes of buffers the pool holds for reuse (free, quarantined, staging).
    cached: u64,
    /// Highest `in_use + cached` so far.
    peak: u64,
}

/// Device memory held by the runtime's buffer pool ([`crate::Device::memory_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes of buffers lent to live tensors.
    pub in_use: u64,
    /// Bytes of buffers kept for reuse (free, awaiting submission, readback staging).
    pub cached: u64,
    /// Highest `in_use + cached` since the device was created.
    pub peak: u64,
    /// The cap on `cached` ([`crate::DeviceOptions::pool_budget`]); `None` keeps everything.
    pub budget: Option<u64>,
}

/// A duration in whole nanoseconds, saturating (u64 nanoseconds last 584 years).
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Pool size class for a request of `bytes`: powers of two up to 1 MiB, then
/// whole MiB, so recurring shapes land in the same class.
fn bucket(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let bytes = bytes.max(16);
    if bytes <= MIB {
        bytes.next_power_of_two()
    } else {
        bytes.div_ceil(MIB) * MIB
    }
}

impl Runtime {
    pub(crate) fn new(
        device: wgpu::Device,
        queue: wgpu::Queue,
        limits: wgpu::Limits,
        info: DeviceInfo,
        options: &DeviceOptions,
        timestamps: bool,
    ) -> Self {
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Lost::default());
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| sink.set(|| format!("{reason:?}: {message}")));
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgrnn params arena"),
            size: PARAM_SLOT * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            device,
            queue,
            limits,
            info,
            pipelines: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            state: Mutex::new(State {
                encoder: None,
                pass: None,
                params: Vec::with_capacity((PARAM_SLOT * 64) as usize),
                arena,
                free: HashMap::new(),
                quarantine: Vec::new(),
                staging_free: HashMap::new(),
                bind_groups: HashMap::new(),
                in_use: 0,
                cached: 0,
                peak: 0,
            }),
            dispatches: AtomicU64::new(0),
            buffers_created: AtomicU64::new(0),
            submissions: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            uncaptured,
            budget: options.pool_budget,
            memory_limit: options.memory_limit,
            readback_timeout_ns: AtomicU64::new(duration_ns(options.readback_timeout)),
            lost,
            timestamps,
            profiler: Mutex::new(None),
            profiling: AtomicBool::new(false),
            kernels: crate::tune::KernelChoices::new(crate::tune::ForcedKernels {
                recurrent: options.recurrent_kernel,
                gemm: options.gemm_variant,
            }),
        }
    }

    /// Starts attributing and timing every dispatch (see [`crate::profile`]).
    pub(crate) fn start_profile(&self) -> Result<Timing> {
        // Work recorded before belongs to nobody's profile.
        self.synchronize()?;
        let timing = if self.timestamps { Timing::Timestamps } else { Timing::Isolated };
        let queries = self.timestamps.then(|| {
            let slots = u64::from(2 * PROFILE_BATCH);
            let buffer = |label, usage| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: slots * 8,
                    usage,
                    mapped_at_creation: false,
                })
            };
            TimestampQueries {
                set: self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgrnn profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * PROFILE_BATCH,
                }),
                resolve: buffer(
                    "wgrnn profile resolve",
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                ),
                staging: buffer("wgrnn profile staging", STAGING_USAGE),
                pending: Vec::new(),
            }
        });
        let profiler =
            Profiler { timing, totals: [(0, Duration::ZERO); Family::ALL.len()], kernels: Vec::new(), queries };
        *self.profiler.lock().unwrap_or_else(|p| p.into_inner()) = Some(profiler);
        self.profiling.store(true, Ordering::Release);
        Ok(timing)
    }

    /// Stops profiling and returns what was measured since the start.
    pub(crate) fn finish_profile(&self) -> Result<Profile> {
        let mut st = self.lock_state();
        let mut guard = self.profiler.lock().unwrap_or_else(|p| p.into_inner());
        let mut profiler = guard.take().ok_or_else(|| Error::Config("no profile was started".into()))?;
        self.profiling.store(false, Ordering::Release);
        self.read_timestamps(&mut st, &mut profiler)?;
        let families = Family::ALL
            .iter()
            .zip(profiler.totals)
            .map(|(&family, (dispatches, time))| FamilyTime { family, dispatches, time })
            .collect();
        let mut kernels = profiler.kernels;
        kernels.sort_by_key(|k| std::cmp::Reverse(k.time));
        Ok(Profile { timing: profiler.timing, families, kernels })
    }

    /// Resolves the pending timestamp queries and adds their durations.
    fn read_timestamps(&self, st: &mut State, profiler: &mut Profiler) -> Result<()> {
        let Some(q) = profiler.queries.as_mut() else { return Ok(()) };
        if q.pending.is_empty() {
            return Ok(());
        }
        let slots = 2 * q.pending.len() as u32;
        let bytes = u64::from(slots) * 8;
        let encoder = self.encoder_for_copy(st);
        encoder.resolve_query_set(&q.set, 0..slots, &q.resolve, 0);
        encoder.copy_buffer_to_buffer(&q.resolve, 0, &q.staging, 0, bytes);
        let index = self.submit_locked(st);
        let (tx, rx) = mpsc::channel();
        q.staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv_timeout(Duration::from_secs(1))
            .map_err(|_| Error::Gpu("the profile's timestamps were not mapped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping the profile's timestamps: {e}")))?;
        let ticks: Vec<u64> = {
            let view =
                q.staging.get_mapped_range(0..bytes).map_err(|e| Error::Gpu(format!("reading timestamps: {e}")))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        q.staging.unmap();
        let period = f64::from(self.queue.get_timestamp_period());
        let pending = std::mem::take(&mut q.pending);
        for ((family, entry), pair) in pending.into_iter().zip(ticks.chunks_exact(2)) {
            let ns = pair[1].saturating_sub(pair[0]) as f64 * period;
            profiler.add(family, entry, Duration::from_nanos(ns as u64));
        }
        Ok(())
    }

    /// Records one dispatch under the profiler: in its own timestamped pass,
    /// or submitted alone and waited for.
    fn profiled_dispatch(&self, st: &mut State, profiler: &mut Profiler, dispatch: &Dispatch<'_>) -> Result<()> {
        let kernel = dispatch.kernel;
        let family = crate::profile::current().or(Family::of_kernel(kernel)).unwrap_or(Family::Other);
        let full = profiler.queries.as_ref().is_some_and(|q| q.pending.len() as u32 >= PROFILE_BATCH);
        if full {
            self.read_timestamps(st, profiler)?;
        }
        if let Some(q) = profiler.queries.as_mut() {
            let slot = 2 * q.pending.len() as u32;
            let encoder = self.encoder_for_copy(st);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: Some(slot),
                    end_of_pass_write_index: Some(slot + 1),
                }),
            });
            dispatch.record(&mut pass);
            drop(pass);
            q.pending.push((family, kernel.entry));
            return Ok(());
        }
        dispatch.record(self.open_pass(st));
        let start = std::time::Instant::now();
        let index = self.submit_locked(st);
        self.wait(index)?;
        profiler.add(family, kernel.entry, start.elapsed());
        Ok(())
    }

    /// `Err` once the device is lost.
    pub(crate) fn check_alive(&self) -> Result<()> {
        if !self.lost.flag.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.lost.reason.lock().unwrap_or_else(|p| p.into_inner()).as_deref() {
            None => Ok(()),
            Some(reason) => Err(Error::Gpu(format!(
                "the device was lost ({reason}); its tensors are gone: make a new Device and reload the model \
                 from a checkpoint"
            ))),
        }
    }

    /// Sets the readback timeout.
    pub(crate) fn set_readback_timeout(&self, timeout: Duration) {
        self.readback_timeout_ns.store(duration_ns(timeout), Ordering::Relaxed);
    }

    /// Loses the device on purpose ([`crate::Device::destroy`]).
    pub(crate) fn destroy(&self) {
        self.lost.set(|| "Device::destroy was called".into());
        {
            // Recorded work can never run now; drop it with the pool.
            let mut st = self.lock_state();
            st.pass = None;
            st.encoder = None;
            st.params.clear();
            st.bind_groups.clear();
        }
        self.device.destroy();
    }

    /// The pool's memory figures.
    pub(crate) fn memory_stats(&self) -> MemoryStats {
        let st = self.lock_state();
        MemoryStats { in_use: st.in_use, cached: st.cached, peak: st.peak, budget: self.budget }
    }

    /// Drops free buffers, largest first, until the cache fits the budget;
    /// bind groups that name a dropped buffer go with it (they would keep
    /// its memory alive). Quarantined buffers wait for the submission.
    fn trim(&self, st: &mut State) {
        if let Some(budget) = self.budget {
            Self::trim_to(st, budget);
        }
    }

    /// Drops free buffers, largest first, until at most `budget` bytes are
    /// cached (or nothing more can be dropped).
    fn trim_to(st: &mut State, budget: u64) {
        while st.cached > budget {
            let Some(size) = st.free.iter().filter(|(_, v)| !v.is_empty()).map(|(&s, _)| s).max() else { break };
            let Some(buffer) = st.free.get_mut(&size).and_then(Vec::pop) else { break };
            st.cached -= size;
            // Dropped, not destroyed: work already recorded with it keeps it
            // alive until the GPU is done.
            st.bind_groups.retain(|(_, ranges), _| !ranges.iter().any(|(b, ..)| *b == buffer));
            drop(buffer);
        }
        if st.cached > budget {
            // Readback staging buffers are the last resort.
            for (size, buffers) in st.staging_free.drain() {
                st.cached -= size * buffers.len() as u64;
            }
        }
    }

    fn note_peak(st: &mut State) {
        st.peak = st.peak.max(st.in_use + st.cached);
    }

    /// Takes the error the uncaptured-error handler stored, if any.
    fn take_uncaptured(&self) -> Result<()> {
        match self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(message) => Err(Error::Gpu(message)),
            None => Ok(()),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while recording leaves the state usable (worst case an
        // unsubmitted encoder), so a poisoned lock is recovered, not fatal.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn dispatch_count(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    pub(crate) fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    pub(crate) fn readbacks(&self) -> u64 {
        self.readbacks.load(Ordering::Relaxed)
    }

    pub(crate) fn buffers_created(&self) -> u64 {
        self.buffers_created.load(Ordering::Relaxed)
    }

    /// Checks `bytes` against the device's buffer limits.
    pub(crate) fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        if bytes > limit {
            let limit_name = if self.limits.max_storage_buffer_binding_size <= self.limits.max_buffer_size {
                "max_storage_buffer_binding_size"
            } else {
                "max_buffer_size"
            };
            return Err(Error::TooLarge { what: what.to_string(), bytes, limit, limit_name });
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes`, from the pool when one is free.
    pub(crate) fn alloc(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_size(what, bytes)?;
        self.check_alive()?;
        let limit = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        // Rounding up must not push a legal request past the limit.
        let size = bucket(bytes).min(limit & !3).max(bytes.next_multiple_of(4));
        let mut st = self.lock_state();
        if let Some(buf) = st.free.get_mut(&size).and_then(Vec::pop) {
            // Reuse moves bytes from cached to lent: the total is unchanged.
            st.cached -= size;
            st.in_use += size;
            return Ok(buf);
        }
        if let Some(cap) = self.memory_limit {
            // Make room by releasing cached buffers before giving up; those
            // quarantined behind unsubmitted work are freed by submitting it.
            let room = |st: &State| cap.saturating_sub(st.in_use.saturating_add(size));
            let keep = room(&st);
            Self::trim_to(&mut st, keep);
            if st.in_use.saturating_add(st.cached).saturating_add(size) > cap && !st.quarantine.is_empty() {
                self.submit_locked(&mut st);
                let keep = room(&st);
                Self::trim_to(&mut st, keep);
            }
            if st.in_use.saturating_add(st.cached).saturating_add(size) > cap {
                return Err(Error::OutOfMemory {
                    what: what.to_string(),
                    bytes: size,
                    in_use: st.in_use,
                    limit: Some(cap),
                });
            }
        }
        st.in_use += size;
        Self::note_peak(&mut st);
        drop(st);
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgrnn tensor"),
            size,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        if pollster::block_on(scope.pop()).is_some() {
            let mut st = self.lock_state();
            st.in_use -= size;
            return Err(Error::OutOfMemory { what: what.to_string(), bytes: size, in_use: st.in_use, limit: None });
        }
        Ok(buffer)
    }

    /// Returns a buffer to the pool (see the reuse rule in the module doc).
    pub(crate) fn release(&self, buffer: wgpu::Buffer) {
        let mut st = self.lock_state();
        st.in_use -= buffer.size();
        st.cached += buffer.size();
        if st.encoder.is_some() {
            st.quarantine.push(buffer);
        } else {
            st.free.entry(buffer.size()).or_default().push(buffer);
            self.trim(&mut st);
        }
    }

    /// Hands a buffer back to the driver instead of the pool's cache: its
    /// contents moved elsewhere for good (parameters flattened into one
    /// buffer), so caching it would only hold memory no shape asks for
    /// again. Work already recorded with it keeps it alive until it ran.
    pub(crate) fn discard(&self, buffer: wgpu::Buffer) {
        let mut st = self.lock_state();
        st.in_use -= buffer.size();
        st.bind_groups.retain(|(_, ranges), _| !ranges.iter().any(|(b, ..)| *b == buffer));
        drop(buffer);
    }

    /// Writes host bytes at the start of `range`. Safe against
    /// recorded-but-unsubmitted work: if any is pending it is submitted
    /// first, so the write lands after it in queue order.
    pub(crate) fn write(&self, range: BufferRange<'_>, bytes: &[u8]) -> Result<()> {
        self.check_alive()?;
        debug_assert!(bytes.len() as u64 <= range.size, "a write past its range");
        let pending = self.lock_state().encoder.is_some();
        if pending {
            self.flush()?;
        }
        self.queue.write_buffer(range.buffer, range.offset, bytes);
        Ok(())
    }

    /// Writes host bytes into a range of a buffer fresh from the pool (no
    /// pending use, so no flush is needed).
    pub(crate) fn write_fresh(&self, range: BufferRange<'_>, bytes: &[u8]) {
        debug_assert!(bytes.len() as u64 <= range.size, "a write past its range");
        self.queue.write_buffer(range.buffer, range.offset, bytes);
    }

    /// Records a copy of `src` into `dst` (equal sizes; distinct buffers) in
    /// queue order with the dispatches around it.
    pub(crate) fn copy(&self, src: BufferRange<'_>, dst: BufferRange<'_>) -> Result<()> {
        self.check_alive()?;
        if src.size != dst.size || src.buffer == dst.buffer {
            return Err(Error::Shape {
                op: "copy",
                message: format!(
                    "a copy needs distinct buffers and equal sizes, got {} and {} bytes{}",
                    src.size,
                    dst.size,
                    if src.buffer == dst.buffer { " in one buffer" } else { "" }
                ),
            });
        }
        let mut st = self.lock_state();
        self.encoder_for_copy(&mut st).copy_buffer_to_buffer(src.buffer, src.offset, dst.buffer, dst.offset, src.size);
        Ok(())
    }

    /// Records zeroing `range` in queue order with the dispatches around it:
    /// a transfer command (a memset on a CPU driver), no dispatch.
    pub(crate) fn clear(&self, range: BufferRange<'_>) -> Result<()> {
        self.check_alive()?;
        let mut st = self.lock_state();
        self.encoder_for_copy(&mut st).clear_buffer(range.buffer, range.offset, Some(range.size));
        Ok(())
    }

    fn pipeline(&self, kernel: Kernel, constants: &[(&'static str, f64)]) -> Result<Arc<CachedPipeline>> {
        let key = PipelineKey::new(kernel, constants);
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let layout = self.bind_group_layout(kernel);
        let module = kernel.shader.module(&self.device, self.info.checked_shaders);
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("compiling kernel {}: {err}", kernel.entry)));
        }
        let cached = Arc::new(CachedPipeline { pipeline, layout });
        self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).insert(key, cached.clone());
        Ok(cached)
    }

    fn bind_group_layout(&self, kernel: Kernel) -> Arc<wgpu::BindGroupLayout> {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry(kernel)
            .or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (binding, access) in kernel.bindings() {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match access {
                                Access::Uniform => wgpu::BufferBindingType::Uniform,
                                _ => wgpu::BufferBindingType::Storage { read_only: access.read_only() },
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                Arc::new(self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(kernel.entry),
                    entries: &entries,
                }))
            })
            .clone()
    }

    /// Records one dispatch of `kernel` with uniform `params` (binding 0) and
    /// `buffers` bound to the storage bindings `kernel.bindings()` lists.
    pub(crate) fn launch<P: crate::kernels::ShaderParams>(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[BufferRange<'_>],
        workgroups: [u32; 3],
    ) -> Result<()> {
        debug_assert_eq!(buffers.len(), kernel.binding_count(), "{}: binding count", kernel.entry);
        self.check_alive()?;
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::TooLarge {
                what: format!("{} dispatch of {:?} workgroups", kernel.entry, workgroups),
                bytes: u64::from(*workgroups.iter().max().unwrap_or(&0)),
                limit: u64::from(max),
                limit_name: "max_compute_workgroups_per_dimension",
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let bytes = bytemuck::bytes_of(params);
        assert!(bytes.len() as u64 <= PARAM_SLOT, "params of {} exceed a slot", kernel.entry);
        let pipeline = self.pipeline(kernel, constants)?;
        let staged = self.stage_conflicting_reads(kernel, buffers)?;
        // What binding i binds: its range, or the copy staged for it.
        let bound = |i: usize| match staged.iter().find(|(k, _)| *k == i) {
            Some((_, copy)) => BufferRange { buffer: copy, offset: 0, size: buffers[i].size },
            None => buffers[i],
        };

        let mut st = self.lock_state();
        if st.params.len() as u64 >= PARAM_SLOT * ARENA_SLOTS {
            self.submit_locked(&mut st);
        }
        for (i, copy) in &staged {
            let range = buffers[*i];
            self.encoder_for_copy(&mut st).copy_buffer_to_buffer(range.buffer, range.offset, copy, 0, range.size);
        }
        let offset = st.params.len() as u32;
        st.params.extend_from_slice(bytes);
        st.params.resize(offset as usize + PARAM_SLOT as usize, 0);

        let key = (kernel, (0..buffers.len()).map(|i| bound(i).key()).collect::<Vec<_>>());
        if !st.bind_groups.contains_key(&key) {
            if st.bind_groups.len() >= BIND_GROUP_CACHE_MAX {
                st.bind_groups.clear();
            }
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &st.arena,
                    offset: 0,
                    size: wgpu::BufferSize::new(PARAM_SLOT),
                }),
            }];
            let ranges: Vec<BufferRange<'_>> = (0..buffers.len()).map(bound).collect();
            for ((binding, _), range) in kernel.bindings().zip(&ranges) {
                entries.push(wgpu::BindGroupEntry {
                    binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: range.buffer,
                        offset: range.offset,
                        size: wgpu::BufferSize::new(range.size),
                    }),
                });
            }
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry),
                layout: &pipeline.layout,
                entries: &entries,
            });
            st.bind_groups.insert(key.clone(), bg);
        }
        let bind_group = st.bind_groups[&key].clone();
        let dispatch = Dispatch { kernel, pipeline: &pipeline.pipeline, bind_group: &bind_group, offset, workgroups };
        let mut profiler = match self.profiling.load(Ordering::Acquire) {
            true => Some(self.profiler.lock().unwrap_or_else(|p| p.into_inner())),
            false => None,
        };
        match profiler.as_mut().and_then(|p| p.as_mut()) {
            Some(profiler) => self.profiled_dispatch(&mut st, profiler, &dispatch)?,
            None => dispatch.record(self.open_pass(&mut st)),
        }
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        drop(profiler);
        drop(st);
        // Quarantined until the dispatch that reads them is submitted.
        for (_, copy) in staged {
            self.release(copy);
        }
        Ok(())
    }

    /// A copy of each read-only binding whose buffer a read-write binding
    /// of the same dispatch also uses, with the binding's index (usually
    /// none, and then nothing is allocated). wgpu tracks usage per buffer,
    /// not per range, and rejects one buffer bound both ways in a dispatch
    /// even at disjoint ranges; views of one flat buffer (a model's
    /// parameters) meet that way when one parameter is copied or added into
    /// another. The copy holds what the read would have seen.
    fn stage_conflicting_reads(
        &self,
        kernel: Kernel,
        buffers: &[BufferRange<'_>],
    ) -> Result<Vec<(usize, wgpu::Buffer)>> {
        let written = |buffer: &wgpu::Buffer| {
            kernel.bindings().zip(buffers).any(|((_, access), r)| access == Access::ReadWrite && r.buffer == buffer)
        };
        let mut staged = Vec::new();
        for (i, ((_, access), range)) in kernel.bindings().zip(buffers).enumerate() {
            if access.read_only() && written(range.buffer) {
                match self.alloc(&format!("{} read-only binding staged", kernel.entry), range.size) {
                    Ok(copy) => staged.push((i, copy)),
                    Err(e) => {
                        // Back to the pool, or its bytes would stay counted as lent.
                        staged.into_iter().for_each(|(_, copy)| self.release(copy));
                        return Err(e);
                    }
                }
            }
        }
        Ok(staged)
    }

    fn open_pass<'s>(&self, st: &'s mut State) -> &'s mut wgpu::ComputePass<'static> {
        if st.pass.is_none() {
            let encoder = st.encoder.get_or_insert_with(|| {
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgrnn") })
            });
            let pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("wgrnn"), timestamp_writes: None })
                .forget_lifetime();
            st.pass = Some(pass);
        }
        st.pass.as_mut().expect("pass was just opened")
    }

    /// The open encoder with no compute pass active (for copies).
    fn encoder_for_copy<'s>(&self, st: &'s mut State) -> &'s mut wgpu::CommandEncoder {
        st.pass = None;
        st.encoder.get_or_insert_with(|| {
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgrnn") })
        })
    }

    fn submit_locked(&self, st: &mut State) -> Option<wgpu::SubmissionIndex> {
        st.pass = None;
        let encoder = st.encoder.take()?;
        if !st.params.is_empty() {
            self.queue.write_buffer(&st.arena, 0, &st.params);
            st.params.clear();
        }
        let index = self.queue.submit([encoder.finish()]);
        self.submissions.fetch_add(1, Ordering::Relaxed);
        for buf in std::mem::take(&mut st.quarantine) {
            st.free.entry(buf.size()).or_default().push(buf);
        }
        self.trim(st);
        Some(index)
    }

    /// Submits everything recorded so far; returns its submission index.
    pub(crate) fn flush(&self) -> Result<Option<wgpu::SubmissionIndex>> {
        self.check_alive()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let index = self.submit_locked(&mut self.lock_state());
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(err.to_string()));
        }
        self.take_uncaptured()?;
        Ok(index)
    }

    /// Submits and waits for the GPU to finish.
    pub(crate) fn synchronize(&self) -> Result<()> {
        let index = self.flush()?;
        self.wait(index)
    }

    /// Waits for submission `index` (everything, for `None`), at most the
    /// readback timeout.
    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let timeout = Duration::from_nanos(self.readback_timeout_ns.load(Ordering::Relaxed));
        let result = self.device.poll(wgpu::PollType::Wait { submission_index: index, timeout: Some(timeout) });
        // A device lost while waiting says so, rather than "timed out".
        self.check_alive()?;
        match result {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(Error::Gpu(format!(
                "the GPU did not finish within {timeout:?} (the readback timeout; raise it with \
                 DeviceOptions::with_readback_timeout or WGRNN_READBACK_TIMEOUT=SECONDS)"
            ))),
            Err(e) => Err(Error::Gpu(format!("waiting for the GPU: {e}"))),
        }
    }

    /// Copies the first `bytes` bytes of `src` back to the host. Submits the
    /// pending work, then waits only for that submission.
    pub(crate) fn read(&self, src: BufferRange<'_>, bytes: u64) -> Result<Vec<u8>> {
        debug_assert!(bytes <= src.size, "a read past its range");
        self.check_alive()?;
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        let size = bucket(bytes);
        let staging = {
            let mut st = self.lock_state();
            let reused = st.staging_free.get_mut(&size).and_then(Vec::pop);
            if reused.is_some() {
                st.cached -= size;
            }
            let staging = reused.unwrap_or_else(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgrnn readback"),
                    size,
                    usage: STAGING_USAGE,
                    mapped_at_creation: false,
                })
            });
            self.encoder_for_copy(&mut st).copy_buffer_to_buffer(src.buffer, src.offset, &staging, 0, bytes);
            staging
        };
        let index = self.flush()?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        // The mapping completes with the submission; the bound only guards
        // a driver that never calls back.
        let timeout = Duration::from_nanos(self.readback_timeout_ns.load(Ordering::Relaxed));
        rx.recv_timeout(timeout)
            .map_err(|_| Error::Gpu(format!("the readback buffer was not mapped within {timeout:?}")))?
            .map_err(|e| Error::Gpu(format!("mapping readback buffer: {e}")))?;
        let data =
            staging.get_mapped_range(0..bytes).map_err(|e| Error::Gpu(format!("reading mapped buffer: {e}")))?.to_vec();
        staging.unmap();
        let mut st = self.lock_state();
        st.staging_free.entry(size).or_default().push(staging);
        st.cached += size;
        Self::note_peak(&mut st);
        self.trim(&mut st);
        Ok(data)
    }
}
