//! The 30-line training loop: embedding → LSTM → linear → cross-entropy →
//! Adam, learning "does token A come before token B?" on variable-length
//! sequences. Ends with one `key=value` summary line.
//!
//! `cargo run --release --example a_before_b`

use wgrnn::autograd::Tape;
use wgrnn::nn::{join, Embedding, Linear, Recurrent};
use wgrnn::nn::{named_parameters, EmbeddingConfig, LinearConfig, Module, Parameter, RecurrentConfig};
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::rnn::{PackedBatch, RnnMode};
use wgrnn::{Device, Result};

const T: usize = 16;

struct Model {
    embedding: Embedding,
    rnn: Recurrent,
    fc: Linear,
}

impl Module for Model {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.embedding.visit(&join(prefix, "embedding"), f);
        self.rnn.visit(&join(prefix, "rnn"), f);
        self.fc.visit(&join(prefix, "fc"), f);
    }
}

/// A batch: padded ids (B·T), lengths, labels (1 when A=1 precedes B=2).
fn batch(rng: &mut Rng, b: usize) -> (Vec<u32>, Vec<usize>, Vec<u32>) {
    let (mut ids, mut lengths, mut labels) = (vec![0u32; b * T], vec![], vec![]);
    for row in 0..b {
        let len = 4 + (rng.next_u64() % 13) as usize;
        (0..len).for_each(|t| ids[row * T + t] = 3 + (rng.next_u64() % 7) as u32);
        let (a, mut bb) = ((rng.next_u64() % len as u64) as usize, (rng.next_u64() % (len as u64 - 1)) as usize);
        bb += usize::from(bb >= a);
        ids[row * T + a] = 1;
        ids[row * T + bb] = 2;
        lengths.push(len);
        labels.push(u32::from(a < bb));
    }
    (ids, lengths, labels)
}

fn main() -> Result<()> {
    let dev = Device::new()?;
    println!("adapter: {}", dev.info());
    let model = Model {
        embedding: EmbeddingConfig::new(10, 16).with_padding_idx(0).init(&dev)?,
        rnn: RecurrentConfig::new(RnnMode::Lstm, 16, 32).init(&dev)?,
        fc: LinearConfig::new(32, 2).init(&dev)?,
    };
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-2)?;
    let (mut rng, start) = (Rng::new(1), std::time::Instant::now());
    let (mut accuracy, mut steps) = (0.0, 0);
    while accuracy < 0.99 && steps < 1000 {
        let (ids, lengths, labels) = batch(&mut rng, 64);
        let packed = PackedBatch::new(&dev, &lengths, T)?;
        let mut tape = Tape::train(&dev, steps);
        let x = tape.embedding(&model.embedding, &packed.pack_host(&ids)?)?;
        let r = tape.recurrent(&model.rnn, x, &packed, None, None)?;
        let last = tape.pool_last(r.h_n, 1)?;
        let logits = tape.linear(&model.fc, last)?;
        let loss = tape.cross_entropy(logits, &labels, None, 0.0)?;
        opt.zero_grad()?;
        tape.backward(loss.loss)?;
        opt.step()?;
        steps += 1;
        if steps % 10 == 0 {
            // Reading the metric is the only readback: every 10 steps.
            accuracy = loss.accuracy()?;
            println!("step {steps:4}  loss {:.4}  batch accuracy {accuracy:.3}", loss.value(&tape)?);
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    println!("train_accuracy={accuracy:.4} steps={steps} ms_per_step={ms:.1}");
    Ok(())
}
