"""Checks that an Unroll checkpoint (format unroll.checkpoint v1) loads into plain PyTorch modules.

Usage: torch_interop.py CHECKPOINT.h5 CASES.json

CASES.json is written by the Swift test CheckpointTorchInteropTests: a list of
{"tokens": [T ids], "stream": global stream id or null, "logits": [[V floats] x T]} — the logits
Unroll computed for those tokens of one stream, from a zero state (stream null) or from the
carried state of that global stream stored under /hidden.

The script builds torch.nn.Embedding -> nn.LSTM / nn.GRU / nn.RNN -> nn.Linear from /params with
the snippet documented in Sources/UnrollTraining/CheckpointFormat.md (marked below), checks the file's layout
(format, version, float32, chunked with Fletcher32), runs the same tokens and compares logits.
Prints "OK ..." and exits 0 on success, prints the mismatch and exits 1 otherwise.
Needs torch and h5py (e.g. UNROLL_TORCH_PYTHON=/path/to/.venv-torch/bin/python).
"""

import json
import sys

import h5py
import numpy as np
import torch
from torch import nn

TOLERANCE = 1e-4  # float32 logits; different GEMM summation orders differ by ~1e-6


def load(path):
    # --- snippet (Sources/UnrollTraining/CheckpointFormat.md) ---
    f = h5py.File(path, "r")
    m = json.loads(f.attrs["config"])["model"]  # str (v1) or bytes (v2): json takes both
    RNN = {"lstm": nn.LSTM, "gru": nn.GRU}.get(m["cell"], nn.RNN)
    kw = {"nonlinearity": m["cell"][4:]} if RNN is nn.RNN else {}  # rnn_tanh / rnn_relu
    net = nn.ModuleDict({"embedding": nn.Embedding(m["vocabSize"], m["embeddingSize"]),
                         "rnn": RNN(m["embeddingSize"], m["hiddenSize"], m["layers"], **kw),
                         "decoder": nn.Linear(m["hiddenSize"], m["vocabSize"])})
    net.load_state_dict({k: torch.from_numpy(v[()]) for k, v in f["params"].items()})
    # --- end of snippet ---
    return f, m, net


def text_attribute(obj, name):
    """A string attribute as str: version 2 stores fixed-length UTF-8 (h5py returns bytes),
    version 1 variable-length strings (h5py returns str)."""
    value = obj.attrs.get(name)
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else value


def read_strings(obj):
    """A string dataset: version 2 stores a group of UTF-8 `bytes` and int64 `offsets`; version 1
    a dataset of variable-length strings."""
    if isinstance(obj, h5py.Group):
        data, offsets = obj["bytes"][:].tobytes(), obj["offsets"][:]
        return [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
    return [s.decode("utf-8") if isinstance(s, bytes) else s for s in obj[:]]


def check_layout(f, m):
    problems = []
    if text_attribute(f, "format") != "unroll.checkpoint":
        problems.append(f"format attribute is {f.attrs.get('format')!r}")
    if int(f.attrs.get("version", -1)) not in (1, 2):
        problems.append(f"version attribute is {f.attrs.get('version')!r}")
    for name, d in f["params"].items():
        if d.dtype != np.float32 or d.chunks is None or not d.fletcher32:
            problems.append(f"/params/{name}: dtype {d.dtype}, chunks {d.chunks}, fletcher32 {d.fletcher32}")
    vocab = read_strings(f["vocab"])
    if len(vocab) != m["vocabSize"]:
        problems.append(f"/vocab has {len(vocab)} entries, config vocabSize {m['vocabSize']}")
    return problems


def initial_state(f, m, stream):
    """(L, 1, H) initial state of one global stream, as nn.LSTM/GRU/RNN take it."""
    if stream is None:
        return None
    h = torch.from_numpy(np.stack([f[f"hidden/l{k}/h"][stream] for k in range(m["layers"])]))[:, None, :]
    if m["cell"] != "lstm":
        return h
    c = torch.from_numpy(np.stack([f[f"hidden/l{k}/c"][stream] for k in range(m["layers"])]))[:, None, :]
    return (h, c)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    f, m, net = load(sys.argv[1])
    with open(sys.argv[2]) as handle:
        cases = json.load(handle)
    problems = check_layout(f, m)
    worst = 0.0
    net.eval()
    with torch.no_grad():
        for i, case in enumerate(cases):
            x = torch.tensor(case["tokens"], dtype=torch.long)[:, None]  # (T, B=1), time-major
            out, _ = net["rnn"](net["embedding"](x), initial_state(f, m, case.get("stream")))
            logits = net["decoder"](out)[:, 0, :].numpy()  # (T, V)
            expected = np.asarray(case["logits"], dtype=np.float32)
            if logits.shape != expected.shape:
                problems.append(f"case {i}: torch logits shape {logits.shape}, Unroll {expected.shape}")
                continue
            delta = np.abs(logits - expected) / np.maximum(1.0, np.abs(expected))
            worst = max(worst, float(delta.max()))
            if delta.max() > TOLERANCE:
                t, v = np.unravel_index(int(delta.argmax()), delta.shape)
                problems.append(f"case {i} (stream {case.get('stream')}): logit [{t}, {v}] torch {float(logits[t, v])!r} "
                                f"Unroll {float(expected[t, v])!r}")
    if problems:
        print(f"{sys.argv[1]}: {m['cell']}: " + "; ".join(problems))
        sys.exit(1)
    print(f"OK {m['cell']} {m['layers']}x{m['hiddenSize']}: {len(cases)} cases, "
          f"max relative |logit difference| {worst:.2e} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
