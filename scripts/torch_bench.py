#!/usr/bin/env python3
# torch_bench.py — the PyTorch peer of examples/bench.rs (same model, sizes
# and JSON line, "impl":"torch"): random token ids → nn.Embedding →
# nn.LSTM/GRU/RNN → nn.Linear on the last hidden state → cross-entropy →
# Adam (lr 1e-3), timed after warm-up steps.
#   python3 scripts/torch_bench.py --cell lstm|gru|rnn_tanh|rnn_relu [--vocab 20000] [--input 128]
#       [--hidden 128] [--layers 1] [--bidirectional] [--batch 64] [--seq 40] [--classes 4]
#       [--steps 20] [--warmup 3] [--device cpu|cuda]
# The flags and the JSON fields are the bench example's (../shared/DESIGN.md §3.2);
# benches/peers/run_all.sh runs it beside wgrnn and burn.
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("vocab", 20000), ("input", 128), ("hidden", 128), ("layers", 1), ("batch", 64),
                          ("seq", 40), ("classes", 4), ("steps", 20), ("warmup", 3)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    dirs = 2 if a.bidirectional else 1
    cls, extra = {"lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {}), "rnn": (torch.nn.RNN, {}),
                  "rnn_tanh": (torch.nn.RNN, {}), "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"})}[a.cell]
    emb = torch.nn.Embedding(a.vocab, a.input).to(dev)
    rnn = cls(a.input, a.hidden, num_layers=a.layers, bidirectional=a.bidirectional, batch_first=True,
              **extra).to(dev)
    fc = torch.nn.Linear(dirs * a.hidden, a.classes).to(dev)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(fc.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        y = torch.randint(0, a.classes, (a.batch,), device=dev)
        _, state = rnn(emb(ids))
        h_n = state[0] if a.cell == "lstm" else state
        logits = fc(torch.cat([h_n[-dirs + d] for d in range(dirs)], dim=1))
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - start) * 1e3 / a.steps
    print(json.dumps({"impl": "torch", "adapter": str(dev), "backend": dev.type, "cell": a.cell,
                      "ms_per_step": round(ms, 3), "tokens_per_s": round(a.batch * a.seq / (ms / 1e3)),
                      "loss": round(loss.item(), 6), "threads": torch.get_num_threads(), "vocab": a.vocab,
                      "input": a.input, "hidden": a.hidden, "layers": a.layers, "bidirectional": a.bidirectional,
                      "batch": a.batch, "seq": a.seq, "classes": a.classes, "steps": a.steps}))


if __name__ == "__main__":
    main()
