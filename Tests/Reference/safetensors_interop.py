"""Interop of `unroll export --format safetensors` and `unroll train --init-from F.safetensors` with PyTorch.

Usage:
  safetensors_interop.py check MODEL.safetensors CASES.json
      Loads MODEL (written by `unroll export`) with the README snippet ("Export to PyTorch"):
      safetensors.torch.load_file + load_state_dict(strict=True) into torch.nn.Embedding /
      nn.LSTM|GRU|RNN / nn.Linear built from the file's "unroll.config" metadata, runs the tokens of
      each case from a zero state and compares the logits with Unroll's.
  safetensors_interop.py make OUT.safetensors CELL V E H L CASES.json
      Builds that module with PyTorch's own initialisation (seed 0), saves its state_dict() with
      safetensors.torch.save_file, and writes the logits torch computes for a few token windows to
      CASES.json, for Unroll to load the file (--init-from) and reproduce them.
  safetensors_interop.py tensorboard DIR
      Reads DIR with tensorboard's EventAccumulator and prints {tag: [[step, value], ...]} as JSON.

CASES.json: a list of {"tokens": [T ids], "stream": null, "logits": [[V floats] x T]}.
Prints "OK ..." (or the JSON) and exits 0 on success; prints the mismatch and exits 1 otherwise.
"""

import json
import sys

TOLERANCE = 1e-4  # float32 logits; different GEMM summation orders differ by ~1e-6


def module(cell, V, E, H, L):
    from torch import nn
    RNN = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell, nn.RNN)
    kw = {"nonlinearity": cell[4:]} if RNN is nn.RNN else {}  # rnn_tanh / rnn_relu
    return nn.ModuleDict({"embedding": nn.Embedding(V, E), "rnn": RNN(E, H, L, **kw), "decoder": nn.Linear(H, V)})


def logits(net, tokens):
    import torch
    with torch.no_grad():
        x = torch.tensor(tokens, dtype=torch.long)[:, None]  # (T, B=1), time-major
        out, _ = net["rnn"](net["embedding"](x))
        return net["decoder"](out)[:, 0, :].numpy()  # (T, V)


def check(path, cases_path):
    import numpy as np
    import torch
    # --- snippet (README.md "Export to PyTorch"), with the cell chosen from the metadata ---
    from safetensors import safe_open
    from safetensors.torch import load_file
    m = json.loads(safe_open(path, "pt").metadata()["unroll.config"])["model"]
    net = module(m["cell"], m["vocabSize"], m["embeddingSize"], m["hiddenSize"], m["layers"])
    net.load_state_dict(load_file(path), strict=True)
    # --- end of snippet ---
    net.eval()
    with open(cases_path) as handle:
        cases = json.load(handle)
    problems, worst = [], 0.0
    for i, case in enumerate(cases):
        got = logits(net, case["tokens"])
        expected = np.asarray(case["logits"], dtype=np.float32)
        if got.shape != expected.shape:
            problems.append(f"case {i}: torch logits shape {got.shape}, Unroll {expected.shape}")
            continue
        delta = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
        worst = max(worst, float(delta.max()))
        if delta.max() > TOLERANCE:
            problems.append(f"case {i}: max relative logit difference {delta.max():.3g}")
    if problems:
        print(f"{path}: " + "; ".join(problems))
        sys.exit(1)
    print(f"OK {m['cell']} {m['layers']}x{m['hiddenSize']}: load_state_dict(strict=True), {len(cases)} cases, "
          f"max relative |logit difference| {worst:.2e} (torch {torch.__version__})")


def make(out, cell, V, E, H, L, cases_path):
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    net = module(cell, int(V), int(E), int(H), int(L)).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out)
    cases = []
    for seed in (3, 5):
        tokens = [(t * 7 + seed * 3) % int(V) for t in range(6)]
        cases.append({"tokens": tokens, "stream": None, "logits": logits(net, tokens).tolist()})
    with open(cases_path, "w") as handle:
        json.dump(cases, handle)
    print(f"OK wrote {out} ({len(net.state_dict())} tensors, torch {torch.__version__})")


def tensorboard(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "check" and len(sys.argv) == 4:
        check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "make" and len(sys.argv) == 9:
        make(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "tensorboard":
        tensorboard(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
