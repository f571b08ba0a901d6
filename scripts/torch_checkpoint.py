#!/usr/bin/env python3
# torch_checkpoint.py — checkpoint interoperability between wgrnn and PyTorch.
# Fixture format version: 1 (metadata key `fixture_version`).
#
#   python3 scripts/torch_checkpoint.py fixture
#       writes tests/fixtures/torch_classifier.safetensors: the state dict of
#       a PyTorch text classifier (attributes embedding, rnn, fc; last-state
#       pooling) saved with safetensors, plus `input_ids`, `lengths` and the
#       logits torch computes in float64 (`expected_logits`).
#       tests/torch_checkpoint.rs loads it with wgrnn::checkpoint::load.
#   python3 scripts/torch_checkpoint.py check
#       the other way: for every mode, wgrnn writes a checkpoint
#       (examples/export_classifier.rs); torch loads it with a strict
#       load_state_dict and must reproduce wgrnn's logits.
# Needs: torch, numpy, safetensors.
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Classifier(torch.nn.Module):
    """The PyTorch twin of wgrnn::models::SequenceClassifier (last-state pooling)."""

    def __init__(self, mode, vocab, embed, hidden, classes, layers, bidirectional, padding_idx):
        super().__init__()
        self.mode, self.dirs = mode, 2 if bidirectional else 1
        self.embedding = torch.nn.Embedding(vocab, embed, padding_idx=padding_idx)
        kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=True)
        if mode == "lstm":
            self.rnn = torch.nn.LSTM(embed, hidden, **kw)
        elif mode == "gru":
            self.rnn = torch.nn.GRU(embed, hidden, **kw)
        else:
            self.rnn = torch.nn.RNN(embed, hidden, nonlinearity=mode.split("_")[1], **kw)
        self.fc = torch.nn.Linear(self.dirs * hidden, classes)

    def forward(self, ids, lengths):
        x = self.embedding(ids)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if self.mode == "lstm" else state
        return self.fc(torch.cat([h_n[-self.dirs + d] for d in range(self.dirs)], dim=1))


def fixture():
    torch.manual_seed(7)
    m = Classifier("lstm", 30, 5, 6, 3, 2, True, 0)
    ids = torch.randint(1, 30, (4, 8))
    lengths = torch.tensor([8, 2, 5, 1])
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    expected = m.double()(ids, lengths).detach()
    tensors = {k: v.float().contiguous() for k, v in m.state_dict().items()}
    tensors.update(input_ids=ids, lengths=lengths, expected_logits=expected)
    meta = dict(mode="lstm", vocab="30", embed_dim="5", hidden="6", classes="3", layers="2",
                bidirectional="true", padding_idx="0", fixture_version="1")
    path = os.path.join(ROOT, "tests", "fixtures", "torch_classifier.safetensors")
    save_file(tensors, path, metadata=meta)
    print("wrote", path)


def check():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "export_classifier"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "export_classifier")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ["lstm", "gru", "rnn_tanh", "rnn_relu"]:
            for layers, bidi in [(1, False), (2, True)]:
                model_path, io_path = os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "io.safetensors")
                args = [exe, model_path, io_path, mode, str(layers)] + (["bidirectional"] if bidi else [])
                subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
                with safe_open(io_path, "pt") as f:
                    meta = f.metadata()
                io = load_file(io_path)
                m = Classifier(mode, int(meta["vocab"]), int(meta["embed_dim"]), int(meta["hidden"]),
                               int(meta["classes"]), layers, bidi, int(meta["padding_idx"]))
                m.load_state_dict(load_file(model_path), strict=True)
                got = m.double()(io["input_ids"].long(), io["lengths"].long()).detach()
                err = (got - io["logits"].double()).abs().max().item()
                worst = max(worst, err)
                print(f"{mode:8s} L={layers} bidir={bidi!s:5s}: strict load ok, max |torch − wgrnn| logits = {err:.2e}")
    print(f"worst {worst:.2e}")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    {"fixture": fixture, "check": check}.get(sys.argv[1] if len(sys.argv) > 1 else "", lambda: sys.exit("usage: torch_checkpoint.py fixture | check"))()
