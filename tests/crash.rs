//! Crash safety (issue 11): a training process killed with SIGKILL at any
//! moment (starting up, resuming, training, evaluating, or in the middle of
//! a checkpoint write) leaves its last complete checkpoint loadable, and
//! `resume` from it ends bitwise equal to a run that never stopped.
//!
//! The kill test runs this test binary again as a child process
//! ([`crash_child`], selected by `WGRNN_CRASH_CHILD`) that trains a small
//! language model with a checkpoint every [`CHECKPOINT_EVERY`] steps. The
//! parent kills it at seeded random moments, checks every checkpoint it
//! left behind, and starts it again with `resume`, until it finishes.
//! `WGRNN_CRASH_KILLS=N` asks for N kills (default [`DEFAULT_KILLS`]; each
//! costs a process start, ≈ 0.4 s on lavapipe).
//!
//! Also here: the save side of `checkpoint` (a failed write leaves no
//! temporary file, a stale temporary file is never read) and the
//! validation of `FitConfig::checkpoint_every`.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::device;
use wgrnn::autograd::{LossVars, Tape};
use wgrnn::checkpoint::{self, HostTensor};
use wgrnn::data::{TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{AwdConfig, Bptt, LanguageModelConfig, LmBatch, StreamBatches, TextLm};
use wgrnn::nn::{named_parameters, Module, Parameter};
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::train::{fit, FitConfig, FitReport, Progress, Task};
use wgrnn::{Device, Error, Tensor};

/// Periodic checkpoints of the child run: often, so that most kills land
/// near a write and every resume has a recent one.
const CHECKPOINT_EVERY: u64 = 2;
/// Kills when `WGRNN_CRASH_KILLS` is unset: the 50. Measured on 2
/// shared cores: 60 kills take 25 s on lavapipe, 42 s with bounds-checked
/// shaders, 13 s on llvmpipe GL (most of it process starts).
const DEFAULT_KILLS: usize = 50;
/// Names the child's checkpoint folder; set only in the child.
const CHILD_ENV: &str = "WGRNN_CRASH_CHILD";
/// Number of kills asked for.
const KILLS_ENV: &str = "WGRNN_CRASH_KILLS";
/// The line the child prints as a checkpoint write begins.
const SAVE_MARKER: &str = "wgrnn-crash: checkpoint";
/// A child that neither announces a checkpoint nor ends for this long is
/// hung: the test fails instead of waiting forever (a whole child run
/// takes a few seconds).
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Seed of the kill moments.
const KILL_SEED: u64 = 11;
/// The learning rate of the run.
const LR: f32 = 3e-3;

/// A fresh folder under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text() -> String {
    "the quick brown fox jumps over the lazy dog. ".repeat(30)
}

/// A 2-layer AWD-LSTM character model (dropout everywhere, so a resume must
/// also restore the per-step masks' seeds), seeded by `seed`.
fn language_model(dev: &Device, seed: u64) -> TextLm {
    let text = text();
    let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::characters(), [text.as_str()]).unwrap();
    let config = LanguageModelConfig::new(vectorizer.vocab_size(), 8, 16)
        .with_layers(2)
        .with_awd(AwdConfig::fastai(0.5))
        .with_seed(seed);
    TextLm::new(dev, vectorizer, config).unwrap()
}

/// The language model, announcing each checkpoint write on stdout (when
/// `announce`) and counting them: `fit` asks for the metadata just before
/// it reads the weights back and writes the file, so the parent can aim a
/// kill at the write.
struct Announced {
    lm: TextLm,
    announce: bool,
    saves: Cell<usize>,
}

impl Module for Announced {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.lm.visit(prefix, f);
    }
}

impl Task for Announced {
    type Batch = LmBatch;
    fn loss(&mut self, tape: &mut Tape, batch: &LmBatch) -> wgrnn::Result<LossVars> {
        self.lm.loss(tape, batch)
    }
    fn start_epoch(&mut self, epoch: usize) -> wgrnn::Result<()> {
        self.lm.start_epoch(epoch)
    }
    fn start_evaluation(&mut self) -> wgrnn::Result<()> {
        self.lm.start_evaluation()
    }
    fn lr_scale(&self, batch: &LmBatch) -> f32 {
        self.lm.lr_scale(batch)
    }
    fn running_state(&self) -> Vec<(String, Tensor)> {
        self.lm.running_state()
    }
    fn restore_running_state(&mut self, state: Vec<HostTensor>) -> wgrnn::Result<()> {
        self.lm.restore_running_state(state)
    }
    fn metadata(&self) -> BTreeMap<String, String> {
        self.saves.set(self.saves.get() + 1);
        if self.announce {
            // println! flushes at the newline (stdout is line-buffered),
            // and the child runs with --nocapture.
            println!("{SAVE_MARKER}");
        }
        self.lm.metadata()
    }
    fn batch_tokens(&self, batch: &LmBatch) -> usize {
        self.lm.batch_tokens(batch)
    }
}

/// Variable BPTT windows (epochs differ in length), 4 streams, a validation
/// set (so `best.safetensors` is written too).
fn batches() -> (StreamBatches, StreamBatches) {
    let lm = language_model(device(), 1);
    let ids = lm.vectorizer.encode(&text());
    (
        StreamBatches::new(&ids, 4, Bptt::variable(12, 5)).unwrap(),
        StreamBatches::new(&ids[..300], 2, Bptt::fixed(16)).unwrap(),
    )
}

fn config(dir: &Path, every: Option<u64>) -> FitConfig {
    let mut c =
        FitConfig::new(2, LR).with_seed(9).with_clip(0.5).with_checkpoint_dir(dir).with_progress(Progress::Quiet);
    c.checkpoint_every = every;
    c
}

/// Trains the run in `dir`, resuming from its `last.safetensors` if there
/// is one: what every child does, and (without periodic checkpoints) the
/// uninterrupted reference.
fn train(dir: &Path, every: Option<u64>, announce: bool) -> FitReport {
    let (train, valid) = batches();
    let mut task = Announced { lm: language_model(device(), 1), announce, saves: Cell::new(0) };
    let mut opt = Optimizer::adam(named_parameters(&task), LR).unwrap();
    let mut config = config(dir, every);
    let last = dir.join("last.safetensors");
    if last.exists() {
        config = config.with_resume(last);
    }
    fit(&mut task, &mut opt, &train, Some(&valid), &config).unwrap()
}

/// The child process of [`sigkill_at_random_moments_then_resume_is_bitwise`].
/// Run by hand (`--ignored`), it trains once in a temp folder.
#[test]
#[ignore = "the child process of the kill test, which starts it"]
fn crash_child() {
    let dir = match std::env::var_os(CHILD_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => temp_dir("child"),
    };
    let report = train(&dir, Some(CHECKPOINT_EVERY), true);
    assert!(!report.interrupted && report.history.len() == 2, "the run finished: {report:?}");
}

/// Every tensor of a checkpoint, as raw bytes by name (weights, optimizer
/// state, running state); the metadata holds timings, so it is left out.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(name, view)| (name, view.data().to_vec())).collect()
}

/// Names of the tensors that differ, with the first differing f32.
fn differences(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        match (got.get(name), want.get(name)) {
            (Some(g), Some(w)) if g == w => {}
            (Some(g), Some(w)) => {
                let (g, w): (Vec<f32>, Vec<f32>) = (bytemuck::pod_collect_to_vec(g), bytemuck::pod_collect_to_vec(w));
                let i = g.iter().zip(&w).position(|(a, b)| a.to_bits() != b.to_bits()).unwrap_or(g.len().min(w.len()));
                out.push(format!(
                    "{name}: element {i}: {:?} vs {:?} (lengths {} vs {})",
                    g.get(i),
                    w.get(i),
                    g.len(),
                    w.len()
                ));
            }
            (g, _) => {
                out.push(format!("{name}: only in the {} run", if g.is_some() { "killed" } else { "uninterrupted" }))
            }
        }
    }
    out
}

/// The epoch records a checkpoint stores, without their timings: the
/// losses and accuracies show that the metric sums of an interrupted epoch
/// were carried over exactly.
fn history(path: &Path) -> Vec<serde_json::Value> {
    let meta = checkpoint::metadata(path).unwrap();
    let trainer: serde_json::Value = serde_json::from_str(&meta["trainer"]).unwrap();
    let mut records = trainer["history"].as_array().expect("trainer state with a history").clone();
    for r in &mut records {
        let r = r.as_object_mut().unwrap();
        r.remove("tokens_per_s");
        r.remove("seconds");
    }
    records
}

/// The loop position a checkpoint stores: (epoch, batch, step).
fn position(path: &Path) -> (u64, u64, u64) {
    let meta = checkpoint::metadata(path).unwrap_or_else(|e| panic!("{e}"));
    let trainer: serde_json::Value = serde_json::from_str(&meta["trainer"]).unwrap();
    let field = |k: &str| trainer[k].as_u64().unwrap_or_else(|| panic!("trainer state without `{k}`"));
    let step = field("step");
    let optimizer_step: u64 = meta["optimizer_step"].parse().unwrap();
    assert_eq!(optimizer_step, step, "{}: optimizer and loop disagree on the step", path.display());
    (field("epoch"), field("batch"), step)
}

/// Checks the checkpoints in `dir` the way a resume uses them: each loads
/// into a fresh model and optimizer (other initial weights) with its
/// running state. Returns the position of `last.safetensors`, if any.
fn verify(dir: &Path) -> Option<(u64, u64, u64)> {
    let last = dir.join("last.safetensors");
    for path in [dir.join("best.safetensors"), last.clone()] {
        if !path.exists() {
            continue;
        }
        let fresh = language_model(device(), 77);
        let mut opt = Optimizer::adam(named_parameters(&fresh), LR).unwrap();
        checkpoint::load(&path, &fresh, Some(&mut opt)).unwrap_or_else(|e| panic!("left behind unloadable: {e}"));
        checkpoint::running_state(&path).unwrap_or_else(|e| panic!("left behind unloadable: {e}"));
        position(&path);
    }
    last.exists().then(|| position(&last))
}

/// Temporary files of interrupted writes in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

/// What the kill test counts.
#[derive(Debug, Default)]
struct Tally {
    /// Children killed.
    kills: usize,
    /// Kills of each [`Kind`].
    kinds: [usize; 4],
    /// Kills that left a temporary file behind: they landed inside a write.
    in_write: usize,
    /// Checkpoint folders checked after a kill that held a checkpoint.
    verified: usize,
    /// Children started from a checkpoint.
    resumes: usize,
    /// Children that finished their run.
    finished: usize,
}

/// Waits for `child` to end, at most [`CHILD_TIMEOUT`].
fn wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            child.kill().ok();
            panic!("the child did not end within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where in a child's life a kill is aimed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Anywhere from the process start to its first checkpoint: device
    /// creation, shader compilation, loading the checkpoint to resume.
    StartUp,
    /// Anywhere in the steps after the child's 1st to 3rd checkpoint.
    Training,
    /// The moment the temporary file of the child's 1st to 3rd checkpoint
    /// appears: inside the write, before the rename.
    TemporaryFile,
    /// Within two write times of a checkpoint's announcement: the weights'
    /// readback, the write, the rename or the folder flush.
    AroundWrite,
}

impl Kind {
    /// Drawn uniformly; writes get half the kills.
    const ALL: [Kind; 6] =
        [Kind::StartUp, Kind::Training, Kind::Training, Kind::TemporaryFile, Kind::TemporaryFile, Kind::AroundWrite];
}

/// Durations the kill moments are drawn from, in seconds, updated from
/// what the children show.
struct Timing {
    /// Process start to the first checkpoint announcement.
    startup: f64,
    /// Between two checkpoint announcements.
    interval: f64,
    /// One checkpoint write (readback, serialize, write, flush).
    write: f64,
}

/// Kills `child` at a random moment of `kind` (unless it ends first) and
/// says when, for the log. `announced` receives the time of each of its
/// checkpoint announcements; `temporaries` is how many temporary files
/// `dir` held when it started.
#[allow(clippy::too_many_arguments)]
fn kill_at_random(
    child: &mut std::process::Child,
    announced: &std::sync::mpsc::Receiver<Instant>,
    spawned: Instant,
    kind: Kind,
    rng: &mut Rng,
    timing: &mut Timing,
    dir: &Path,
    temporaries_before: usize,
) -> String {
    let nth = 1 + rng.next_u64() % 3;
    let mut last: Option<Instant> = None;
    let aim = match kind {
        Kind::StartUp => {
            let delay = rng.uniform(0.0, timing.startup as f32);
            std::thread::sleep(Duration::from_secs_f32(delay));
            format!("{:.3} s after the start", delay)
        }
        _ => {
            for _ in 0..nth {
                let t = match announced.recv_timeout(CHILD_TIMEOUT) {
                    Ok(t) => t,
                    Err(RecvTimeoutError::Disconnected) => break, // it ended
                    Err(RecvTimeoutError::Timeout) => {
                        child.kill().ok();
                        panic!("the child announced no checkpoint for {CHILD_TIMEOUT:?}");
                    }
                };
                match last {
                    None => timing.startup = (t - spawned).as_secs_f64(),
                    Some(before) => timing.interval = (t - before).as_secs_f64(),
                }
                last = Some(t);
            }
            match kind {
                Kind::Training => {
                    let delay = rng.uniform(0.0, timing.interval as f32);
                    std::thread::sleep(Duration::from_secs_f32(delay));
                    format!("{:.1} ms after checkpoint {nth} began", delay * 1e3)
                }
                Kind::TemporaryFile => {
                    // Polls without sleeping: the file lives for about a
                    // write time (a few ms).
                    let waiting = Instant::now();
                    while temporaries(dir).len() <= temporaries_before
                        && waiting.elapsed().as_secs_f64() < timing.interval
                    {}
                    format!(
                        "{:.2} ms after checkpoint {nth} began, as its file appeared",
                        waiting.elapsed().as_secs_f64() * 1e3
                    )
                }
                _ => {
                    let delay = rng.uniform(0.0, 2.0 * timing.write as f32);
                    std::thread::sleep(Duration::from_secs_f32(delay));
                    format!("{:.2} ms after checkpoint {nth} began", delay * 1e3)
                }
            }
        }
    };
    child.kill().unwrap();
    aim
}

/// SIGKILL at random moments, then resume: at least the asked number of
/// kills, half of them aimed at checkpoint writes; after each, every
/// checkpoint loads and the step never goes back; each run that finishes
/// ends bitwise equal to one that never stopped (every tensor: weights,
/// Adam state, carried LSTM state, and `best.safetensors` too).
#[cfg(unix)]
#[test]
fn sigkill_at_random_moments_then_resume_is_bitwise() {
    use std::os::unix::process::ExitStatusExt;
    let wanted: usize =
        std::env::var(KILLS_ENV).map_or(DEFAULT_KILLS, |v| v.parse().expect("WGRNN_CRASH_KILLS: a number"));
    let started = Instant::now();
    let root = temp_dir("kills");

    // The reference, never stopped and without periodic checkpoints (they
    // must not change the run).
    let straight = root.join("straight");
    let clock = Instant::now();
    let report = train(&straight, None, false);
    let straight_seconds = clock.elapsed().as_secs_f64();
    let total_steps = report.steps;
    let want = tensors(&straight.join("last.safetensors"));
    let want_best = tensors(&straight.join("best.safetensors"));
    // A checkpoint write as the child does it (read back, serialize, write,
    // flush), timed to aim kills inside one.
    let lm = language_model(device(), 1);
    let mut opt = Optimizer::adam(named_parameters(&lm), LR).unwrap();
    let clock = Instant::now();
    checkpoint::save(root.join("timing.safetensors"), &lm, Some(&mut opt)).unwrap();
    let write_seconds = clock.elapsed().as_secs_f64();

    let mut rng = Rng::new(KILL_SEED);
    let mut tally = Tally::default();
    let mut timing = Timing {
        startup: 1.0,
        interval: straight_seconds * CHECKPOINT_EVERY as f64 / total_steps as f64,
        write: write_seconds,
    };
    let mut round = 0;
    while tally.kills < wanted {
        let dir = root.join(format!("round-{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut at = (0, 0, 0);
        for child_number in 0.. {
            if dir.join("last.safetensors").exists() {
                tally.resumes += 1;
            }
            let log = dir.join(format!("child-{child_number}.log"));
            let spawned = Instant::now();
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &dir)
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            // Announcements arrive on a channel, so waiting for one can end
            // when the child does.
            let (tx, rx) = std::sync::mpsc::channel();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    match line {
                        Ok(l) if l.contains(SAVE_MARKER) => drop(tx.send(Instant::now())),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            let before = temporaries(&dir);
            let mut aim = String::from("not killed");
            if tally.kills < wanted {
                let kind = Kind::ALL[(rng.next_u64() % Kind::ALL.len() as u64) as usize];
                aim = kill_at_random(&mut child, &rx, spawned, kind, &mut rng, &mut timing, &dir, before.len());
                tally.kinds[kind as usize] += 1;
            }
            let status = wait(&mut child);
            // One line per child (shown with --nocapture or on failure).
            eprintln!(
                "round {round} child {child_number}: {aim}: {status}, {} temporary files, last at (epoch, batch, \
                 step) {:?}",
                temporaries(&dir).len(),
                dir.join("last.safetensors").exists().then(|| position(&dir.join("last.safetensors")))
            );
            if status.signal() == Some(9) {
                tally.kills += 1;
                if temporaries(&dir).len() > before.len() {
                    tally.in_write += 1;
                }
                if let Some(now) = verify(&dir) {
                    tally.verified += 1;
                    assert!(now >= at, "the checkpoint went back from {at:?} to {now:?}");
                    // Written at a multiple of N steps or at an epoch's end.
                    assert!(now.2 % CHECKPOINT_EVERY == 0 || now.1 == 0, "a checkpoint at {now:?}");
                    at = now;
                }
                continue;
            }
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(status.success(), "child {child_number} of round {round} failed ({status}):\n{output}");
            tally.finished += 1;
            break;
        }
        // Finished: the same tensors as never stopping, bit for bit.
        let end = verify(&dir).expect("a finished run has a checkpoint");
        assert!(end >= at && end.2 == total_steps, "finished at {end:?}, expected step {total_steps}");
        let wrong = differences(&tensors(&dir.join("last.safetensors")), &want);
        assert!(wrong.is_empty(), "round {round}: the killed-and-resumed run differs:\n{}", wrong.join("\n"));
        let last = dir.join("last.safetensors");
        assert_eq!(history(&last), history(&straight.join("last.safetensors")), "round {round}: epoch records");
        let wrong = differences(&tensors(&dir.join("best.safetensors")), &want_best);
        assert!(wrong.is_empty(), "round {round}: best.safetensors differs:\n{}", wrong.join("\n"));
        // Stale temporary files stay where a kill left them, unread.
        round += 1;
    }
    eprintln!(
        "crash test: {} kills ({} at start-up, {} in training, {} as a temporary file appeared, {} within two write \
         times of an announcement; {} left a temporary file), {} checkpoints verified, {} resumes, {} runs finished \
         bitwise equal to the uninterrupted one ({total_steps} steps, {straight_seconds:.1} s alone; a checkpoint \
         write {:.1} ms); {:.1} s in all",
        tally.kills,
        tally.kinds[0],
        tally.kinds[1],
        tally.kinds[2],
        tally.kinds[3],
        tally.in_write,
        tally.verified,
        tally.resumes,
        tally.finished,
        write_seconds * 1e3,
        started.elapsed().as_secs_f64()
    );
    assert!(tally.kills >= wanted && tally.finished >= 1);
    std::fs::remove_dir_all(&root).ok();
}

/// A save that fails (here the target is a non-empty folder, so the rename
/// fails) removes its temporary file and returns an error naming the path;
/// so does a folder that does not exist.
#[test]
fn a_failed_write_leaves_no_temporary_file() {
    let dir = temp_dir("failed-write");
    let lm = language_model(device(), 1);
    let target = dir.join("taken.safetensors");
    std::fs::create_dir_all(target.join("inside")).unwrap();
    let e = checkpoint::save(&target, &lm, None).unwrap_err();
    assert!(matches!(&e, Error::Format(m) if m.contains("taken.safetensors")), "{e}");
    assert_eq!(temporaries(&dir), Vec::<String>::new(), "the temporary file is removed");
    assert!(checkpoint::save(dir.join("missing/last.safetensors"), &lm, None).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// Temporary files left by killed writers (any name a writer could have
/// used, even garbage) neither block a save nor get read by a load; the
/// next save removes those whose writer is gone (Linux), and no other.
#[test]
fn stale_temporary_files_are_never_read() {
    let dir = temp_dir("stale");
    let path = dir.join("last.safetensors");
    let stale = [
        format!("last.safetensors.{}-0.tmp", std::process::id()),
        format!("last.safetensors.{}-1.tmp", std::process::id()),
        "last.safetensors.1-0.tmp".to_string(),
        "last.safetensors.tmp".to_string(),
    ];
    for name in &stale {
        std::fs::write(dir.join(name), b"half a checkpoint").unwrap();
    }
    let saved = language_model(device(), 1);
    checkpoint::save(&path, &saved, None).unwrap();
    let loaded = language_model(device(), 2);
    checkpoint::load(&path, &loaded, None).unwrap();
    let values =
        |m: &TextLm| -> Vec<Vec<f32>> { named_parameters(m).iter().map(|(_, p)| p.value.to_vec().unwrap()).collect() };
    assert_eq!(values(&loaded), values(&saved));
    for name in &stale {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), b"half a checkpoint", "{name} is left alone");
    }
    // No process can have this pid (Linux caps pids at 2^22).
    let orphan = dir.join("last.safetensors.4194305-3.tmp");
    std::fs::write(&orphan, b"half a checkpoint").unwrap();
    checkpoint::save(&path, &saved, None).unwrap();
    assert_eq!(orphan.exists(), !cfg!(target_os = "linux"), "an orphan of a dead writer is removed");
    for name in &stale {
        assert!(dir.join(name).exists(), "{name} is left alone");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `checkpoint_every`: 0 and a missing folder are configuration errors; a
/// run writes its periodic checkpoints at the multiples of N inside each
/// epoch, and the last one stores the loop's position.
#[test]
fn checkpoint_every_is_validated_and_counts_steps() {
    let (train, _) = batches();
    let dir = temp_dir("every");
    let mut task = Announced { lm: language_model(device(), 1), announce: false, saves: Cell::new(0) };
    let mut opt = Optimizer::adam(named_parameters(&task), LR).unwrap();
    let zero = config(&dir, None).with_checkpoint_every(0);
    assert!(matches!(fit(&mut task, &mut opt, &train, None, &zero), Err(Error::Config(_))));
    let no_dir = FitConfig::new(1, LR).with_progress(Progress::Quiet).with_checkpoint_every(3);
    assert!(matches!(fit(&mut task, &mut opt, &train, None, &no_dir), Err(Error::Config(_))));
    assert_eq!(task.saves.get(), 0, "nothing written by a rejected config");

    let steps = 7u64;
    let mut run = config(&dir, None).with_checkpoint_every(3).with_max_steps(steps);
    run.epochs = 1;
    let report = fit(&mut task, &mut opt, &train, None, &run).unwrap();
    assert_eq!(report.steps, steps);
    // Steps 3 and 6, then the checkpoint where the step limit ends the run.
    assert_eq!(task.saves.get(), 3);
    assert_eq!(position(&dir.join("last.safetensors")), (0, steps, steps));
    std::fs::remove_dir_all(&dir).ok();
}
