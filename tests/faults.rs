//! Faults end in an `Err`, never a panic or a hang: a readback past its
//! timeout, a lost device, an allocation past the memory limit, and
//! tensors bigger than the adapter allows, named before any GPU work. Each
//! test makes its own device: these faults are per device.

use std::time::Duration;

use wgrnn::nn::{EmbeddingConfig, LinearConfig, RecurrentConfig};
use wgrnn::ops::{gemm, GemmOptions};
use wgrnn::rnn::{RnnConfig, RnnMode};
use wgrnn::{Device, DeviceOptions, Error, Tensor};

fn new_device(options: DeviceOptions) -> Device {
    Device::with_options(&options).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

fn env_options() -> DeviceOptions {
    DeviceOptions::from_env().unwrap()
}

#[test]
fn readback_past_the_timeout_is_an_error_and_the_device_recovers() {
    let dev = new_device(env_options());
    let n = 384;
    let a = Tensor::from_slice(&dev, &wgrnn::rng::Rng::new(1).uniform_vec(n * n, -1.0, 1.0), &[n, n]).unwrap();
    let c = Tensor::zeros(&dev, &[n, n]).unwrap();
    gemm(&a, &a, None, &c, GemmOptions::default()).unwrap();
    let want = c.to_vec().unwrap();

    // Queue several hundred milliseconds of software-rendered work, then
    // allow a nanosecond: the wait must give up, not block.
    dev.set_readback_timeout(Duration::from_nanos(1));
    for _ in 0..6 {
        gemm(&a, &a, None, &c, GemmOptions::default()).unwrap();
    }
    let start = std::time::Instant::now();
    let result = c.to_vec();
    if dev.info().backend == "gl" {
        // wgpu's GL backend runs the work inside the submission itself
        // (llvmpipe finishes it there), so no wait is left to time out.
        assert_eq!(result.unwrap(), want);
    } else {
        let err = match result {
            Ok(_) => panic!("the readback finished in {:?} despite a 1 ns timeout", start.elapsed()),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Gpu(_)), "{err}");
        assert!(err.to_string().contains("did not finish within"), "{err}");
    }

    // The work was not lost: with time to finish, the same product reads back.
    dev.set_readback_timeout(Duration::from_secs(120));
    assert_eq!(c.to_vec().unwrap(), want);
    dev.synchronize().unwrap();
}

#[test]
fn readback_timeout_is_configured_from_the_environment_format() {
    let opts = DeviceOptions::default();
    assert_eq!(opts.readback_timeout, wgrnn::device::DEFAULT_READBACK_TIMEOUT);
    assert_eq!(opts.with_readback_timeout(Duration::from_secs(3)).readback_timeout, Duration::from_secs(3));
}

#[test]
fn a_lost_device_is_an_error_from_every_call() {
    let dev = new_device(env_options());
    let model = RecurrentConfig::new(RnnMode::Lstm, 4, 8).init(&dev).unwrap();
    let x = Tensor::from_slice(&dev, &[0.5; 2 * 3 * 4], &[2, 3, 4]).unwrap();
    // Recorded but not yet submitted when the device goes.
    let out = model.layer.forward(&x, &[3, 2], None, None, None).unwrap();
    dev.destroy();

    let lost = |r: wgrnn::Result<()>, what: &str| {
        let err = r.expect_err(what);
        assert!(matches!(err, Error::Gpu(_)) && err.to_string().contains("device was lost"), "{what}: {err}");
    };
    lost(out.output.to_vec().map(drop), "reading a result");
    lost(x.to_vec().map(drop), "reading an input");
    lost(Tensor::zeros(&dev, &[4]).map(drop), "allocating");
    lost(x.write(&[1.0; 24]), "writing");
    lost(model.layer.forward(&x, &[3, 2], None, None, None).map(drop), "a forward pass");
    lost(dev.flush(), "flushing");
    lost(dev.synchronize(), "synchronizing");
    lost(dev.check_alive(), "check_alive");
    // Dropping what was made on it is fine.
    drop((out, x, model));
}

#[test]
fn allocations_past_the_memory_limit_are_out_of_memory_errors() {
    const KIB: u64 = 1024;
    let dev = new_device(env_options().with_pool_budget(None).with_memory_limit(Some(1024 * KIB)));
    // Two 512 KiB tensors fill the limit exactly.
    let a = Tensor::zeros(&dev, &[128 * 1024]).unwrap();
    let b = Tensor::zeros(&dev, &[128 * 1024]).unwrap();
    let err = Tensor::zeros(&dev, &[16]).unwrap_err();
    match &err {
        Error::OutOfMemory { what, in_use, limit, .. } => {
            assert!(what.contains("[16]"), "{err}");
            assert_eq!((*in_use, *limit), (1024 * KIB, Some(1024 * KIB)));
        }
        other => panic!("expected OutOfMemory, got {other}"),
    }
    assert!(err.to_string().contains("WGRNN_MEMORY_LIMIT"), "{err}");
    // A freed tensor's cached buffer is released to make room for another size.
    drop(a);
    assert_eq!(dev.memory_stats().cached, 512 * KIB);
    let c = Tensor::zeros(&dev, &[64 * 1024]).unwrap();
    let stats = dev.memory_stats();
    assert_eq!((stats.in_use, stats.cached), (768 * KIB, 0));
    assert!(stats.peak <= 1024 * KIB, "{stats:?}");
    // Training a model that does not fit is an error, not a panic.
    let err = EmbeddingConfig::new(1000, 128).init(&dev).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    drop((b, c));
    // Everything fits again once the tensors are gone.
    let e = EmbeddingConfig::new(1000, 128).init(&dev).unwrap();
    assert_eq!(e.weight.value.to_vec().unwrap().len(), 128_000);
}

#[test]
fn tensors_past_the_adapter_limits_are_named_before_any_gpu_work() {
    let dev = new_device(env_options());
    let info = dev.info().clone();
    let limit = info.max_storage_buffer_binding_size.min(info.max_buffer_size);
    let too_large = |err: Error, name: &str| {
        assert!(matches!(err, Error::TooLarge { .. }), "{name}: {err}");
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(&limit.to_string()), "{text}");
    };
    let dispatches = dev.dispatch_count();
    let created = dev.buffers_created();

    // A vocabulary too big for one binding: refused before the host fills
    // gigabytes with initial values.
    let vocab = (limit / (4 * 64) + 1) as usize;
    too_large(EmbeddingConfig::new(vocab, 64).init(&dev).unwrap_err(), "embedding weight");
    too_large(LinearConfig::new(64, vocab).init(&dev).unwrap_err(), "linear weight");
    let hidden = ((limit / 16) as f64).sqrt() as usize + 1;
    too_large(RnnConfig::new(RnnMode::Lstm, 8, hidden).init(&dev).unwrap_err(), "lstm parameter weight_hh_l0");
    assert_eq!(dev.dispatch_count(), dispatches, "nothing may be launched");
    assert_eq!(dev.buffers_created(), created, "nothing may be allocated");

    // A sequence so long that its gate activations do not fit: the layer
    // names them before recording anything.
    let rnn = RnnConfig::new(RnnMode::Lstm, 1, 1024).init(&dev).unwrap();
    let steps = (limit / (4 * 4096) + 1) as usize;
    let x = Tensor::zeros(&dev, &[1, steps, 1]).unwrap();
    let dispatches = dev.dispatch_count();
    let err = rnn.forward(&x, &[steps], None, None, None).unwrap_err();
    too_large(err, "lstm gate activations");
    // Packing the input is the only work before the check.
    assert!(dev.dispatch_count() - dispatches <= 1, "{} dispatches", dev.dispatch_count() - dispatches);
    dev.synchronize().unwrap();
}

/// A device lost in the middle of `fit` ends the run with an `Err` from the
/// next call that touches it, never a panic or a hang.
#[test]
fn a_device_lost_during_fit_is_an_error() {
    use std::collections::BTreeMap;
    use wgrnn::autograd::{LossVars, Tape};
    use wgrnn::classify::TextClassifier;
    use wgrnn::data::TextVectorizerConfig;
    use wgrnn::data::{BatchConfig, EncodedTexts, LabelSet, TextBatch, TextBatches, TextVectorizer};
    use wgrnn::models::SequenceClassifierConfig;
    use wgrnn::nn::{Module, Parameter};
    use wgrnn::optim::Optimizer;
    use wgrnn::train::{fit, FitConfig, Progress, Task};

    /// Destroys the device during its third loss.
    struct LoseDevice(TextClassifier, usize);
    impl Module for LoseDevice {
        fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
            self.0.visit(prefix, f);
        }
    }
    impl Task for LoseDevice {
        type Batch = TextBatch;
        fn loss(&mut self, tape: &mut Tape, batch: &TextBatch) -> wgrnn::Result<LossVars> {
            self.1 += 1;
            if self.1 == 3 {
                tape.device().destroy();
            }
            self.0.loss(tape, batch)
        }
        fn metadata(&self) -> BTreeMap<String, String> {
            self.0.metadata()
        }
        fn batch_tokens(&self, batch: &TextBatch) -> usize {
            batch.tokens()
        }
    }

    let dev = new_device(env_options());
    let words: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    let v = TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), words).unwrap();
    let labels = LabelSet::from_labels(["x", "y"]).unwrap();
    let model = TextClassifier::new(&dev, v, labels, SequenceClassifierConfig::new(12, 8, 8, 2)).unwrap();
    let ids: Vec<Vec<u32>> = (0..40).map(|i| vec![2 + (i % 10) as u32; 1 + i % 4]).collect();
    let data = EncodedTexts::new(ids, (0..40).map(|i| (i % 2) as u32).collect()).unwrap();
    let train = TextBatches::new(data, BatchConfig::new(8)).unwrap();
    let mut task = LoseDevice(model, 0);
    let mut opt = Optimizer::adam(task.0.parameters(), 1e-3).unwrap();
    let err =
        fit(&mut task, &mut opt, &train, None, &FitConfig::new(2, 1e-3).with_progress(Progress::Quiet)).unwrap_err();
    assert!(matches!(err, Error::Gpu(_)) && err.to_string().contains("device was lost"), "{err}");
}
