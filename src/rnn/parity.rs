//! The `torch_parity` contract (../shared/DESIGN.md §3.1): run one recurrent
//! stack forward and backward on tensors from a safetensors file written by
//! PyTorch, and write the results under PyTorch's names.
//!
//! IN metadata: `mode` (lstm | gru | rnn_tanh | rnn_relu), `num_layers`,
//! `bidirectional` (true | false). IN tensors: every parameter
//! (`weight_ih_l0`, …), `input` (B, T, I), `lengths` (B) int64, `h0`,
//! `c0` (LSTM), `grad_output` (B, T, D·H), `grad_h_n`, `grad_c_n` (LSTM).
//! OUT tensors: `output`, `h_n`, `c_n` (LSTM), `grad_input`, `grad_h0`,
//! `grad_c0` (LSTM) and `grad_<parameter name>` for every parameter.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::rnn::layer::{Rnn, RnnConfig};
use crate::rnn::spec::{RnnMode, RnnSpec};
use crate::tensor::Tensor;

fn format_err(message: impl Into<String>) -> Error {
    Error::Format(message.into())
}

/// Host copy of one f32 tensor read from the file.
struct HostTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn read_f32(st: &SafeTensors<'_>, name: &str) -> Result<HostTensor> {
    let view = st.tensor(name).map_err(|_| format_err(format!("missing tensor `{name}`")))?;
    if view.dtype() != Dtype::F32 {
        return Err(format_err(format!("tensor `{name}` must be f32, got {:?}", view.dtype())));
    }
    Ok(HostTensor { shape: view.shape().to_vec(), data: bytemuck::pod_collect_to_vec(view.data()) })
}

fn expect_shape(name: &str, t: &HostTensor, shape: &[usize]) -> Result<()> {
    if t.shape != shape {
        return Err(format_err(format!("tensor `{name}` must have shape {shape:?}, got {:?}", t.shape)));
    }
    Ok(())
}

fn read_lengths(st: &SafeTensors<'_>) -> Result<Vec<usize>> {
    let view = st.tensor("lengths").map_err(|_| format_err("missing tensor `lengths`"))?;
    let values: Vec<i64> = match view.dtype() {
        Dtype::I64 => bytemuck::pod_collect_to_vec(view.data()),
        Dtype::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(view.data()).into_iter().map(i64::from).collect(),
        other => return Err(format_err(format!("tensor `lengths` must be int64, got {other:?}"))),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| usize::try_from(v).map_err(|_| format_err(format!("lengths[{i}] = {v} is negative"))))
        .collect()
}

fn metadata(bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

fn meta_value<'a>(meta: &'a HashMap<String, String>, key: &str) -> Result<&'a str> {
    meta.get(key).map(String::as_str).ok_or_else(|| format_err(format!("missing metadata key `{key}`")))
}

/// Runs the contract on the bytes of IN; returns the bytes of OUT.
pub fn torch_parity(device: &Device, input_file: &[u8]) -> Result<Vec<u8>> {
    let meta = metadata(input_file)?;
    let st = SafeTensors::deserialize(input_file).map_err(|e| format_err(format!("not a safetensors file: {e}")))?;
    let mode = RnnMode::parse(meta_value(&meta, "mode")?)?;
    let num_layers: usize = meta_value(&meta, "num_layers")?
        .parse()
        .map_err(|_| format_err(format!("metadata `num_layers` = {:?} is not a number", meta["num_layers"])))?;
    let bidirectional = match meta_value(&meta, "bidirectional")? {
        "true" => true,
        "false" => false,
        other => return Err(format_err(format!("metadata `bidirectional` must be true or false, got {other:?}"))),
    };

    let input = read_f32(&st, "input")?;
    let &[b, t, i] = input.shape.as_slice() else {
        return Err(format_err(format!("tensor `input` must be (B, T, I), got {:?}", input.shape)));
    };
    // Optional (PyTorch's default 0): LSTM projections, weight_hh (G, P).
    let proj_size: usize = match meta.get("proj_size") {
        None => 0,
        Some(v) => v.parse().map_err(|_| format_err(format!("metadata `proj_size` = {v:?} is not a number")))?,
    };
    let w_hh0 = read_f32(&st, "weight_hh_l0")?;
    let g = *w_hh0.shape.first().ok_or_else(|| format_err("tensor `weight_hh_l0` must be (G, H) or (G, P)"))?;
    if g == 0 || g % mode.gates() != 0 {
        return Err(format_err(format!(
            "tensor `weight_hh_l0` has {g} rows, not a multiple of {} gates",
            mode.gates()
        )));
    }
    let h = g / mode.gates();
    let spec = RnnSpec { mode, input_size: i, hidden_size: h, num_layers, bidirectional, proj_size };
    spec.validate()?;
    let dirs = spec.directions();

    let mut weights = Vec::new();
    for layer in 0..num_layers {
        for dir in 0..dirs {
            let mut values = Vec::new();
            for (name, shape) in spec.parameter_shapes(layer, dir) {
                let t = read_f32(&st, &name)?;
                expect_shape(&name, &t, &shape)?;
                values.push(t.data);
            }
            weights.push(values);
        }
    }
    let rnn = Rnn::from_host(device, RnnConfig { spec, dropout: 0.0, seed: 0 }, &weights)?;

    let lengths = read_lengths(&st)?;
    // h has S features (P with a projection), the cell state H.
    let (state_shape, cell_shape) = ([num_layers * dirs, b, spec.state_size()], [num_layers * dirs, b, h]);
    let upload = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let t = read_f32(&st, name)?;
        expect_shape(name, &t, shape)?;
        Tensor::from_slice(device, &t.data, shape)
    };
    let lstm = mode.has_cell_state();
    let x = Tensor::from_slice(device, &input.data, &input.shape)?;
    let h0 = upload("h0", &state_shape)?;
    let c0 = lstm.then(|| upload("c0", &cell_shape)).transpose()?;
    let grad_output = upload("grad_output", &[b, t, dirs * spec.state_size()])?;
    let grad_h_n = upload("grad_h_n", &state_shape)?;
    let grad_c_n = lstm.then(|| upload("grad_c_n", &cell_shape)).transpose()?;

    let fwd = rnn.forward(&x, &lengths, Some(&h0), c0.as_ref(), None)?;
    let grads = rnn.backward(&fwd, &grad_output, Some(&grad_h_n), grad_c_n.as_ref())?;

    let mut out: Vec<(String, Tensor)> = vec![
        ("output".into(), fwd.output.clone()),
        ("h_n".into(), fwd.h_n.clone()),
        ("grad_input".into(), grads.input.clone()),
        ("grad_h0".into(), grads.h0.clone()),
    ];
    if let (Some(c_n), Some(g_c0)) = (&fwd.c_n, &grads.c0) {
        out.push(("c_n".into(), c_n.clone()));
        out.push(("grad_c0".into(), g_c0.clone()));
    }
    for (idx, g) in grads.params.iter().enumerate() {
        let names = spec.parameter_shapes(idx / dirs, idx % dirs);
        for ((name, _), t) in names.into_iter().zip(g) {
            out.push((format!("grad_{name}"), t.clone()));
        }
    }
    write_f32_tensors(&out)
}

/// Serialises f32 tensors to safetensors bytes (downloads each once).
pub fn write_f32_tensors(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    write_f32_tensors_with_metadata(tensors, None)
}

/// [`write_f32_tensors`] with a metadata map.
pub fn write_f32_tensors_with_metadata(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let host: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.shape().to_vec(), bytemuck::cast_slice(&t.to_vec()?).to_vec())))
        .collect::<Result<_>>()?;
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = host
        .iter()
        .map(|(n, shape, data)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| format_err(format!("serialising `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, metadata).map_err(|e| format_err(format!("serialising: {e}")))
}
