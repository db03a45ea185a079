"""Writes the PyTorch golden fixture Tests/UnrollModelsTests/Fixtures/golden.json.

Run by hand from the repository root (not part of CI; the output is committed):

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch h5py \
        && .venv-torch/bin/python Tests/Reference/make_golden.py

Each case is embedding -> 2-layer nn.LSTM / nn.GRU / nn.RNN (tanh or relu) -> nn.Linear, time-major,
with a non-zero initial state, cross-entropy summed over tokens (one target is -1 = ignored) plus
a weighted sum of the final state so that a gradient flows into it. Inputs (parameters, initial
state, final-state weights) are drawn as float32 from Python's own seeded RNG, so the draw does not
depend on the torch version; they are stored exactly, then the whole computation runs in float64,
so the expected values carry no float32 rounding.

Number format: inputs are float32 values written as the shortest decimal that round-trips the
*double* equal to that float32 value, so parsing them as Double or as Float gives the exact value.
Expected values are float64 written as the shortest round-trip repr (at most 17 significant digits).

The script checks itself before writing: every case is gradchecked in float64, and the torch
forward pass is compared with a hand-written one that spells out PyTorch's gate equations.
Re-running it must give a byte-identical file.
"""

import json
import math
import random
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

SEED = 20240611
V, E, H, B, T, L = 11, 6, 5, 3, 4, 2
SCALE = 0.6
CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
OUT = Path(__file__).resolve().parents[1] / "UnrollModelsTests" / "Fixtures" / "golden.json"


def f32(x: float) -> float:
    """Rounds a double to the nearest float32 and returns it as the (exact) double."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Model(nn.Module):
    """Embedding -> 2-layer recurrent stack -> linear readout, with PyTorch's state-dict names."""

    def __init__(self, cell: str):
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(V, E)
        if cell == "lstm":
            self.rnn = nn.LSTM(E, H, num_layers=L)
        elif cell == "gru":
            self.rnn = nn.GRU(E, H, num_layers=L)
        else:
            self.rnn = nn.RNN(E, H, num_layers=L, nonlinearity=cell.removeprefix("rnn_"))
        self.decoder = nn.Linear(H, V)

    def forward(self, tokens, targets, h0, c0, wh, wc):
        x = self.embedding(tokens)  # (T, B, E)
        if self.cell == "lstm":
            out, (hT, cT) = self.rnn(x, (h0, c0))
        else:
            out, hT = self.rnn(x, h0)
            cT = None
        logits = self.decoder(out)  # (T, B, V)
        xent = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                               reduction="sum", ignore_index=-1)
        extra = (wh * hT).sum()
        if cT is not None:
            extra = extra + (wc * cT).sum()
        return logits, xent, xent + extra, hT, cT


def manual_forward(cell, p, tokens, h0, c0):
    """PyTorch's documented equations, written out; returns (logits, hT, cT)."""
    x = p["embedding.weight"][tokens]  # (T, B, E)
    hs, cs = [], []
    for k in range(L):
        wi, wh = p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"]
        bi, bh = p[f"rnn.bias_ih_l{k}"], p[f"rnn.bias_hh_l{k}"]
        h = h0[k]
        c = c0[k] if c0 is not None else None
        outs = []
        for t in range(T):
            gi = x[t] @ wi.T + bi
            gh = h @ wh.T + bh
            if cell == "lstm":  # gate order i, f, g, o
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            elif cell == "gru":  # gate order r, z, n; r multiplies (W_hn h + b_hn)
                ir, iz, inn = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                r = torch.sigmoid(ir + hr)
                z = torch.sigmoid(iz + hz)
                n = torch.tanh(inn + r * hn)
                h = (1 - z) * n + z * h
            elif cell == "rnn_tanh":
                h = torch.tanh(gi + gh)
            else:
                h = torch.relu(gi + gh)
            outs.append(h)
        x = torch.stack(outs)
        hs.append(h)
        cs.append(c)
    logits = x @ p["decoder.weight"].T + p["decoder.bias"]
    return logits, torch.stack(hs), (torch.stack(cs) if c0 is not None else None)


def tensor_json(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def make_case(cell: str, rng: random.Random) -> dict:
    def draw(*shape) -> torch.Tensor:
        n = math.prod(shape)
        vals = [f32(rng.uniform(-SCALE, SCALE)) for _ in range(n)]
        t = torch.tensor(vals, dtype=torch.float64).reshape(shape)
        assert torch.equal(t, t.float().double()), "draw is not float32-exact"
        return t

    model = Model(cell).double()
    names = list(model.state_dict().keys())
    params = {name: draw(*model.state_dict()[name].shape) for name in names}
    model.load_state_dict(params)

    tokens = torch.tensor([rng.randrange(V) for _ in range(T * B)]).reshape(T, B)
    targets = torch.tensor([rng.randrange(V) for _ in range(T * B)]).reshape(T, B)
    ignored = rng.randrange(T * B)
    targets.view(-1)[ignored] = -1
    is_lstm = cell == "lstm"
    h0 = draw(L, B, H)
    c0 = draw(L, B, H) if is_lstm else None
    wh = draw(L, B, H)
    wc = draw(L, B, H) if is_lstm else None

    # Autograd leaves: every parameter and the initial state.
    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    h0l = h0.clone().requires_grad_(True)
    c0l = c0.clone().requires_grad_(True) if is_lstm else None
    logits, xent, loss, hT, cT = functional_call(model, leaves, (tokens, targets, h0l, c0l, wh, wc))
    grad_inputs = list(leaves.values()) + [h0l] + ([c0l] if is_lstm else [])
    grads = torch.autograd.grad(loss, grad_inputs)

    # Independent forward check against the spelled-out equations.
    m_logits, m_hT, m_cT = manual_forward(cell, params, tokens, h0, c0)
    assert torch.allclose(m_logits, logits, rtol=1e-12, atol=1e-12), f"{cell}: logits mismatch"
    assert torch.allclose(m_hT, hT, rtol=1e-12, atol=1e-12), f"{cell}: h_T mismatch"
    if is_lstm:
        assert torch.allclose(m_cT, cT, rtol=1e-12, atol=1e-12), f"{cell}: c_T mismatch"

    # The fixture is only useful if the nonlinearities are exercised away from saturation and,
    # for relu, on both sides of zero.
    pre = logits.detach()
    assert pre.abs().max() < 10, f"{cell}: logits too large"
    if cell == "rnn_relu":
        assert (hT == 0).any() and (hT > 0).any(), "relu: want both active and inactive units"

    # Finite-difference check of the whole loss, as a function of all leaves, in float64.
    def loss_fn(*xs):
        p = dict(zip(names, xs[: len(names)]))
        hh = xs[len(names)]
        cc = xs[len(names) + 1] if is_lstm else None
        return functional_call(model, p, (tokens, targets, hh, cc, wh, wc))[2]

    gc_inputs = tuple(t.detach().clone().requires_grad_(True) for t in grad_inputs)
    assert torch.autograd.gradcheck(loss_fn, gc_inputs, eps=1e-6, atol=1e-7, rtol=1e-6), \
        f"{cell}: gradcheck failed"

    init = {"h": tensor_json(h0)}
    fsw = {"h": tensor_json(wh)}
    final = {"h": tensor_json(hT)}
    d_init = {"h": tensor_json(grads[len(names)])}
    if is_lstm:
        init["c"] = tensor_json(c0)
        fsw["c"] = tensor_json(wc)
        final["c"] = tensor_json(cT)
        d_init["c"] = tensor_json(grads[len(names) + 1])

    return {
        "name": cell, "cell": cell, "layers": L,
        "vocab_size": V, "embedding_size": E, "hidden_size": H, "batch": B, "bptt": T,
        "tokens": tokens.reshape(-1).tolist(),
        "targets": targets.reshape(-1).tolist(),
        "params": {n: tensor_json(t) for n, t in params.items()},
        "initial_state": init,
        "final_state_weight": fsw,
        "expected": {
            "logits": tensor_json(logits),
            "xent_sum": xent.item(),
            "token_count": int((targets != -1).sum()),
            "loss": loss.item(),
            "final_state": final,
            "grads": {n: tensor_json(g) for n, g in zip(names, grads)},
            "d_initial_state": d_init,
        },
    }


def main() -> None:
    # One thread: reduction order, hence the last bits, must not depend on the machine's cores.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(SEED)
    cases = [make_case(cell, rng) for cell in CELLS]
    for case in cases:
        assert case["expected"]["token_count"] == T * B - 1
    doc = {"generator": "Tests/Reference/make_golden.py", "torch_version": torch.__version__,
           "cases": cases}
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes, {len(cases)} cases, torch {torch.__version__})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
