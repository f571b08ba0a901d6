//! Long-run fuzzing driver, on stable Rust:
//!
//! ```sh
//! cargo run --release --example fuzz -- --list
//! cargo run --release --example fuzz -- --target csv --execs 1000000 --jobs 2
//! cargo run --release --example fuzz -- --target tape --execs 1000000 --jobs 4 --seed 7 --out fuzz-out
//! cargo run --release --example fuzz -- --target tape --seeds
//! cargo run --release --example fuzz -- --target csv --replay fuzz-out/csv-panic-12.bin
//! ```
//!
//! The GPU targets (`checkpoint`, `packed`, `tape`) spend most of an
//! execution waiting for the adapter; `--jobs 4` runs four generators on
//! one shared device and multiplies their rate even on two cores.
//!
//! Each execution feeds one generated or mutated input to the target
//! (`examples/fuzz/targets/`, the same functions `tests/fuzz.rs` runs in
//! CI); panics are caught and counted, an execution over `--hang-secs`
//! stops the run as a hang, `Error::Gpu` counts as a GPU error, and a
//! result a target's checks find wrong counts as wrong. Failing inputs go
//! to `--out`. The last line is the summary:
//! `target=csv execs=1000000 panics=0 hangs=0 gpu_errors=0 wrong=0 …`;
//! the exit status is 1 when anything failed.

mod engine;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Fuzz one wgrnn target.
#[derive(Parser, Debug)]
#[command(about = "Fuzz one wgrnn target (see examples/fuzz/main.rs)")]
struct Cli {
    /// Target name (`--list` shows them).
    #[arg(long, default_value = "csv")]
    target: String,
    /// Executions to run.
    #[arg(long, default_value_t = 1_000_000)]
    execs: u64,
    /// Stop after this many seconds even if `--execs` is not reached.
    #[arg(long, default_value_t = 86_400.0)]
    seconds: f64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// An execution longer than this is a hang.
    #[arg(long, default_value_t = 10.0)]
    hang_secs: f64,
    /// Directory for failing inputs.
    #[arg(long, default_value = "fuzz-out")]
    out: PathBuf,
    /// Worker threads sharing the device (GPU targets wait on the adapter
    /// most of the time; 3–4 jobs raise their rate even on two cores).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Print a progress line every N executions (0 = never).
    #[arg(long, default_value_t = 100_000)]
    progress: u64,
    /// Run saved inputs, in order in one process, and print each verdict
    /// and its time.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Run the target's seed inputs once and print each verdict.
    #[arg(long)]
    seeds: bool,
    /// List the targets.
    #[arg(long)]
    list: bool,
}

fn main() {
    let cli = Cli::parse();
    if cli.list {
        for t in targets::TARGETS {
            println!("{:<12} {}", t.name, t.about);
        }
        return;
    }
    let Some(target) = targets::target(&cli.target) else {
        let names: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("unknown target {:?}; the targets are {}", cli.target, names.join(", "));
        std::process::exit(2);
    };
    engine::quiet_panics();
    if cli.seeds {
        for (k, input) in (target.seeds)().iter().enumerate() {
            match engine::execute(target, input) {
                Ok(v) => println!("seed {k}: {v:?}"),
                Err(panic) => println!("seed {k}: panic: {panic}"),
            }
        }
        return;
    }
    if !cli.replay.is_empty() {
        for path in &cli.replay {
            let input = std::fs::read(path).unwrap_or_else(|e| {
                eprintln!("cannot read {}: {e}", path.display());
                std::process::exit(2);
            });
            let start = std::time::Instant::now();
            let outcome = engine::execute(target, &input);
            let took = start.elapsed();
            match outcome {
                Ok(v) => println!("{}: {v:?} ({took:?})", path.display()),
                Err(panic) => println!("{}: panic: {panic} ({took:?})", path.display()),
            }
        }
        return;
    }
    let config = engine::RunConfig {
        seed: cli.seed,
        execs: cli.execs,
        time: Duration::from_secs_f64(cli.seconds),
        hang_after: Duration::from_secs_f64(cli.hang_secs),
        out_dir: Some(cli.out),
        progress_every: cli.progress,
    };
    let summary = engine::run_parallel(target, &config, cli.jobs);
    targets::remove_scratch();
    if let Some(path) = config.out_dir.as_ref().map(|d| d.join(format!("{}-slowest.bin", target.name))) {
        if std::fs::create_dir_all(path.parent().unwrap_or(&path)).is_ok()
            && std::fs::write(&path, &summary.slowest.1).is_ok()
        {
            eprintln!("slowest input ({:?}): {}", summary.slowest.0, path.display());
        }
    }
    println!("{}", summary.line());
    if summary.failed() > 0 {
        std::process::exit(1);
    }
}
