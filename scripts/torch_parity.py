#!/usr/bin/env python3
# torch_parity.py — PyTorch side of wgrnn's recurrent-layer parity checks.
# Fixture format version: 2 (metadata key `fixture_version`; 2 adds the
# optional `proj_size` metadata, LSTM projections, default 0).
#
#   python3 scripts/torch_parity.py fixtures
#       writes tests/fixtures/torch_<name>.safetensors: the torch_parity IN
#       tensors plus `expected_<OUT name>` computed by torch in float64 from
#       the same float32 values; tests/torch_fixtures.rs compares against them
#       (CI needs no torch).
#   python3 scripts/torch_parity.py check [COUNT] [SEED]
#       random configurations (modes, 1-3 layers, bidirectional, unsorted
#       lengths, odd sizes) run through `cargo run --release --example
#       torch_parity`; prints the worst forward and gradient errors,
#       relative to max(1, |reference|), and fails past 1e-4 / 1e-3.
#
# Needs: torch, numpy, safetensors.
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_VERSION = "2"
FORWARD_TOL = 1e-4
GRAD_TOL = 1e-3


def make_case(mode, layers, bidirectional, I, H, lengths, T, seed, proj=0):
    """IN tensors (float32) and the float64 torch results. `proj` > 0: an
    LSTM with projections (h has `proj` features, c keeps H)."""
    g = torch.Generator().manual_seed(seed)
    B, D = len(lengths), 2 if bidirectional else 1
    S = proj or H  # features of h
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=True)
    if mode == "lstm":
        m = torch.nn.LSTM(I, H, proj_size=proj, **kw)
    elif mode == "gru":
        m = torch.nn.GRU(I, H, **kw)
    else:
        m = torch.nn.RNN(I, H, nonlinearity=mode.split("_")[1], **kw)
    # Weights: float32 values (what wgrnn gets), used in float64 by torch.
    with torch.no_grad():
        for p in m.parameters():
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / H**0.5)
    m = m.double()

    def rnd(*shape):
        return (torch.rand(shape, generator=g) * 2 - 1).float()

    x = rnd(B, T, I)
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    ins = {
        "input": x,
        "lengths": torch.tensor(lengths, dtype=torch.int64),
        "h0": rnd(layers * D, B, S),
        "grad_output": rnd(B, T, D * S),
        "grad_h_n": rnd(layers * D, B, S),
    }
    if mode == "lstm":
        ins["c0"] = rnd(layers * D, B, H)
        ins["grad_c_n"] = rnd(layers * D, B, H)
    for name, p in m.named_parameters():
        ins[name] = p.detach().float()

    xd = x.double().requires_grad_(True)
    h0 = ins["h0"].double().requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xd, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    if mode == "lstm":
        c0 = ins["c0"].double().requires_grad_(True)
        out_p, (hn, cn) = m(packed, (h0, c0))
    else:
        out_p, hn = m(packed, h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=True, total_length=T)
    loss = (out * ins["grad_output"].double()).sum() + (hn * ins["grad_h_n"].double()).sum()
    if mode == "lstm":
        loss = loss + (cn * ins["grad_c_n"].double()).sum()
    loss.backward()
    expected = {"output": out, "h_n": hn, "grad_input": xd.grad, "grad_h0": h0.grad}
    if mode == "lstm":
        expected.update(c_n=cn, grad_c0=c0.grad)
    for name, p in m.named_parameters():
        expected["grad_" + name] = p.grad
    meta = {"mode": mode, "num_layers": str(layers), "bidirectional": str(bidirectional).lower(),
            "fixture_version": FIXTURE_VERSION}
    if proj:
        meta["proj_size"] = str(proj)
    np_ins = {k: v.detach().numpy() for k, v in ins.items()}
    np_expected = {k: v.detach().numpy() for k, v in expected.items()}
    return np_ins, np_expected, meta


def worst(got, expected, names):
    err, where = 0.0, ""
    for n in names:
        e = np.max(np.abs(got[n].astype(np.float64) - expected[n]) / np.maximum(1.0, np.abs(expected[n])))
        if e > err:
            err, where = float(e), n
    return err, where


FIXTURES = [
    # name, mode, layers, bidirectional, I, H, lengths, T, seed[, proj_size]
    ("lstm_l2_bi", "lstm", 2, True, 3, 5, [4, 6, 1], 6, 1),
    ("lstm_proj_l2_bi", "lstm", 2, True, 3, 5, [4, 6, 1], 6, 6, 3),
    ("gru_l2_bi", "gru", 2, True, 3, 5, [4, 6, 1], 6, 2),
    ("rnn_tanh_l1", "rnn_tanh", 1, False, 7, 4, [2, 5], 5, 3),
    ("rnn_relu_l3_bi", "rnn_relu", 3, True, 2, 3, [3, 1, 2, 3], 3, 4),
    ("lstm_l1_h31", "lstm", 1, False, 1, 31, [2, 1, 2], 2, 5),
]


def fixtures():
    out_dir = os.path.join(ROOT, "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    for name, mode, layers, bidi, I, H, lengths, T, seed, *proj in FIXTURES:
        ins, expected, meta = make_case(mode, layers, bidi, I, H, lengths, T, seed, *proj)
        tensors = dict(ins)
        tensors.update({"expected_" + k: v for k, v in expected.items()})
        save_file(tensors, os.path.join(out_dir, f"torch_{name}.safetensors"), metadata=meta)
        print("wrote", name)


def check(count, seed):
    rng = random.Random(seed)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "torch_parity"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "torch_parity")
    worst_fwd = worst_grad = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(count):
            mode = rng.choice(["lstm", "gru", "rnn_tanh", "rnn_relu"])
            layers, bidi = rng.randint(1, 3), rng.random() < 0.5
            I, H, B, T = rng.randint(1, 40), rng.randint(1, 70), rng.randint(1, 9), rng.randint(1, 12)
            lengths = [rng.randint(1, T) for _ in range(B)]
            # A third of the LSTMs project h to P < H features.
            proj = rng.randint(1, H - 1) if mode == "lstm" and H > 1 and rng.random() < 1 / 3 else 0
            ins, expected, meta = make_case(mode, layers, bidi, I, H, lengths, T, rng.randint(0, 10**6), proj)
            inp, outp = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
            save_file(ins, inp, metadata=meta)
            subprocess.run([exe, inp, outp], check=True, stderr=subprocess.DEVNULL)
            got = load_file(outp)
            fwd_names = [n for n in expected if not n.startswith("grad_")]
            grad_names = [n for n in expected if n.startswith("grad_")]
            missing = set(expected) - set(got)
            assert not missing, f"OUT lacks {missing}"
            ef, wf = worst(got, expected, fwd_names)
            eg, wg = worst(got, expected, grad_names)
            print(f"{case:3d} {mode:8s} L={layers} bidir={bidi!s:5s} I={I:2d} H={H:2d} P={proj:2d} B={B} T={T:2d} "
                  f"lengths={lengths}: forward {ef:.2e} ({wf}), grad {eg:.2e} ({wg})")
            worst_fwd, worst_grad = max(worst_fwd, ef), max(worst_grad, eg)
    print(f"worst forward error {worst_fwd:.3e}, worst gradient error {worst_grad:.3e} over {count} configurations")
    if worst_fwd > FORWARD_TOL or worst_grad > GRAD_TOL:
        sys.exit(1)


if __name__ == "__main__":
    torch.set_num_threads(2)
    if len(sys.argv) >= 2 and sys.argv[1] == "fixtures":
        fixtures()
    elif len(sys.argv) >= 2 and sys.argv[1] == "check":
        check(int(sys.argv[2]) if len(sys.argv) > 2 else 40, int(sys.argv[3]) if len(sys.argv) > 3 else 12345)
    else:
        sys.exit(__doc__ or "usage: torch_parity.py fixtures | check [COUNT] [SEED]")
