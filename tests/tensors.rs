//! Tensors, the buffer pool, device selection and bad input.

mod common;

use common::device;
use wgrnn::{DType, DeviceOptions, Error, Tensor};

#[test]
fn round_trips_every_dtype() {
    let dev = device();
    let f = [1.5f32, -0.0, f32::MAX, f32::MIN_POSITIVE, 3.25];
    assert_eq!(Tensor::from_slice(dev, &f, &[5]).unwrap().to_vec().unwrap(), f);
    let u = [0u32, 1, u32::MAX, 12345];
    let tu = Tensor::from_u32(dev, &u, &[2, 2]).unwrap();
    assert_eq!((tu.dtype(), tu.max_index()), (DType::U32, Some(u32::MAX)));
    assert_eq!(tu.to_vec_u32().unwrap(), u);
    let i = [-7i32, 0, i32::MAX];
    assert_eq!(Tensor::from_i32(dev, &i, &[3]).unwrap().to_vec_i32().unwrap(), i);
}

#[test]
fn write_reshape_and_dtype_checks() {
    let dev = device();
    let t = Tensor::zeros(dev, &[2, 3]).unwrap();
    t.write(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let r = t.reshape(&[3, 2]).unwrap();
    assert_eq!(r.shape(), [3, 2]);
    assert_eq!(r.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(matches!(t.reshape(&[4, 2]), Err(Error::Shape { .. })));
    assert!(matches!(t.write(&[1.0]), Err(Error::Shape { .. })));
    assert!(matches!(t.to_vec_u32(), Err(Error::DType { .. })));
}

/// A write into a tensor that recorded (unsubmitted) GPU work still reads
/// must not overtake that work.
#[test]
fn write_after_recorded_read_keeps_order() {
    let dev = device();
    let src = Tensor::from_slice(dev, &[1.0, 2.0], &[2]).unwrap();
    let dst = Tensor::zeros(dev, &[2]).unwrap();
    wgrnn::ops::elementwise_copy(&src, &dst).unwrap();
    src.write(&[9.0, 9.0]).unwrap();
    assert_eq!(dst.to_vec().unwrap(), [1.0, 2.0]);
    assert_eq!(src.to_vec().unwrap(), [9.0, 9.0]);
}

/// A buffer released while work that reads it is still unsubmitted must
/// not be handed to a new upload before that work runs.
#[test]
fn pool_does_not_reuse_buffers_with_pending_reads() {
    let dev = device();
    let dst = Tensor::zeros(dev, &[3]).unwrap();
    {
        let src = Tensor::from_slice(dev, &[1.0, 2.0, 3.0], &[3]).unwrap();
        wgrnn::ops::elementwise_copy(&src, &dst).unwrap();
    } // src dropped: its buffer is quarantined until the copy is submitted
    let other = Tensor::from_slice(dev, &[7.0, 7.0, 7.0], &[3]).unwrap();
    assert_eq!(dst.to_vec().unwrap(), [1.0, 2.0, 3.0]);
    assert_eq!(other.to_vec().unwrap(), [7.0, 7.0, 7.0]);
}

#[test]
fn empty_and_mismatched_shapes_are_errors() {
    let dev = device();
    assert!(matches!(Tensor::zeros(dev, &[0, 3]), Err(Error::Empty { .. })));
    assert!(matches!(Tensor::zeros(dev, &[]), Err(Error::Empty { .. })));
    assert!(matches!(Tensor::from_slice(dev, &[], &[0]), Err(Error::Empty { .. })));
    let err = Tensor::from_slice(dev, &[1.0, 2.0], &[3]).unwrap_err();
    assert!(err.to_string().contains("holds 3 elements but the data has 2"), "{err}");
}

#[test]
fn tensors_past_the_device_limit_are_errors() {
    let dev = device();
    let limit = dev.info().max_storage_buffer_binding_size.min(dev.info().max_buffer_size);
    let too_many = (limit / 4 + 1) as usize;
    let err = Tensor::zeros(dev, &[too_many]).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("device allows at most"), "{err}");
    let err = Tensor::zeros(dev, &[usize::MAX, 2]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn device_info_is_reported() {
    let info = device().info();
    assert!(!info.name.is_empty() && !info.backend.is_empty() && !info.driver.is_empty(), "{info:?}");
    assert!(info.max_compute_invocations_per_workgroup >= 256, "{info:?}");
    assert!(info.max_storage_buffers_per_shader_stage >= 8, "{info:?}");
}

#[test]
fn backend_override_is_parsed() {
    let opts = DeviceOptions::parse(Some("Vulkan"), Some(" llvmpipe ")).unwrap();
    assert_eq!(opts.backend, Some(wgpu::Backend::Vulkan));
    assert_eq!(opts.adapter.as_deref(), Some("llvmpipe"));
    assert_eq!(DeviceOptions::parse(Some(""), None).unwrap(), DeviceOptions::default());
    let err = DeviceOptions::parse(Some("cuda"), None).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("\"cuda\"") && msg.contains("vulkan, metal, dx12, gl"), "{msg}");
}

#[test]
fn unmatched_adapter_filter_explains_how_to_get_one() {
    let opts = DeviceOptions::parse(None, Some("no-such-gpu-xyz")).unwrap();
    let err = wgrnn::Device::with_options(&opts).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no-such-gpu-xyz") && msg.contains("apt-get install mesa-vulkan-drivers"), "{msg}");
}

#[test]
fn dispatches_are_counted_and_batched() {
    let dev = device();
    let a = Tensor::zeros(dev, &[16, 16]).unwrap();
    let before = dev.dispatch_count();
    let c = wgrnn::ops::matmul(&a, &a).unwrap();
    // Other tests share the device and run concurrently: at least one.
    assert!(dev.dispatch_count() > before);
    assert_eq!(c.to_vec().unwrap(), vec![0.0; 256]);
}
