//! Checkpoints as safetensors files with PyTorch's parameter names, so a
//! PyTorch model with the same attribute names loads them with
//! `model.load_state_dict(safetensors.torch.load_file(path))`, and
//! PyTorch-saved weights load here. Optimizer state is stored beside the
//! weights under `optimizer.<param>.<state>` with the step count in the
//! metadata, so a resumed run continues as if it never stopped.
//!
//! Writes are atomic and durable (see [`save`]). A truncated or corrupt
//! file, a missing tensor, a wrong shape or dtype is an [`Error::Format`]
//! naming the problem, and nothing is modified when loading fails.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::nn::{named_parameters, Module};
use crate::optim::Optimizer;
use crate::rnn::parity::write_f32_tensors_with_metadata;
use crate::tensor::Tensor;

/// Format tag stored in the metadata.
const FORMAT: &str = "wgrnn-checkpoint-1";
/// Prefix of optimizer state tensors.
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Prefix of running-state tensors ([`save_with_state`]).
const STATE_PREFIX: &str = "state.";

fn err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Format(format!("checkpoint {}: {message}", path.display()))
}

/// Metadata keys the checkpoint itself writes; caller metadata may not use them.
const RESERVED_KEYS: [&str; 4] = ["format", "optimizer", "optimizer_step", "optimizer_lr"];

/// Writes the module's parameters (and the optimizer's state) to `path`.
///
/// The write survives a crash at any moment: the bytes go to a temporary
/// file beside `path` (`<name>.<pid>-<n>.tmp`, created exclusively, so two
/// writers never share one), which is flushed to disk, renamed over `path`,
/// and the folder is flushed so the rename itself lasts (on unix). A
/// process killed mid-write leaves the previous `path` whole, plus at most
/// that temporary file, which no load ever reads; a write that fails
/// removes its temporary file.
pub fn save(path: impl AsRef<Path>, module: &dyn Module, optimizer: Option<&mut Optimizer>) -> Result<()> {
    save_with_metadata(path, module, optimizer, &BTreeMap::new())
}

/// [`save`] plus caller metadata (vocabulary, label names, architecture,
/// trainer state) stored as safetensors string metadata, so one file is
/// enough to rebuild and use the model. Read it back with [`metadata`].
pub fn save_with_metadata(
    path: impl AsRef<Path>,
    module: &dyn Module,
    optimizer: Option<&mut Optimizer>,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    save_with_state(path, module, optimizer, extra, &[])
}

/// [`save_with_metadata`] plus running state that is not a parameter (a
/// language model's carried h/c), stored as `state.<name>` tensors and
/// read back with [`running_state`]; [`load`] ignores them.
pub fn save_with_state(
    path: impl AsRef<Path>,
    module: &dyn Module,
    optimizer: Option<&mut Optimizer>,
    extra: &BTreeMap<String, String>,
    state: &[(String, Tensor)],
) -> Result<()> {
    let path = path.as_ref();
    if let Some(key) = extra.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
        return Err(Error::Config(format!("checkpoint metadata key `{key}` is reserved")));
    }
    let mut tensors: Vec<(String, Tensor)> = named_parameters(module).into_iter().map(|(n, p)| (n, p.value)).collect();
    let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert("format".to_string(), FORMAT.to_string());
    if let Some(opt) = optimizer {
        meta.insert("optimizer".into(), opt.algorithm().name().into());
        meta.insert("optimizer_step".into(), opt.applied_steps()?.to_string());
        meta.insert("optimizer_lr".into(), opt.lr().to_string());
        for (name, t) in opt.named_state()? {
            tensors.push((format!("{OPTIMIZER_PREFIX}{name}"), t));
        }
    }
    tensors.extend(state.iter().map(|(name, t)| (format!("{STATE_PREFIX}{name}"), t.clone())));
    let bytes = write_f32_tensors_with_metadata(&tensors, Some(meta))?;
    write_durably(path, &bytes)
}

/// Replaces `path` with `bytes` so that a crash or power loss at any moment
/// leaves either the old file or the new one (see [`save`]).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Makes temporary names unique within the process; the pid separates
    // processes, and `create_new` skips a name a dead process left behind.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| err(path, "not a file name"))?.to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!("{name}.{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(path, format!("creating {}: {e}", tmp.display()))),
        }
    };
    // sync_all before the rename: otherwise a power loss can leave the new
    // name pointing at a file whose data never reached the disk.
    let written =
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("writing {}: {e}", tmp.display()));
    drop(file);
    let renamed =
        written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| format!("renaming {}: {e}", tmp.display())));
    if let Err(message) = renamed {
        std::fs::remove_file(&tmp).ok();
        return Err(err(path, message));
    }
    sync_dir(dir).map_err(|e| err(path, format!("flushing the folder {}: {e}", dir.display())))?;
    remove_orphaned_temporaries(dir, &name);
    Ok(())
}

/// Removes the temporary files of `name` that killed writers left in `dir`:
/// those whose process is gone (Linux: no `/proc/<pid>`). A live writer's
/// file is never touched, and failures are ignored: an orphan costs disk
/// space, never correctness.
fn remove_orphaned_temporaries(dir: &Path, name: &str) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!("{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split_once('-').and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_file(entry.path()).ok();
        }
    }
}

/// Flushes a folder's entries (a rename) to disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    use std::io::ErrorKind;
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems cannot flush a folder; the rename stands.
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => Ok(()),
        other => other,
    }
}

/// Elsewhere a folder cannot be opened as a file: the rename is all there is.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The string metadata of a checkpoint (what [`save_with_metadata`] stored,
/// plus `format` and the optimizer keys), without loading any tensor. A
/// file that is not a wgrnn checkpoint is an error.
pub fn metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("reading: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    let meta: BTreeMap<String, String> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => Ok(meta),
        other => Err(err(path, format!("not a wgrnn checkpoint (format {other:?}, expected {FORMAT:?})"))),
    }
}

/// Checks from the header alone that the file holds a tensor of each
/// expected name and shape (an architecture read from the file's own
/// metadata), before a model of that size is built: a corrupt size in the
/// metadata is then an error naming the tensor, not an allocation of
/// whatever size it says. Tensors beyond `expected` are allowed.
pub fn check_shapes(path: impl AsRef<Path>, expected: &[(String, Vec<usize>)]) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("reading: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    for (name, shape) in expected {
        match meta.info(name) {
            None => return Err(err(path, format!("missing tensor `{name}`"))),
            Some(info) if info.shape != *shape => {
                return Err(err(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, the architecture in the metadata expects {shape:?}",
                        info.shape
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A tensor read back to the host: what [`running_state`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Name without the `state.` prefix.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// The running-state tensors [`save_with_state`] stored, in name order;
/// empty when there are none. A non-f32 or non-finite one is an error.
pub fn running_state(path: impl AsRef<Path>) -> Result<Vec<HostTensor>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("reading: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    let mut names: Vec<String> =
        st.names().into_iter().filter(|n| n.starts_with(STATE_PREFIX)).map(str::to_string).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let view = st.tensor(&name).map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(err(path, format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
            }
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(path, format!("tensor `{name}` holds a non-finite value at element {i}")));
            }
            Ok(HostTensor { name: name[STATE_PREFIX.len()..].to_string(), shape: view.shape().to_vec(), values })
        })
        .collect()
}

/// Loads parameters (and optimizer state, step count and learning rate,
/// when `optimizer` is given) from `path`. Every tensor is checked before
/// any value is written (the optimizer may allocate its zero state first).
pub fn load(path: impl AsRef<Path>, module: &dyn Module, optimizer: Option<&mut Optimizer>) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("reading: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| err(path, e))?;
    let meta = meta.metadata().clone().unwrap_or_default();

    let mut targets: Vec<(String, Tensor)> = named_parameters(module).into_iter().map(|(n, p)| (n, p.value)).collect();
    let mut step = None;
    if let Some(opt) = optimizer {
        let saved = meta.get("optimizer").map(String::as_str);
        if saved != Some(opt.algorithm().name()) {
            return Err(err(
                path,
                format!("holds optimizer state of {saved:?}, the optimizer is {:?}", opt.algorithm().name()),
            ));
        }
        let s: u32 = meta
            .get("optimizer_step")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| err(path, "missing or bad metadata `optimizer_step`"))?;
        let lr: f32 = meta
            .get("optimizer_lr")
            .and_then(|v| v.parse().ok())
            .filter(|lr: &f32| lr.is_finite() && *lr >= 0.0)
            .ok_or_else(|| err(path, "missing or bad metadata `optimizer_lr`"))?;
        for (name, t) in opt.named_state()? {
            targets.push((format!("{OPTIMIZER_PREFIX}{name}"), t));
        }
        step = Some((opt, s, lr));
    }
    // Check everything first: a failed load changes nothing.
    let mut data = Vec::with_capacity(targets.len());
    for (name, t) in &targets {
        let view = st.tensor(name).map_err(|_| err(path, format!("missing tensor `{name}`")))?;
        if view.dtype() != Dtype::F32 {
            return Err(err(path, format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        if view.shape() != t.shape() {
            return Err(err(
                path,
                format!("tensor `{name}` has shape {:?}, the model expects {:?}", view.shape(), t.shape()),
            ));
        }
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(path, format!("tensor `{name}` holds a non-finite value at element {i}")));
        }
        data.push(values);
    }
    for ((_, t), values) in targets.iter().zip(&data) {
        t.write(values)?;
    }
    if let Some((opt, s, lr)) = step {
        opt.set_steps(s)?;
        opt.set_lr(lr)?;
    }
    Ok(())
}
