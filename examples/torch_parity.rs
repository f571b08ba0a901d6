//! `cargo run --release --example torch_parity -- IN.safetensors OUT.safetensors`
//!
//! Runs one recurrent stack forward and backward on PyTorch-written inputs
//! and writes the outputs and gradients under PyTorch's names (the contract
//! in ../shared/DESIGN.md §3.1, implemented by `wgrnn::rnn::parity`, plus
//! the optional metadata `proj_size`: an LSTM with projections, whose h0,
//! grad_h_n and output have P features and which has `weight_hr_l{k}`).
//! Bad input exits non-zero with a message naming the problem.

use std::process::ExitCode;

fn run(input: &str, output: &str) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("reading {input}: {e}"))?;
    let device = wgrnn::Device::new().map_err(|e| e.to_string())?;
    let out = wgrnn::rnn::parity::torch_parity(&device, &bytes).map_err(|e| format!("{input}: {e}"))?;
    // Atomic write: a reader never sees a half-written file.
    let tmp = format!("{output}.tmp");
    std::fs::write(&tmp, out).map_err(|e| format!("writing {tmp}: {e}"))?;
    std::fs::rename(&tmp, output).map_err(|e| format!("renaming {tmp} to {output}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: torch_parity IN.safetensors OUT.safetensors");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
