//! GPU tensors: a range of a pooled storage buffer, a shape and a dtype.
//!
//! Tensors are row-major and contiguous. Cloning a tensor shares its buffer
//! (like `torch.Tensor` aliasing); the buffer goes back to the device's pool
//! when the last clone is dropped, so a training loop allocates nothing
//! after its first step.
//!
//! Most tensors own their buffer from its start. A *view* starts at an
//! element offset into a larger buffer shared with other views: a model's
//! parameters live as views of one flat buffer
//! ([`crate::nn::flatten_parameters`]), so the optimizer updates all of them
//! in one dispatch. Kernels bind exactly a tensor's range, so every kernel
//! works on views unchanged; reads, writes and aliasing checks use the
//! range too.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::runtime::{BufferRange, Runtime};

/// Elements each view of a flat buffer is aligned to (1 KiB): at least any
/// device's `min_storage_buffer_offset_alignment` (WebGPU caps it at 256
/// bytes), and equal to the optimizer's clipping chunk, so per-chunk sums
/// over a flat range are those of each tensor on its own.
pub(crate) const VIEW_ALIGN: usize = 256;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (token ids, indices).
    U32,
    /// 32-bit signed integer.
    I32,
}

impl DType {
    /// Lower-case name, as in error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::U32 => "u32",
            DType::I32 => "i32",
        }
    }
}

/// A buffer on loan from the pool; returned to it on drop.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    rt: Arc<Runtime>,
    /// Elements asked for (the pool may hand out a larger buffer): views
    /// stay inside these.
    len: usize,
    /// Set when the contents moved elsewhere for good: drop hands the
    /// buffer back to the driver rather than to the pool's cache.
    discard: AtomicBool,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            if self.discard.load(Ordering::Relaxed) {
                self.rt.discard(b);
            } else {
                self.rt.release(b);
            }
        }
    }
}

/// A row-major tensor on the GPU.
#[derive(Clone)]
pub struct Tensor {
    device: Device,
    buf: Arc<PooledBuffer>,
    /// First element in `buf` (0 unless this is a view).
    offset: usize,
    shape: Vec<usize>,
    dtype: DType,
    /// Largest value, when the data came from the host as integers; lets
    /// index-consuming ops reject out-of-range ids before any GPU work.
    max_index: Option<u32>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Tensor");
        d.field("shape", &self.shape).field("dtype", &self.dtype);
        if self.offset != 0 {
            d.field("offset", &self.offset);
        }
        d.finish()
    }
}

/// Number of elements of `shape`, checking that no dimension is zero.
fn numel_checked(op: &'static str, shape: &[usize]) -> Result<usize> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::Empty { op, what: format!("shape {shape:?}") });
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape { op, message: format!("shape {shape:?} overflows usize") })
}

impl Tensor {
    /// Uninitialised tensor for a kernel to fill completely.
    pub(crate) fn uninit(device: &Device, shape: &[usize], dtype: DType) -> Result<Self> {
        let numel = numel_checked("Tensor::uninit", shape)?;
        let bytes = (numel as u64).saturating_mul(4);
        let buffer = device.rt.alloc(&format!("tensor of shape {shape:?}"), bytes)?;
        let buf =
            PooledBuffer { buffer: Some(buffer), rt: device.rt.clone(), len: numel, discard: AtomicBool::new(false) };
        Ok(Self {
            device: device.clone(),
            buf: Arc::new(buf),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            max_index: None,
        })
    }

    fn from_bytes(device: &Device, shape: &[usize], dtype: DType, data_len: usize, bytes: &[u8]) -> Result<Self> {
        let numel = numel_checked("Tensor upload", shape)?;
        if numel != data_len {
            return Err(Error::Shape {
                op: "Tensor upload",
                message: format!("shape {shape:?} holds {numel} elements but the data has {data_len}"),
            });
        }
        let t = Self::uninit(device, shape, dtype)?;
        device.rt.write_fresh(t.buffer(), bytes);
        Ok(t)
    }

    /// Uploads f32 data with the given shape.
    pub fn from_slice(device: &Device, data: &[f32], shape: &[usize]) -> Result<Self> {
        Self::from_bytes(device, shape, DType::F32, data.len(), bytemuck::cast_slice(data))
    }

    /// Uploads u32 data (indices, token ids) with the given shape.
    pub fn from_u32(device: &Device, data: &[u32], shape: &[usize]) -> Result<Self> {
        let mut t = Self::from_bytes(device, shape, DType::U32, data.len(), bytemuck::cast_slice(data))?;
        t.max_index = data.iter().copied().max();
        Ok(t)
    }

    /// Uploads i32 data with the given shape.
    pub fn from_i32(device: &Device, data: &[i32], shape: &[usize]) -> Result<Self> {
        let mut t = Self::from_bytes(device, shape, DType::I32, data.len(), bytemuck::cast_slice(data))?;
        // Negative ids are out of range for every consumer: map them to u32::MAX.
        t.max_index = data.iter().map(|&v| u32::try_from(v).unwrap_or(u32::MAX)).max();
        Ok(t)
    }

    /// A tensor of zeros.
    pub fn zeros(device: &Device, shape: &[usize]) -> Result<Self> {
        Self::full(device, shape, 0.0)
    }

    /// A tensor filled with `value` (recorded on the GPU, no upload).
    pub fn full(device: &Device, shape: &[usize], value: f32) -> Result<Self> {
        let t = Self::uninit(device, shape, DType::F32)?;
        crate::ops::elementwise_fill(&t, value)?;
        Ok(t)
    }

    /// Overwrites the contents with host data of the same length.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        self.expect_dtype("Tensor::write", DType::F32)?;
        if data.len() != self.numel() {
            return Err(Error::Shape {
                op: "Tensor::write",
                message: format!("tensor has {} elements, data has {}", self.numel(), data.len()),
            });
        }
        self.device.rt.write(self.buffer(), bytemuck::cast_slice(data))
    }

    fn read_bytes(&self) -> Result<Vec<u8>> {
        self.device.rt.read(self.buffer(), self.numel() as u64 * 4)
    }

    /// Downloads an f32 tensor (submits pending work and waits for it).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.expect_dtype("Tensor::to_vec", DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes()?))
    }

    /// Downloads a u32 tensor.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.expect_dtype("Tensor::to_vec_u32", DType::U32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes()?))
    }

    /// Downloads an i32 tensor.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        self.expect_dtype("Tensor::to_vec_i32", DType::I32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes()?))
    }

    /// Same data, new shape with the same number of elements (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let numel = numel_checked("Tensor::reshape", shape)?;
        if numel != self.numel() {
            return Err(Error::Shape {
                op: "Tensor::reshape",
                message: format!("cannot view {:?} ({} elements) as {shape:?}", self.shape, self.numel()),
            });
        }
        let mut t = self.clone();
        t.shape = shape.to_vec();
        Ok(t)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device this tensor lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Largest value of an integer tensor uploaded from the host, if known.
    pub fn max_index(&self) -> Option<u32> {
        self.max_index
    }

    /// The range of its buffer this tensor occupies: what kernels bind.
    pub(crate) fn buffer(&self) -> BufferRange<'_> {
        BufferRange { buffer: self.raw_buffer(), offset: self.offset as u64 * 4, size: self.numel() as u64 * 4 }
    }

    /// The first `bytes` of the underlying buffer, which must hold them:
    /// what a kernel binds as a fixed-size uniform array covering a smaller
    /// tensor at the buffer's start (the rest is never read).
    pub(crate) fn buffer_prefix(&self, bytes: u64) -> Result<BufferRange<'_>> {
        if self.offset != 0 {
            return Err(Error::Shape {
                op: "Tensor::buffer_prefix",
                message: format!("the tensor starts at element {}, not at its buffer's start", self.offset),
            });
        }
        self.buffer_window(0, bytes)
    }

    /// `bytes` of the underlying buffer from element `start` (counted from
    /// the buffer's start), which must lie inside what it was allocated for.
    pub(crate) fn buffer_window(&self, start: usize, bytes: u64) -> Result<BufferRange<'_>> {
        let offset = start as u64 * 4;
        if offset.saturating_add(bytes) > self.buf.len as u64 * 4 {
            return Err(Error::Shape {
                op: "Tensor::buffer_window",
                message: format!("{bytes} bytes from element {start} of a buffer of {} elements", self.buf.len),
            });
        }
        Ok(BufferRange { buffer: self.raw_buffer(), offset, size: bytes })
    }

    /// The whole underlying buffer, shared with every other view of it.
    /// Private: everything outside binds, reads and writes ranges.
    fn raw_buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer.as_ref().expect("buffer is only taken on drop")
    }

    /// First element of this tensor in its buffer (0 unless it is a view).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// A view of `shape` starting at element `start` of this tensor's
    /// buffer (counted from the buffer's start, not this tensor's), sharing
    /// the buffer. It must lie inside what the buffer was allocated for and
    /// start at an offset the device can bind.
    pub(crate) fn storage_view(&self, start: usize, shape: &[usize]) -> Result<Self> {
        const OP: &str = "Tensor::storage_view";
        let numel = numel_checked(OP, shape)?;
        let end = start.checked_add(numel);
        if end.is_none_or(|end| end > self.buf.len) {
            return Err(Error::Shape {
                op: OP,
                message: format!(
                    "a view of {shape:?} at element {start} does not fit a buffer of {} elements",
                    self.buf.len
                ),
            });
        }
        let align = u64::from(self.device.rt.limits.min_storage_buffer_offset_alignment).max(4);
        if !(start as u64 * 4).is_multiple_of(align) {
            return Err(Error::Shape {
                op: OP,
                message: format!("element {start} is not on the device's {align}-byte storage offset alignment"),
            });
        }
        Ok(Self { offset: start, shape: shape.to_vec(), max_index: None, ..self.clone() })
    }

    /// Zero-filled f32 views of one new buffer of `len` elements, view `k`
    /// of `shapes[k]` at element `offsets[k]` (see
    /// [`Tensor::storage_view`]); the elements no view covers are zero too.
    pub(crate) fn zeros_views(
        device: &Device,
        len: usize,
        offsets: &[usize],
        shapes: &[&[usize]],
    ) -> Result<Vec<Self>> {
        debug_assert_eq!(offsets.len(), shapes.len());
        let flat = Self::zeros(device, &[len])?;
        offsets.iter().zip(shapes).map(|(&start, shape)| flat.storage_view(start, shape)).collect()
    }

    /// Elements the buffer behind this tensor was allocated for (its own
    /// `numel` unless it is a view).
    pub(crate) fn storage_len(&self) -> usize {
        self.buf.len
    }

    /// When the last tensor sharing this buffer drops, the buffer goes back
    /// to the driver instead of the pool's cache: its contents were moved
    /// for good and no other tensor will ask for that size again.
    pub(crate) fn discard_storage_on_drop(&self) {
        self.buf.discard.store(true, Ordering::Relaxed);
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType { op, expected: dtype.name(), got: self.dtype.name() });
        }
        Ok(())
    }

    /// Whether two tensors live in one buffer (clones, reshapes and views
    /// of one flat buffer do), overlapping or not.
    pub(crate) fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Whether two tensors share elements: one buffer and intersecting
    /// ranges. Distinct views of one flat buffer do not overlap.
    pub(crate) fn overlaps(&self, other: &Tensor) -> bool {
        self.same_storage(other)
            && self.offset < other.offset + other.numel()
            && other.offset < self.offset + self.numel()
    }

    /// Whether two tensors live on the same device.
    pub(crate) fn same_device(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.device.rt, &other.device.rt)
    }
}
