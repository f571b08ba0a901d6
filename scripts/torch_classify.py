#!/usr/bin/env python3
"""PyTorch reference for wgrnn's text-classification accuracy table.

Version 2 (wgrnn issue 7; v2: epoch shuffles as `Rng::for_stream`). Runs the same models on the same splits with the
same data semantics as the `agnews` and `imdb` examples, so the accuracies
compare:

  AG News: file order row i -> test if i % 5 == 4 (6,080 train / 1,520
    test); text = title + " " + description with the two characters `\\n`
    replaced by a space; classes "1".."4" -> 0..3.
  IMDB: the dataset's own train/test; "<br />" -> " "; labels neg=0, pos=1.
  Vectorizer (Keras TextVectorization): lowercase, delete ASCII punctuation,
    split on whitespace; vocabulary from the training texts only, count
    descending then token (UTF-8 bytes) ascending; id 0 padding, 1 OOV;
    20,000 ids in all. AG News keeps every token; IMDB keeps the last N.
    A text with no tokens is one padding step.
  Batching: a seeded shuffle per epoch, padded batch-first, packed with
    pack_padded_sequence(enforce_sorted=False), so padding costs nothing.
    Evaluation on the test part after every epoch in batches of 256.

Runs (PyTorch figures from the issue in parentheses):
  agnews_rnn_mean  RNN tanh, mean pool, E64 H32, batch 16, Adam 1e-3, 5 ep (0.802)
  agnews_lstm_last LSTM, last hidden, E64 H32, batch 16, Adam 1e-3, 5 ep (0.791)
  agnews_bilstm2   2-layer bi-LSTM, last hidden, E128 H64, batch 64, 5 ep (0.806)
  imdb_seed001     the Keras notebook: SimpleRNN(5, relu), identity recurrent,
                   N(0, 0.001) input weights, one zero bias, U(-0.05, 0.05)
                   embedding of 50, Dense(1) glorot + sigmoid, last 30 tokens,
                   Keras RMSprop (lr 1e-4, rho 0.9, eps 1e-7 inside the sqrt),
                   batch 32, 10 ep (0.786)
  imdb_lstm        LSTM E128 H64, last 200 tokens, batch 64, Adam 1e-3, 3 ep (0.789)

Replaying a wgrnn run: `--init OUT/init.safetensors` starts from the
weights the wgrnn example started from (it saves them), and `--wgrnn-order`
shuffles as wgrnn's TextBatches does (SplitMix64 + Fisher-Yates, one
stream per epoch as `Rng::for_stream(seed, epoch)` draws it), with the
same --seed. Then both frameworks
take the same steps on the same batches: on AG News (agnews_lstm_last) the
per-step losses agree to 2e-6 over the first 100 steps and 2e-5 over 200;
after that float rounding differences, amplified by Adam, make the two runs
drift apart like two seeds would (wgrnn's metrics.csv with --refresh-ms 0
logs every step's loss for the comparison).

Usage: python scripts/torch_classify.py RUN|all [--seed 0] [--epochs N]
       [--limit N] [--data-dir ../shared/data] [--init F --wgrnn-order]
Prints one line per epoch and `run=NAME test_accuracy=... train_seconds=...`.
"""

import argparse
import collections
import csv
import gzip
import io
import math
import string
import time

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

VOCAB = 20000
PUNCT = set(string.punctuation)

RUNS = {
    "agnews_rnn_mean": dict(data="agnews", cell="rnn_tanh", pool="mean", embed=64, hidden=32, batch=16, epochs=5),
    "agnews_lstm_last": dict(data="agnews", cell="lstm", pool="last", embed=64, hidden=32, batch=16, epochs=5),
    "agnews_bilstm2": dict(data="agnews", cell="lstm", pool="last", embed=128, hidden=64, batch=64, epochs=5,
                           layers=2, bidirectional=True),
    "imdb_seed001": dict(data="imdb", cell="rnn_relu", pool="last", embed=50, hidden=5, batch=32, epochs=10,
                         maxlen=30, keras=True),
    "imdb_lstm": dict(data="imdb", cell="lstm", pool="last", embed=128, hidden=64, batch=64, epochs=3, maxlen=200),
}


def read_csv(path):
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def agnews(data_dir):
    rows = read_csv(f"{data_dir}/ag_news/test.csv.gz")
    ex = [((title + " " + desc).replace("\\n", " ").strip(), int(cls) - 1) for cls, title, desc in rows]
    train = [e for i, e in enumerate(ex) if i % 5 != 4]
    test = [e for i, e in enumerate(ex) if i % 5 == 4]
    return train, test, 4


def imdb(data_dir):
    def load(name):
        rows = read_csv(f"{data_dir}/imdb/{name}.csv.gz")[1:]
        return [(text.replace("<br />", " ").strip(), {"neg": 0, "pos": 1}[label]) for _, _, label, text in rows]
    return load("train"), load("test"), 2


def tokens(text):
    return "".join(c for c in text.lower() if c not in PUNCT).split()


def vocabulary(texts):
    counts = collections.Counter(t for text in texts for t in tokens(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode("utf-8")))
    return {tok: i + 2 for i, (tok, _) in enumerate(ranked[: VOCAB - 2])}


def encode(texts, vocab, maxlen):
    out = []
    for text in texts:
        ids = [vocab.get(t, 1) for t in tokens(text)]
        if maxlen is not None and len(ids) > maxlen:
            ids = ids[-maxlen:]  # keep the back, like Keras pad_sequences
        out.append(ids or [0])
    return out


def batches(ids, labels, size, order):
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        lengths = torch.tensor([len(ids[r]) for r in rows])
        x = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, : len(ids[r])] = torch.tensor(ids[r])
        yield x, lengths, torch.tensor([labels[r] for r in rows])


class Classifier(nn.Module):
    def __init__(self, cfg, classes):
        super().__init__()
        keras = cfg.get("keras", False)
        layers, bi = cfg.get("layers", 1), cfg.get("bidirectional", False)
        self.embedding = nn.Embedding(VOCAB, cfg["embed"], padding_idx=None if keras else 0)
        kw = dict(num_layers=layers, bidirectional=bi, batch_first=True)
        if cfg["cell"] == "lstm":
            self.rnn = nn.LSTM(cfg["embed"], cfg["hidden"], **kw)
        else:
            self.rnn = nn.RNN(cfg["embed"], cfg["hidden"], nonlinearity=cfg["cell"][4:], **kw)
        self.fc = nn.Linear(cfg["hidden"] * (2 if bi else 1), 1 if keras else classes)
        self.pool, self.bi = cfg["pool"], bi
        self.no_pack = cfg.get("no_pack", False)
        if keras:
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
            nn.init.normal_(self.rnn.weight_ih_l0, 0.0, 0.001)
            nn.init.eye_(self.rnn.weight_hh_l0)
            nn.init.zeros_(self.rnn.bias_ih_l0)
            nn.init.zeros_(self.rnn.bias_hh_l0)
            self.rnn.bias_hh_l0.requires_grad_(False)  # Keras SimpleRNN has one bias
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x, lengths):
        if self.no_pack:
            # Every row runs over the padded length, reading padding (ids 0),
            # like wgrnn's --no-pack: the last state is the one at T-1.
            lengths = torch.full_like(lengths, x.shape[1])
        packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed)
        h_n = h[0] if isinstance(h, tuple) else h
        if self.pool == "last":
            feat = torch.cat([h_n[-2], h_n[-1]], 1) if self.bi else h_n[-1]
        else:
            padded, lens = pad_packed_sequence(out, batch_first=True)
            feat = padded.sum(1) / lens.unsqueeze(1).to(padded.dtype)
        return self.fc(feat)


class KerasRMSprop(torch.optim.Optimizer):
    """Keras's RMSprop: v = rho·v + (1−rho)·g²; w −= lr·g / sqrt(v + eps)."""

    def __init__(self, params, lr=1e-4, rho=0.9, eps=1e-7):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                v.mul_(group["rho"]).addcmul_(p.grad, p.grad, value=1 - group["rho"])
                p.sub_(group["lr"] * p.grad / torch.sqrt(v + group["eps"]))


MASK = (1 << 64) - 1


class SplitMix64:
    """wgrnn::rng::Rng."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def wgrnn_order(n, seed, epoch):
    """The row order of wgrnn's TextBatches::epoch (0-based epoch, no bucketing)."""
    rng = SplitMix64(SplitMix64(seed).next() ^ SplitMix64(epoch ^ 0xD1B54A32D192ED03).next())
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next() % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def loss_and_correct(model, x, lengths, y, binary):
    logits = model(x, lengths)
    if binary:
        logits = logits.squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y.float())
        correct = ((logits > 0).long() == y).sum().item()
    else:
        loss = nn.functional.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum().item()
    return loss, correct


def run(name, args):
    cfg = dict(RUNS[name])
    if args.epochs:
        cfg["epochs"] = args.epochs
    cfg["no_pack"] = args.no_pack
    torch.manual_seed(args.seed)
    train, test, classes = (agnews if cfg["data"] == "agnews" else imdb)(args.data_dir)
    if args.limit:
        train = train[: args.limit]
    vocab = vocabulary(t for t, _ in train)
    maxlen = cfg.get("maxlen")
    tr_ids, tr_y = encode([t for t, _ in train], vocab, maxlen), [y for _, y in train]
    te_ids, te_y = encode([t for t, _ in test], vocab, maxlen), [y for _, y in test]
    model = Classifier(cfg, classes)
    if args.init:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(args.init), strict=True)
    keras = cfg.get("keras", False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = KerasRMSprop(params) if keras else torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    acc = math.nan
    for epoch in range(1, cfg["epochs"] + 1):
        t0 = time.time()
        model.train()
        if args.wgrnn_order:
            order = wgrnn_order(len(tr_ids), args.seed, epoch - 1)
        else:
            order = torch.randperm(len(tr_ids), generator=gen).tolist()
        total, n = 0.0, 0
        for x, lengths, y in batches(tr_ids, tr_y, cfg["batch"], order):
            loss, _ = loss_and_correct(model, x, lengths, y, keras)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, lengths, y in batches(te_ids, te_y, 256, list(range(len(te_ids)))):
                correct += loss_and_correct(model, x, lengths, y, keras)[1]
        acc = correct / len(te_ids)
        print(f"epoch={epoch} train_loss={total / n:.4f} test_accuracy={acc:.4f} seconds={time.time() - t0:.1f}",
              flush=True)
    print(f"run={name} test_accuracy={acc:.4f} train_seconds={time.time() - start:.1f} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", choices=list(RUNS) + ["all"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--limit", type=int, help="use only the first N training rows (smoke tests)")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--init", help="start from these weights (a wgrnn OUT/init.safetensors)")
    ap.add_argument("--wgrnn-order", action="store_true", help="shuffle as wgrnn does (replay a wgrnn run)")
    ap.add_argument("--no-pack", action="store_true", help="run every row over the padded length")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in RUNS if args.run == "all" else [args.run]:
        run(name, args)


if __name__ == "__main__":
    main()
