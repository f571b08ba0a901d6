//! The buffer pool: after a warm-up iteration, a loop that makes and drops
//! the same tensors creates no new GPU buffers. Its own test binary so no
//! concurrent test shares (and allocates on) the device.

use wgrnn::ops::{gemm, GemmOptions};
use wgrnn::{Device, Tensor};

fn step(dev: &Device, w: &Tensor) -> f32 {
    let x = Tensor::from_slice(dev, &[0.5; 64 * 32], &[64, 32]).unwrap();
    let y = Tensor::zeros(dev, &[64, 16]).unwrap();
    gemm(&x, w, None, &y, GemmOptions::default()).unwrap();
    let s = Tensor::zeros(dev, &[16]).unwrap();
    wgrnn::ops::sum_cols(&y, &s, 0.0).unwrap();
    s.to_vec().unwrap()[0]
}

#[test]
fn steady_state_loop_allocates_no_buffers() {
    let dev = Device::new().unwrap();
    let w = Tensor::from_slice(&dev, &[0.25; 32 * 16], &[32, 16]).unwrap();
    let first = step(&dev, &w);
    let after_warm_up = dev.buffers_created();
    for _ in 0..20 {
        // Every step computes the same value: 64 rows · 32 · 0.5 · 0.25.
        assert_eq!(step(&dev, &w), first);
    }
    assert_eq!(first, 64.0 * 32.0 * 0.5 * 0.25);
    assert_eq!(
        dev.buffers_created(),
        after_warm_up,
        "the pool missed after warm-up"
    );
}
