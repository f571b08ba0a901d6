#!/usr/bin/env python3
"""PyTorch reference for wgrnn's language-model targets (issue 8).

Version 1. Runs the same models on the same data with the same definitions
as the `char_lm` and `headlines` examples, so the figures compare:

  char_lm: Tiny Shakespeare, first 90% of characters train (split at
    character len * 9 // 10), last 10% validation. Vocabulary: the training
    characters by count descending then character ascending, after id 0
    (padding) and 1 (unknown), as wgrnn's TextVectorizer. The stream is cut
    into B = 32 parallel streams (`batchify`, remainder dropped), read 100
    tokens at a time; the final (h, c) of one window starts the next,
    detached; the state resets at every epoch and for evaluation.
    Embedding(V, 64) N(0, 1) -> 2-layer LSTM(256) -> Linear(256, V), PyTorch
    default inits, Adam 2e-3, clip_grad_norm 1, 2000 steps, no dropout.
    Validation: mean cross-entropy over every predicted validation
    character (nats/char), batched the same way.
  headlines: AG News titles (the bundled file), row i -> validation if
    i % 5 == 4. Standardize = lowercase + delete ASCII punctuation, split
    on whitespace; vocabulary = training words seen >= 2 times (count
    descending, then word ascending) after 0 pad, 1 unk, 2 <bos>, 3 <eos>;
    each headline is <bos> w1 .. wn <eos>, one packed row with zero state,
    every next token predicted. Embedding(V, 128) -> 2-layer LSTM(256,
    dropout 0.3) -> Dropout(0.3) -> Linear(256, V), PyTorch default inits,
    Adam 2e-3, clip 1, batch 64 (shuffled every epoch), 10 epochs;
    perplexity = exp(mean cross-entropy over validation tokens); the best
    epoch is reported.

Usage: python scripts/torch_lm.py char_lm|headlines [--seed 0] [--steps N]
       [--epochs N] [--data-dir ../shared/data] [--threads 2]
Prints one line per evaluation and a summary line `run=NAME ...`.
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
from torch.nn.utils.rnn import pack_padded_sequence

PUNCT = set(string.punctuation)


def vocabulary(tokens, min_count=0, specials=()):
    counts = collections.Counter(tokens)
    ranked = sorted(((t, c) for t, c in counts.items() if c >= min_count and t not in specials),
                    key=lambda kv: (-kv[1], kv[0].encode("utf-8")))
    itos = ["", "[UNK]", *specials, *[t for t, _ in ranked]]
    return {t: i for i, t in enumerate(itos)}, itos


class LM(nn.Module):
    def __init__(self, vocab, embed, hidden, layers, dropout):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state=None, lengths=None):
        e = self.embedding(x)
        if lengths is not None:
            e = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(e, state)
        if lengths is not None:
            out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]
        return self.decoder(self.drop(out)), state


def streams(ids, batch):
    n = len(ids) // batch
    return torch.tensor(ids[: n * batch]).view(batch, n)


def char_lm(args):
    torch.manual_seed(args.seed)
    text = gzip.open(f"{args.data_dir}/tiny_shakespeare/input.txt.gz", "rt", encoding="utf-8", newline="").read()
    split = len(text) * 9 // 10
    stoi, itos = vocabulary(text[:split])
    enc = lambda s: [stoi.get(c, 1) for c in s]
    train, valid = streams(enc(text[:split]), 32), streams(enc(text[split:]), 32)
    model = LM(len(itos), 64, 256, 2, 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    bptt, steps = 100, args.steps or 2000

    def windows(data):
        for i in range(0, data.shape[1] - 1, bptt):
            n = min(bptt, data.shape[1] - 1 - i)
            yield data[:, i:i + n], data[:, i + 1:i + 1 + n]

    def evaluate():
        model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for x, y in windows(valid):
                logits, state = model(x, state)
                total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                     reduction="sum").item()
                count += y.numel()
        model.train()
        return total / count

    step, start, tokens = 0, time.time(), 0
    while step < steps:
        state = None
        for x, y in windows(train):
            if step >= steps:
                break
            if state is not None:
                state = tuple(s.detach() for s in state)
            logits, state = model(x, state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            tokens += y.numel()
        print(f"step={step} train_loss={loss.item():.4f} val_nats_per_char={evaluate():.4f}", flush=True)
    seconds = time.time() - start
    val = evaluate()
    print(f"run=char_lm val_nats_per_char={val:.4f} val_bits_per_char={val / math.log(2):.4f} steps={step} "
          f"tokens_per_s={tokens / seconds:.0f} train_seconds={seconds:.1f} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}", flush=True)


def headlines(args):
    torch.manual_seed(args.seed)
    rows = list(csv.reader(io.TextIOWrapper(gzip.open(args.agnews, "rb"), encoding="utf-8", newline="")))
    titles = ["".join(c for c in title.lower() if c not in PUNCT).split() for _, title, _ in rows]
    train = [t for i, t in enumerate(titles) if i % 5 != 4]
    valid = [t for i, t in enumerate(titles) if i % 5 == 4]
    stoi, itos = vocabulary([w for t in train for w in t], min_count=2, specials=("<bos>", "<eos>"))
    enc = lambda t: [2] + [stoi.get(w, 1) for w in t] + [3]
    tr, va = [enc(t) for t in train], [enc(t) for t in valid]
    model = LM(len(itos), 128, 256, 2, 0.3)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(args.seed)

    def batches(data, order, size):
        for s in range(0, len(order), size):
            rows = [data[r] for r in order[s:s + size]]
            n = max(len(r) - 1 for r in rows)
            x = torch.zeros(len(rows), n, dtype=torch.long)
            y = torch.full((len(rows), n), -100, dtype=torch.long)
            for i, r in enumerate(rows):
                x[i, :len(r) - 1] = torch.tensor(r[:-1])
                y[i, :len(r) - 1] = torch.tensor(r[1:])
            yield x, y, torch.tensor([len(r) - 1 for r in rows])

    def loss_of(x, y, lengths):
        logits, _ = model(x, None, lengths)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, :logits.shape[1]].reshape(-1),
                                           ignore_index=-100, reduction="sum")

    best, start, tokens = math.inf, time.time(), 0
    for epoch in range(1, (args.epochs or 10) + 1):
        model.train()
        for x, y, lengths in batches(tr, torch.randperm(len(tr), generator=gen).tolist(), 64):
            count = (y != -100).sum()
            loss = loss_of(x, y, lengths) / count
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens += int(count)
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y, lengths in batches(va, list(range(len(va))), 256):
                total += loss_of(x, y, lengths).item()
                count += int((y != -100).sum())
        ppl = math.exp(total / count)
        best = min(best, ppl)
        print(f"epoch={epoch} val_ppl={ppl:.2f}", flush=True)
    seconds = time.time() - start
    print(f"run=headlines best_val_ppl={best:.2f} vocab={len(itos)} tokens_per_s={tokens / seconds:.0f} "
          f"train_seconds={seconds:.1f} threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", choices=["char_lm", "headlines"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--agnews", default="data/ag_news/test.csv.gz")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"char_lm": char_lm, "headlines": headlines}[args.run](args)


if __name__ == "__main__":
    main()
