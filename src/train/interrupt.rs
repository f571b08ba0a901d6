//! Stopping a run cleanly: a [`StopFlag`] is a request, not a kill. The fit
//! loop checks it after every step; when raised it finishes that step,
//! writes a checkpoint and returns. Ctrl-C raises one through a handler the
//! caller installs with [`ctrl_c_flag`] (a library must not take over a
//! host program's signals on its own).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// A shareable stop request (clones share one flag).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A lowered flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop after its current step (any thread).
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Lowers the flag (a run that stopped has consumed its request).
    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The flag Ctrl-C (SIGINT) raises, installing the handler on
/// first use. Idempotent; an error says why the handler could not be set
/// (another handler owns the signal, say).
pub fn ctrl_c_flag() -> Result<StopFlag> {
    static FLAG: OnceLock<std::result::Result<StopFlag, String>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = StopFlag::new();
        let raised = flag.clone();
        ctrlc::set_handler(move || raised.request()).map(|()| flag).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))
}
