"""Writes the PyTorch golden fixture Tests/UnrollModelsTests/Fixtures/sequence_golden.json.

Run by hand from the repository root (not part of CI; the output is committed):

    launch/torch-env Tests/Reference/make_sequence_golden.py

Each case is a sequence classifier over packed variable-length sequences
(torch.nn.utils.rnn.pack_padded_sequence, lengths sorted descending): tokens through nn.Embedding or
float features, a 2-layer bidirectional nn.LSTM / nn.GRU, then nn.Linear on
  - "last": h_n of the top layer, forward and reverse directions concatenated, or
  - "mean": the mean of the top layer's outputs (both directions) over each row's valid steps,
with cross-entropy summed over rows (one row ignored through the row mask). As in make_golden.py,
inputs are float32 values drawn from Python's own seeded RNG and the computation runs in float64;
the same number format applies. The script gradchecks every case before writing, and re-running it
must give a byte-identical file.
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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

SEED = 20261130
V, I, H, L, C, B, T = 9, 4, 3, 2, 3, 4, 5
LENGTHS = [5, 4, 2, 1]
MASK = [1, 1, 0, 1]
SCALE = 0.6
CASES = [  # name, cell, token inputs, pool
    ("lstm_last_tokens", "lstm", True, "last"),
    ("gru_last_tokens", "gru", True, "last"),
    ("lstm_mean_features", "lstm", False, "mean"),
    ("gru_mean_tokens", "gru", True, "mean"),
]
OUT = Path(__file__).resolve().parents[1] / "UnrollModelsTests" / "Fixtures" / "sequence_golden.json"


def f32(x: float) -> float:
    """Rounds a double to the nearest float32 and returns it as the (exact) double."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Classifier(nn.Module):
    """(embedding ->) bidirectional 2-layer RNN over packed sequences -> pooled -> linear head."""

    def __init__(self, cell: str, tokens: bool, pool: str):
        super().__init__()
        self.tokens, self.pool = tokens, pool
        if tokens:
            self.embedding = nn.Embedding(V, I)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(I, H, num_layers=L, bidirectional=True)
        self.head = nn.Linear(2 * H, C)

    def forward(self, x, lengths, targets, mask):
        if self.tokens:
            x = self.embedding(x)  # (T, B, I)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=True)
        out, h_n = self.rnn(packed)
        if isinstance(h_n, tuple):
            h_n = h_n[0]
        if self.pool == "last":
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H): top layer forward, reverse
        else:
            padded, _ = pad_packed_sequence(out, total_length=T)  # (T, B, 2H), zeros when padded
            pooled = padded.sum(0) / lengths.to(padded.dtype).unsqueeze(1)
        logits = self.head(pooled)  # (B, C)
        per_row = F.cross_entropy(logits, targets, reduction="none")
        return logits, (per_row * mask).sum()


def tensor_json(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def make_case(name: str, cell: str, tokens: bool, pool: str, rng: random.Random) -> dict:
    def draw(*shape) -> torch.Tensor:
        n = math.prod(shape)
        vals = [f32(rng.uniform(-SCALE, SCALE)) for _ in range(n)]
        return torch.tensor(vals, dtype=torch.float64).reshape(shape)

    model = Classifier(cell, tokens, pool).double()
    names = list(model.state_dict().keys())
    params = {n: draw(*model.state_dict()[n].shape) for n in names}
    model.load_state_dict(params)

    lengths = torch.tensor(LENGTHS)
    if tokens:
        x = torch.tensor([rng.randrange(V) for _ in range(T * B)]).reshape(T, B)
    else:
        x = draw(T, B, I)
    targets = torch.tensor([rng.randrange(C) for _ in range(B)])
    mask = torch.tensor(MASK, dtype=torch.float64)

    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    logits, loss = functional_call(model, leaves, (x, lengths, targets, mask))
    grads = torch.autograd.grad(loss, list(leaves.values()))

    def loss_fn(*xs):
        return functional_call(model, dict(zip(names, xs)), (x, lengths, targets, mask))[1]

    gc_inputs = tuple(t.detach().clone().requires_grad_(True) for t in leaves.values())
    assert torch.autograd.gradcheck(loss_fn, gc_inputs, eps=1e-6, atol=1e-7, rtol=1e-6), f"{name}: gradcheck"
    assert logits.abs().max() < 10, f"{name}: logits too large"

    return {
        "name": name, "cell": cell, "pool": pool, "layers": L, "bidirectional": True,
        "vocab_size": V if tokens else 0, "input_size": I, "hidden_size": H, "num_classes": C,
        "batch": B, "steps": T, "lengths": LENGTHS, "row_mask": MASK,
        "tokens": x.reshape(-1).tolist() if tokens else None,
        "features": None if tokens else x.reshape(-1).tolist(),
        "targets": targets.tolist(),
        "params": {n: tensor_json(t) for n, t in params.items()},
        "expected": {
            "logits": tensor_json(logits),
            "loss_sum": loss.item(),
            "grads": {n: tensor_json(g) for n, g in zip(names, grads)},
        },
    }


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(SEED)
    cases = [make_case(*c, rng) for c in CASES]
    doc = {"generator": "Tests/Reference/make_sequence_golden.py", "torch_version": torch.__version__,
           "cases": cases}
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes, {len(cases)} cases, torch {torch.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
