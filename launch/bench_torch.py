"""PyTorch TBPTT training-step benchmark: the baseline Unroll's Swift trainer is compared against.

Set up the interpreter with launch/torch-env (creates the git-ignored .venv-torch at the repository
root when needed), then for example:

    launch/torch-env launch/bench_torch.py --configs A,D --threads 1 --seconds 10
    launch/torch-env launch/bench_torch.py --json > torch.jsonl

One step = embedding -> nn.LSTM / nn.GRU / nn.RNN(tanh) -> linear -> cross-entropy (mean over
tokens) on one window of random tokens, backward, clip_grad_norm_(params, 5), plain SGD (lr 1).
The hidden state is carried from window to window and detached, as in truncated BPTT training.

tokens_per_s is B*T divided by the median step time over the timed steps (warm-up excluded).
With several configs each one runs in its own child process, so peak_rss_mb is that config's own
peak resident set (ru_maxrss), not the largest seen so far.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (description, cell, vocab V, embedding E, layers, hidden H, batch B, bptt T)
CONFIGS = {
    "A": ("char-LM LSTM 1x512", "lstm", 65, 64, 1, 512, 32, 64),
    "B": ("PTB-small LSTM 2x200", "lstm", 10000, 200, 2, 200, 20, 20),
    "C": ("char-LM GRU 1x512", "gru", 65, 64, 1, 512, 32, 64),
    "D": ("char-LM Elman tanh 1x512", "rnn_tanh", 65, 64, 1, 512, 32, 64),
    "E": ("char-LM LSTM 2x1024", "lstm", 65, 128, 2, 1024, 32, 64),
}
CLIP = 5.0
LR = 1.0
STREAM_WINDOWS = 64  # the random token stream wraps around after this many windows


class LM(nn.Module):
    def __init__(self, cell, V, E, L, H):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        if cell == "lstm":
            self.rnn = nn.LSTM(E, H, num_layers=L)
        elif cell == "gru":
            self.rnn = nn.GRU(E, H, num_layers=L)
        else:
            self.rnn = nn.RNN(E, H, num_layers=L, nonlinearity="tanh")
        self.decoder = nn.Linear(H, V)

    def forward(self, x, state):
        out, state = self.rnn(self.embedding(x), state)  # time-major (T, B, ...)
        return self.decoder(out), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def run_config(name, threads, warmup, steps, seconds):
    _, cell, V, E, L, H, B, T = CONFIGS[name]
    torch.manual_seed(0)
    model = LM(cell, V, E, L, H)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    # One (T*STREAM_WINDOWS + 1, B) stream so inputs and targets are shifted by one, as in training.
    stream = torch.randint(V, (T * STREAM_WINDOWS + 1, B))
    zeros = torch.zeros(L, B, H)
    state = (zeros, zeros.clone()) if cell == "lstm" else zeros

    def step(i):
        nonlocal state
        w = i % STREAM_WINDOWS
        x = stream[w * T:(w + 1) * T]
        y = stream[w * T + 1:(w + 1) * T + 1]
        state = detach(state)  # truncate BPTT at the window boundary, keep the values
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        return loss.item()  # forces the step to finish before the clock is read

    i = 0
    for _ in range(warmup):
        step(i)
        i += 1
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
        i += 1
        if steps is not None:
            if len(times) >= steps:
                break
        elif time.perf_counter() - start >= seconds and len(times) >= 3:
            break
    med = statistics.median(times)
    return {
        "config": name, "cell": cell, "vocab": V, "embedding": E, "layers": L, "hidden": H,
        "batch": B, "bptt": T, "threads": threads,
        "tokens_per_s": round(B * T / med, 1),
        "median_step_ms": round(med * 1e3, 3),
        "steps": len(times),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_version": torch.__version__,
    }


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated subset of {','.join(CONFIGS)} (default: all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default: 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="timed steps per config")
    g.add_argument("--seconds", type=float, default=10.0,
                   help="time each config for about this long, at least 3 steps (default: 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per config per line")
    args = p.parse_args()
    args.configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {','.join(unknown)}; expected some of {','.join(CONFIGS)}")
    if args.threads < 1 or args.warmup < 0 or (args.steps is not None and args.steps < 1) \
            or args.seconds <= 0:
        p.error("--threads and --steps must be >= 1, --warmup >= 0, --seconds > 0")
    return args


def child_result(name, args):
    """Runs one config in a fresh interpreter so its peak RSS is its own."""
    cmd = [sys.executable, __file__, "--configs", name, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--json"]
    cmd += ["--steps", str(args.steps)] if args.steps is not None else ["--seconds", str(args.seconds)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.json:
        print(f"torch {torch.__version__}, {args.threads} thread(s), warm-up {args.warmup}, "
              + (f"{args.steps} steps" if args.steps is not None else f"~{args.seconds:g} s")
              + " per config")
        print(f"{'cfg':<4}{'model':<26}{'B':>4}{'T':>4}{'steps':>7}{'ms/step':>10}"
              f"{'tok/s':>10}{'RSS MB':>9}")
    for name in args.configs:
        if len(args.configs) == 1:
            r = run_config(name, args.threads, args.warmup, args.steps, args.seconds)
        else:
            r = child_result(name, args)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{name:<4}{CONFIGS[name][0]:<26}{r['batch']:>4}{r['bptt']:>4}{r['steps']:>7}"
                  f"{r['median_step_ms']:>10.2f}{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>9.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
