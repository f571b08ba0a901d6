//! The fuzzing engine shared by the long-run driver (`examples/fuzz/main.rs`)
//! and the bounded CI test (`tests/fuzz.rs`): a structure-aware input
//! decoder ([`Input`]), a byte-level mutator ([`Mutator`]), and a loop
//! ([`run`]) that feeds a target generated and mutated inputs, catches
//! panics, flags hangs, counts GPU errors and wrong results, and keeps a
//! corpus of inputs that produced a new outcome.
//!
//! Stable Rust, no extra crates: coverage guidance needs a nightly
//! compiler (libFuzzer, `fuzz/`), so this loop is guided by outcomes
//! instead. Every target returns a [`Verdict`] naming what happened (the
//! error kind and its message without numbers); an input whose verdict is
//! new joins the corpus and is mutated further. That steers the search
//! past each validation check in turn, the way coverage would, on any
//! toolchain.

#![allow(dead_code)]

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wgrnn::rng::Rng;

/// What one execution of a target ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The API accepted the input and every check on the result held.
    Accepted(String),
    /// The API rejected the input with a clear error (what the library
    /// rule asks for bad input). The string is the outcome's signature.
    Rejected(String),
    /// A GPU error (`Error::Gpu`): a validation error, a lost device.
    Gpu(String),
    /// A result that is silently wrong (ids ≥ V accepted, a length
    /// outside 1..=T accepted, a finite input giving a non-finite output,
    /// an error without a message).
    Wrong(String),
}

impl Verdict {
    /// A rejection or a GPU error from a library error, by its kind.
    pub fn from_error(e: &wgrnn::Error) -> Self {
        let message = e.to_string();
        if matches!(e, wgrnn::Error::Gpu(_)) {
            return Verdict::Gpu(message);
        }
        if message.trim().is_empty() {
            return Verdict::Wrong(format!("an error with an empty message: {e:?}"));
        }
        Verdict::Rejected(signature(&message))
    }
}

/// A message with runs of digits collapsed to `#`, quoted text left
/// out, and cut to 80 characters, so that inputs differing only in sizes
/// or names share an outcome.
pub fn signature(message: &str) -> String {
    let mut out = String::new();
    let (mut in_digits, mut in_quotes) = (false, false);
    for c in message.chars().take(400) {
        // Quoted text (a field, a token, a name) is data, not the outcome.
        if c == '"' {
            in_quotes = !in_quotes;
            out.push(c);
            continue;
        }
        if in_quotes {
            continue;
        }
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out.chars().take(80).collect()
}

/// Shorthand used by targets: `Ok(())` → accepted with `tag`, `Err(e)` →
/// [`Verdict::from_error`].
pub fn verdict(tag: &str, r: wgrnn::Result<()>) -> Verdict {
    match r {
        Ok(()) => Verdict::Accepted(tag.to_string()),
        Err(e) => Verdict::from_error(&e),
    }
}

/// Decodes structure from fuzz bytes, like `arbitrary::Unstructured`: each
/// call consumes a few bytes, and an exhausted input reads as zeros, so
/// every byte string is a valid input and a mutated byte changes one
/// decision.
pub struct Input<'a> {
    data: &'a [u8],
}

/// Sizes that sit on the edges of the checks: 0, 1, powers of two and
/// their neighbours, u32 and usize limits.
pub const EDGE_SIZES: [usize; 14] =
    [0, 1, 2, 3, 7, 8, 255, 256, 65_535, 65_536, u32::MAX as usize, u32::MAX as usize + 1, usize::MAX / 4, usize::MAX];

impl<'a> Input<'a> {
    /// Wraps fuzz bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Bytes not yet consumed.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    /// A coin.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        if n <= 256 {
            usize::from(self.u8()) % n
        } else {
            self.u32() as usize % n
        }
    }

    /// A size: mostly in `0..=small`, sometimes an edge value (0, 2^16,
    /// u32::MAX + 1, usize::MAX…) that a check must reject.
    pub fn size(&mut self, small: usize) -> usize {
        let b = self.u8();
        if b >= 248 {
            EDGE_SIZES[self.below(EDGE_SIZES.len())]
        } else {
            usize::from(b) % (small + 1)
        }
    }

    /// A float: mostly in [-2, 2), sometimes NaN, ±inf, huge or subnormal.
    pub fn f32(&mut self) -> f32 {
        let b = self.u8();
        match b {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => f32::MAX,
            4 => f32::MIN_POSITIVE / 2.0,
            5 => -0.0,
            _ => (f32::from(b) - 128.0) / 64.0,
        }
    }

    /// A finite float in [-2, 2).
    pub fn finite(&mut self) -> f32 {
        (f32::from(self.u8()) - 128.0) / 64.0
    }

    /// Up to `max` bytes, length first.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A short string: raw bytes (lossy UTF-8) or a word from `dictionary`.
    pub fn string(&mut self, max: usize, dictionary: &[&str]) -> String {
        if !dictionary.is_empty() && self.u8() < 96 {
            return dictionary[self.below(dictionary.len())].to_string();
        }
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }
}

/// Byte-level mutations (AFL's havoc stage, simplified): bit flips,
/// interesting bytes and integers, byte runs inserted, deleted and
/// duplicated, and splices with another corpus entry.
pub struct Mutator {
    rng: Rng,
}

/// Bytes worth planting: 0, 0xff, signs, ASCII digits, quotes, commas,
/// newlines, JSON punctuation.
const INTERESTING: [u8; 16] =
    [0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'"', b',', b'\n', b'{', b'}', b'[', b']', b':', b'-'];

impl Mutator {
    /// A mutator with a fixed seed (runs are reproducible).
    pub fn new(seed: u64) -> Self {
        Self { rng: Rng::new(seed) }
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// Random bytes of a random length up to `max`.
    pub fn fresh(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.rng.next_u64() as u8).collect()
    }

    /// 1–8 stacked mutations of `input`, splicing from `other`; the result
    /// is at most `max` bytes.
    pub fn mutate(&mut self, input: &[u8], other: &[u8], max: usize) -> Vec<u8> {
        let mut v = input.to_vec();
        let rounds = 1 + self.below(8);
        for _ in 0..rounds {
            let len = v.len();
            match self.below(10) {
                0 if len > 0 => {
                    let i = self.below(len);
                    v[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    v[i] = INTERESTING[self.below(INTERESTING.len())];
                }
                2 if len > 0 => {
                    let i = self.below(len);
                    v[i] = self.rng.next_u64() as u8;
                }
                3 if len > 0 => {
                    // Small arithmetic on one byte: sizes step over a bound.
                    let i = self.below(len);
                    let d = self.below(35) as u8;
                    v[i] = if self.below(2) == 0 { v[i].wrapping_add(d) } else { v[i].wrapping_sub(d) };
                }
                4 if len >= 4 => {
                    let i = self.below(len - 3);
                    let x: u32 = [0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff, 0x1_0000][self.below(7)];
                    v[i..i + 4].copy_from_slice(&x.to_le_bytes());
                }
                5 if len > 0 => {
                    let (a, n) = (self.below(len), 1 + self.below(16));
                    v.drain(a..(a + n).min(len));
                }
                6 => {
                    let a = self.below(len + 1);
                    let n = 1 + self.below(16);
                    let fill: Vec<u8> = if self.below(2) == 0 {
                        vec![INTERESTING[self.below(INTERESTING.len())]; n]
                    } else {
                        (0..n).map(|_| self.rng.next_u64() as u8).collect()
                    };
                    v.splice(a..a, fill);
                }
                7 if len > 0 => {
                    // Duplicate a run (repeated tokens, repeated records).
                    let a = self.below(len);
                    let n = (1 + self.below(32)).min(len - a);
                    let run = v[a..a + n].to_vec();
                    let at = self.below(len + 1);
                    v.splice(at..at, run);
                }
                8 if !other.is_empty() => {
                    // Splice: our head, the other's tail.
                    let a = self.below(v.len() + 1);
                    let b = self.below(other.len());
                    v.truncate(a);
                    v.extend_from_slice(&other[b..]);
                }
                _ if len > 0 => {
                    // Overwrite a run with a copy of another run.
                    let (a, b) = (self.below(len), self.below(len));
                    let n = (1 + self.below(8)).min(len - a).min(len - b);
                    let run = v[b..b + n].to_vec();
                    v[a..a + n].copy_from_slice(&run);
                }
                _ => v.push(self.rng.next_u64() as u8),
            }
        }
        v.truncate(max);
        v
    }
}

/// A fuzz target: a function of bytes that drives public API and returns
/// what happened. It must never panic or hang, whatever the bytes.
pub struct Target {
    /// Name on the command line.
    pub name: &'static str,
    /// What it drives.
    pub about: &'static str,
    /// The target.
    pub run: fn(&[u8]) -> Verdict,
    /// Seed inputs (valid or nearly valid ones the mutator starts from).
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Longest generated input.
    pub max_len: usize,
}

/// Bounds of one fuzzing run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Generator seed.
    pub seed: u64,
    /// Stop after this many executions.
    pub execs: u64,
    /// Stop after this long, whatever the count.
    pub time: Duration,
    /// An execution running longer than this is a hang.
    pub hang_after: Duration,
    /// Where failing inputs are written (none when `None`).
    pub out_dir: Option<PathBuf>,
    /// Print progress every this many executions (0 = never).
    pub progress_every: u64,
}

/// One failure: its kind, the message, the input.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `panic`, `hang`, `gpu` or `wrong`.
    pub kind: &'static str,
    /// The panic message, GPU error or oracle complaint.
    pub message: String,
    /// The input that caused it.
    pub input: Vec<u8>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Target name.
    pub target: String,
    /// Executions completed.
    pub execs: u64,
    /// Accepted inputs.
    pub accepted: u64,
    /// Rejected inputs (clear errors).
    pub rejected: u64,
    /// Panics caught.
    pub panics: u64,
    /// Executions past the hang limit (the run stops at the first).
    pub hangs: u64,
    /// GPU errors.
    pub gpu_errors: u64,
    /// Silently wrong results.
    pub wrong: u64,
    /// Time spent in accepted executions.
    pub accepted_time: Duration,
    /// The slowest execution and its input.
    pub slowest: (Duration, Vec<u8>),
    /// Distinct outcome signatures seen.
    pub outcomes: usize,
    /// Corpus size at the end.
    pub corpus: usize,
    /// Wall time.
    pub wall: Duration,
    /// The first failures (up to 20).
    pub failures: Vec<Failure>,
}

impl Summary {
    /// The one-line report: `target=… execs=… panics=… hangs=… gpu_errors=… …`.
    pub fn line(&self) -> String {
        format!(
            "target={} execs={} panics={} hangs={} gpu_errors={} wrong={} accepted={} rejected={} outcomes={} \
             corpus={} wall_s={:.1} execs_per_s={:.0} accepted_ms={:.2} rejected_ms={:.2} slowest_ms={:.0}",
            self.target,
            self.execs,
            self.panics,
            self.hangs,
            self.gpu_errors,
            self.wrong,
            self.accepted,
            self.rejected,
            self.outcomes,
            self.corpus,
            self.wall.as_secs_f64(),
            self.execs as f64 / self.wall.as_secs_f64().max(1e-9),
            1e3 * self.accepted_time.as_secs_f64() / self.accepted.max(1) as f64,
            1e3 * (self.wall.saturating_sub(self.accepted_time)).as_secs_f64()
                / (self.execs - self.accepted).max(1) as f64,
            1e3 * self.slowest.0.as_secs_f64(),
        )
    }

    /// Failures of any kind.
    pub fn failed(&self) -> u64 {
        self.panics + self.hangs + self.gpu_errors + self.wrong
    }
}

thread_local! {
    /// The message of the last panic on this thread (the hook stores it
    /// instead of printing it, so a run's output stays one line per event).
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs a panic hook that records the message and location quietly.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic)".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{payload}{at}")));
    }));
}

/// Runs one input, panics caught.
pub fn execute(target: &Target, input: &[u8]) -> Result<Verdict, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(v) => Ok(v),
        Err(_) => Err(LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panic".into())),
    }
}

/// Hex of an input, for reports.
pub fn hex(input: &[u8]) -> String {
    input.iter().map(|b| format!("{b:02x}")).collect()
}

fn save(out: &Option<PathBuf>, target: &str, kind: &str, n: u64, input: &[u8]) -> Option<PathBuf> {
    let dir = out.as_ref()?;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{target}-{kind}-{n}.bin"));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Most corpus entries kept: past it new outcomes replace random entries.
const MAX_CORPUS: usize = 2048;

/// Fuzzes `target` within `config`'s bounds. Inputs: a quarter fresh
/// random bytes, the rest mutations of corpus entries (the seeds, then
/// every input that gave a new outcome). A watchdog thread stops the
/// process with a report if one execution exceeds the hang limit (a
/// stuck thread cannot be interrupted safely).
pub fn run(target: &Target, config: &RunConfig) -> Summary {
    run_parallel(target, config, 1)
}

/// [`run`] on `jobs` threads, each with its own generator seed
/// (`seed + job`), corpus and watchdog, sharing the execution budget and
/// the device. On a software adapter most of an execution's time is spent
/// waiting for the adapter's threads, so a few jobs multiply the rate even
/// on two cores.
pub fn run_parallel(target: &Target, config: &RunConfig, jobs: usize) -> Summary {
    let jobs = jobs.max(1) as u64;
    let start = Instant::now();
    let summaries: Vec<Summary> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let mut c = config.clone();
                c.seed = config.seed.wrapping_add(j);
                c.execs = config.execs / jobs + u64::from(j < config.execs % jobs);
                c.progress_every = if j == 0 { config.progress_every / jobs } else { 0 };
                scope.spawn(move || run_one(target, &c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut total = Summary { target: target.name.to_string(), ..Summary::default() };
    for s in summaries {
        total.execs += s.execs;
        total.accepted += s.accepted;
        total.rejected += s.rejected;
        total.panics += s.panics;
        total.hangs += s.hangs;
        total.gpu_errors += s.gpu_errors;
        total.wrong += s.wrong;
        total.accepted_time += s.accepted_time;
        total.outcomes = total.outcomes.max(s.outcomes);
        total.corpus += s.corpus;
        if s.slowest.0 > total.slowest.0 {
            total.slowest = s.slowest;
        }
        total.failures.extend(s.failures);
    }
    total.wall = start.elapsed();
    // Per-execution times are summed over jobs: scale to wall time.
    total.accepted_time /= jobs as u32;
    total
}

fn run_one(target: &Target, config: &RunConfig) -> Summary {
    let start = Instant::now();
    let mut summary = Summary { target: target.name.to_string(), ..Summary::default() };
    let mut corpus: Vec<Vec<u8>> = (target.seeds)();
    let mut seen: HashSet<String> = HashSet::new();
    let mut mutator = Mutator::new(config.seed);

    // Watchdog: the start time (µs since `start`) of the running execution,
    // and its limit in µs. The seeds run first with 10× the limit: they
    // compile every kernel a target reaches (seconds each on a loaded
    // software adapter), which later executions find cached.
    let running_since = Arc::new(AtomicU64::new(u64::MAX));
    let limit_us = Arc::new(AtomicU64::new(10 * config.hang_after.as_micros() as u64));
    let seed_count = corpus.len() as u64;
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (running_since, current, done) = (running_since.clone(), current.clone(), done.clone());
        let limit_us = limit_us.clone();
        let (out, name) = (config.out_dir.clone(), target.name);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let since = running_since.load(Ordering::Relaxed);
                if since == u64::MAX {
                    continue;
                }
                let now = start.elapsed().as_micros() as u64;
                let limit = Duration::from_micros(limit_us.load(Ordering::Relaxed));
                if now.saturating_sub(since) > limit.as_micros() as u64 {
                    let input = current.lock().map(|v| v.clone()).unwrap_or_default();
                    let saved = save(&out, name, "hang", 0, &input);
                    eprintln!(
                        "HANG: target {name}: one execution ran over {:?}; input {} (saved: {saved:?})",
                        limit,
                        hex(&input)
                    );
                    println!("target={name} hangs=1 (stopped at the first hang)");
                    std::process::exit(3);
                }
            }
        })
    };

    let mut n = 0u64;
    while n < config.execs && start.elapsed() < config.time {
        // Seeds first, unmutated; then mutations and fresh bytes.
        let input = if (n as usize) < corpus.len() && n < 64 {
            corpus[n as usize].clone()
        } else if corpus.is_empty() || mutator.below(4) == 0 {
            mutator.fresh(target.max_len.min(512))
        } else {
            let a = mutator.below(corpus.len());
            let b = mutator.below(corpus.len());
            let (x, y) = (&corpus[a], &corpus[b]);
            mutator.mutate(x, y, target.max_len)
        };
        if n == seed_count.min(64) {
            limit_us.store(config.hang_after.as_micros() as u64, Ordering::Relaxed);
        }
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        running_since.store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        let began = Instant::now();
        let outcome = execute(target, &input);
        let took = began.elapsed();
        running_since.store(u64::MAX, Ordering::Relaxed);
        n += 1;
        if took > Duration::from_secs(1) && std::env::var_os("FUZZ_SLOW_LOG").is_some() {
            eprintln!("slow: exec {n} took {took:?}: {}", hex(&input));
        }
        if took > summary.slowest.0 {
            summary.slowest = (took, input.clone());
        }
        let (key, failure) = match outcome {
            Ok(Verdict::Accepted(tag)) => {
                summary.accepted += 1;
                summary.accepted_time += took;
                (format!("ok:{tag}"), None)
            }
            Ok(Verdict::Rejected(sig)) => {
                summary.rejected += 1;
                (format!("err:{sig}"), None)
            }
            Ok(Verdict::Gpu(m)) => {
                summary.gpu_errors += 1;
                (format!("gpu:{}", signature(&m)), Some(("gpu", m)))
            }
            Ok(Verdict::Wrong(m)) => {
                summary.wrong += 1;
                (format!("wrong:{}", signature(&m)), Some(("wrong", m)))
            }
            Err(m) => {
                summary.panics += 1;
                (format!("panic:{}", signature(&m)), Some(("panic", m)))
            }
        };
        if let Some((kind, message)) = failure {
            let saved = save(&config.out_dir, target.name, kind, n, &input);
            if summary.failures.len() < 20 {
                eprintln!("{kind}: target {} exec {n}: {message} (input saved: {saved:?})", target.name);
                summary.failures.push(Failure { kind, message, input: input.clone() });
            }
        }
        if seen.insert(key) {
            if corpus.len() < MAX_CORPUS {
                corpus.push(input);
            } else if corpus.len() > seed_count as usize {
                // The seeds stay: they are the valid inputs the rest derive from.
                let i = seed_count as usize + mutator.below(corpus.len() - seed_count as usize);
                corpus[i] = input;
            }
        }
        if config.progress_every > 0 && n.is_multiple_of(config.progress_every) {
            summary.execs = n;
            summary.wall = start.elapsed();
            summary.outcomes = seen.len();
            summary.corpus = corpus.len();
            // With several jobs only the first reports, its own counts.
            eprintln!("progress (first job): {}", summary.line());
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    summary.execs = n;
    summary.outcomes = seen.len();
    summary.corpus = corpus.len();
    summary.wall = start.elapsed();
    summary
}
