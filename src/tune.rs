//! What the autotuners share: the kernel choices a device holds (forced by
//! `WGRNN_KERNEL` or [`crate::Device`]'s setters, or tuned), and the cache
//! file that keeps tuned choices across processes.
//!
//! Two families are tuned: the recurrent kernels ([`crate::rnn::tune`]) and
//! the GEMM kernels ([`crate::ops::gemm_tune`]). Each times its candidates
//! once per adapter and shape and keeps the fastest, in memory and in one
//! JSON file keyed by adapter, driver, backend, wgrnn version and a hash of
//! the kernels' sources. The file is `WGRNN_TUNE_CACHE` if set, else
//! `$XDG_CACHE_HOME/wgrnn/tune.json` or `~/.cache/wgrnn/tune.json`;
//! `WGRNN_TUNE=off` skips timing (each family's default rule applies).
//!
//! `WGRNN_KERNEL` forces variants as comma-separated `family=variant`
//! pairs: `recurrent=step|sequence|sequence/ROWS` and
//! `gemm=register|vec4|shared|subgroup|subgroup_window`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::GemmVariant;
use crate::rnn::RecurrentKernel;

/// Tuned choices of one family: shape key → variant name, loaded from the
/// cache file on first use.
pub(crate) type Tuned = Option<BTreeMap<String, String>>;

/// The variants `WGRNN_KERNEL` forces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForcedKernels {
    /// `recurrent=...`.
    pub recurrent: Option<RecurrentKernel>,
    /// `gemm=...`.
    pub gemm: Option<GemmVariant>,
}

impl ForcedKernels {
    /// Parses a `WGRNN_KERNEL` value: comma-separated `family=variant`
    /// pairs with the families `recurrent` and `gemm`; empty pairs are
    /// skipped, anything else is an error naming what is accepted.
    pub fn parse(value: &str) -> Result<Self> {
        let mut forced = Self::default();
        for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
            match pair.split_once('=').map(|(f, v)| (f.trim(), v)) {
                Some(("recurrent", variant)) => forced.recurrent = Some(RecurrentKernel::parse(variant)?),
                Some(("gemm", variant)) => forced.gemm = Some(GemmVariant::parse(variant)?),
                _ => {
                    return Err(Error::Config(format!(
                        "WGRNN_KERNEL: {pair:?} is not family=variant with a known family (recurrent, gemm)"
                    )))
                }
            }
        }
        Ok(forced)
    }
}

/// The device's kernel choices: what is forced, and what was tuned.
#[derive(Debug, Default)]
pub(crate) struct KernelChoices {
    forced_recurrent: Mutex<Option<RecurrentKernel>>,
    forced_gemm: Mutex<Option<GemmVariant>>,
    /// Recurrent choices by shape key; also held while a shape is being
    /// timed, so threads sharing the device time it once.
    pub(crate) recurrent: Mutex<Tuned>,
    /// GEMM choices, the same way. A lock of its own: timing a recurrent
    /// layer runs GEMMs, which may tune theirs meanwhile.
    pub(crate) gemm: Mutex<Tuned>,
    /// `WGRNN_TUNE=off`, read once with the device (not on every launch).
    pub(crate) tuning_off: bool,
}

/// Locks `m`, recovering from a poisoned lock (the data is a cache: a
/// panic while timing leaves nothing half-valid that matters).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KernelChoices {
    /// Choices starting with `forced` (from `WGRNN_KERNEL`).
    pub(crate) fn new(forced: ForcedKernels) -> Self {
        let tuning_off = std::env::var("WGRNN_TUNE").is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0");
        Self {
            forced_recurrent: Mutex::new(forced.recurrent),
            forced_gemm: Mutex::new(forced.gemm),
            tuning_off,
            ..Self::default()
        }
    }

    /// Forces `kernel` for every later recurrent launch, or lifts the force (`None`).
    pub(crate) fn force_recurrent(&self, kernel: Option<RecurrentKernel>) {
        *lock(&self.forced_recurrent) = kernel;
    }

    /// Forces `variant` for every later GEMM, or lifts the force (`None`).
    pub(crate) fn force_gemm(&self, variant: Option<GemmVariant>) {
        *lock(&self.forced_gemm) = variant;
    }

    /// The forced recurrent kernel, if any.
    pub(crate) fn forced_recurrent(&self) -> Option<RecurrentKernel> {
        *lock(&self.forced_recurrent)
    }

    /// The forced GEMM variant, if any.
    pub(crate) fn forced_gemm(&self) -> Option<GemmVariant> {
        *lock(&self.forced_gemm)
    }
}

/// Timed rounds after the one that builds the pipelines; each candidate's
/// best counts (the others absorb a cold cache or a busy machine).
pub(crate) const RUNS: usize = 5;

/// A candidate whose best time is more than this many times the best of
/// all after a timed round sits out the later rounds: it cannot win, and on
/// lavapipe the sequence kernels with rows per workgroup took 4–13× the
/// time of the others, most of a round.
const HOPELESS: f64 = 2.0;

/// The best time of each of `candidates` candidates over [`RUNS`] rounds,
/// after one untimed round that builds the pipelines. `run(i)` runs
/// candidate i once; each call is timed from an idle device to an idle
/// device. A round runs every candidate once, so a host whose speed drifts
/// (a noisy neighbour, a clock change) slows all of them alike instead of
/// whichever came last; [`HOPELESS`] candidates sit out after the first.
pub(crate) fn best_times(
    device: &Device,
    candidates: usize,
    mut run: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Duration>> {
    let mut best = vec![Duration::MAX; candidates];
    for round in 0..=RUNS {
        let fastest = best.iter().min().copied().unwrap_or(Duration::MAX);
        for (i, best) in best.iter_mut().enumerate() {
            if round > 1 && best.as_secs_f64() > fastest.as_secs_f64() * HOPELESS {
                continue;
            }
            device.synchronize()?;
            let start = Instant::now();
            run(i)?;
            device.synchronize()?;
            if round > 0 {
                *best = (*best).min(start.elapsed());
            }
        }
    }
    Ok(best)
}

/// What a cached choice is valid for: the adapter, its driver and backend,
/// whether the kernels use subgroups (they are other kernels, with other
/// speeds), this version of wgrnn, the text of the kernels that are tuned
/// (a changed kernel, even within a version, is timed again) and the
/// tuners' margins and rounds (a changed rule decides again).
pub(crate) fn adapter_key(device: &Device) -> String {
    let info = device.info();
    let subgroups = info.subgroup_size.map_or("no subgroups".to_string(), |s| format!("subgroups {s}"));
    format!(
        "{} | {} | {} | {subgroups} | wgrnn {} | kernels {:016x} | margins step {} gemm {} | rounds {RUNS}",
        info.name,
        info.driver,
        info.backend,
        env!("CARGO_PKG_VERSION"),
        kernels_revision(),
        crate::rnn::tune::STEP_MARGIN,
        crate::ops::gemm_tune::DEFAULT_MARGIN
    )
}

/// FNV-1a of every source the tuned kernels are built from (the recurrent
/// templates, each cell's equations, the GEMM shaders), hashed once per
/// process: the key is built on every tuned launch.
fn kernels_revision() -> u64 {
    static REVISION: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *REVISION.get_or_init(|| {
        use crate::kernels::{
            GEMM_B_STORAGE, GEMM_B_UNIFORM, GEMM_NO_CONTINUE, GEMM_PARAMS, GEMM_VEC4_COMMON, PRELUDE, RECURRENT,
            RECURRENT_BACKWARD, RECURRENT_BACKWARD_SUBGROUP, RECURRENT_FORWARD, RECURRENT_FORWARD_SUBGROUP,
        };
        let cells = crate::cells::all_cells().into_iter().map(|c| c.wgsl);
        let gemm = [
            GEMM_PARAMS,
            GEMM_VEC4_COMMON,
            GEMM_B_STORAGE,
            GEMM_NO_CONTINUE,
            GEMM_B_UNIFORM,
            include_str!("../shaders/gemm.wgsl"),
            include_str!("../shaders/gemm_vec4.wgsl"),
            include_str!("../shaders/gemm_subgroup.wgsl"),
        ];
        [
            PRELUDE,
            RECURRENT,
            RECURRENT_FORWARD,
            RECURRENT_BACKWARD,
            RECURRENT_FORWARD_SUBGROUP,
            RECURRENT_BACKWARD_SUBGROUP,
        ]
        .into_iter()
        .chain(cells)
        .chain(gemm)
        .flat_map(str::bytes)
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
    })
}

/// The cache file, if a place for it is known.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WGRNN_TUNE_CACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|p| !p.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wgrnn").join("tune.json"))
}

/// The whole file: adapter key → shape key → variant.
type CacheFile = BTreeMap<String, BTreeMap<String, String>>;

/// This adapter's cached choices; an unreadable or corrupt file is an
/// empty cache (it is only a cache: timing again is always correct).
pub(crate) fn read_cache(adapter: &str) -> BTreeMap<String, String> {
    let Some(path) = cache_path() else { return BTreeMap::new() };
    let file: CacheFile = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    file.get(adapter).cloned().unwrap_or_default()
}

/// Adds `choices` to this adapter's entries in the file, keeping the
/// others (the other family's, other adapters'). A file that cannot be
/// written costs only a re-tune in the next process.
pub(crate) fn write_cache(adapter: &str, choices: &BTreeMap<String, String>) {
    let Some(path) = cache_path() else { return };
    let mut file: CacheFile =
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    file.entry(adapter.to_string()).or_default().extend(choices.iter().map(|(k, v)| (k.clone(), v.clone())));
    let Ok(text) = serde_json::to_vec_pretty(&file) else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Written whole under a unique name and renamed, so a reader never sees
    // half a file.
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_env_values_parse() {
        assert_eq!(ForcedKernels::parse("").unwrap(), ForcedKernels::default());
        let both = ForcedKernels::parse(" recurrent=sequence/4 , gemm=vec4,").unwrap();
        assert_eq!(both.recurrent, Some(RecurrentKernel::Sequence { rows: 4 }));
        assert_eq!(both.gemm, Some(GemmVariant::Vec4));
        assert_eq!(ForcedKernels::parse("recurrent=step").unwrap().recurrent, Some(RecurrentKernel::Step));
        assert_eq!(ForcedKernels::parse("gemm=subgroup_window").unwrap().gemm, Some(GemmVariant::SubgroupWindow));
        for bad in ["step", "gemm=fast", "recurrent=fast", "optim=flat"] {
            assert!(matches!(ForcedKernels::parse(bad), Err(Error::Config(_))), "{bad:?} accepted");
        }
    }
}
