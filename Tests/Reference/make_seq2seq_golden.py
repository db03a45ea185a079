"""Writes the PyTorch golden fixture Tests/UnrollModelsTests/Fixtures/seq2seq_golden.json.

Run by hand from the repository root (not part of CI; the output is committed):

    launch/torch-env Tests/Reference/make_seq2seq_golden.py

The case is a tiny sequence-to-sequence model as Sources/UnrollModels/Seq2SeqModel.swift defines
it: nn.Embedding -> 2-layer bidirectional nn.GRU over packed variable-length sources
(pack_padded_sequence, lengths sorted descending) -> per-layer tanh bridge
h0_k = tanh(W_k [h_n fwd; h_n bwd] + b_k) -> nn.Embedding -> 2-layer nn.GRU decoder (teacher forced)
-> Luong "general" attention score h_t^T W_a e_s with padded source steps masked -> h~ =
tanh(W_c [c_t; h_t]) -> nn.Linear output, cross-entropy summed over the valid target positions
(targets in any length order). As in make_sequence_golden.py, parameters are float32 values drawn
from Python's own seeded RNG and the computation runs in float64; the script gradchecks the case
before writing, and re-running it must give a byte-identical file. Padded ids in the fixture are
valid ids; the Swift test replaces them with -1 to prove they are never read.
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
VS, VT, E, H, L = 7, 8, 3, 4, 2
S, T, B = 5, 4, 3
SOURCE_LENGTHS = [5, 3, 2]
TARGET_LENGTHS = [2, 4, 3]
SCALE = 0.6
OUT = Path(__file__).resolve().parents[1] / "UnrollModelsTests" / "Fixtures" / "seq2seq_golden.json"


def f32(x: float) -> float:
    """Rounds a double to the nearest float32 and returns it as the (exact) double."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VS, E)
        self.rnn = nn.GRU(E, H, num_layers=L, bidirectional=True)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VT, E)
        self.rnn = nn.GRU(E, H, num_layers=L)


class Bridge(nn.Module):
    """Per layer k: weight_l{k} (H, 2H), bias_l{k} (H)."""

    def __init__(self):
        super().__init__()
        for k in range(L):
            setattr(self, f"weight_l{k}", nn.Parameter(torch.zeros(H, 2 * H)))
            setattr(self, f"bias_l{k}", nn.Parameter(torch.zeros(H)))

    def forward(self, h_n):  # (2L, B, H) -> (L, B, H)
        return torch.stack([
            torch.tanh(F.linear(torch.cat([h_n[2 * k], h_n[2 * k + 1]], dim=1),
                                getattr(self, f"weight_l{k}"), getattr(self, f"bias_l{k}")))
            for k in range(L)])


class GeneralAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(H, 2 * H))  # W_a


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.bridge = Bridge()
        self.decoder = Decoder()
        self.attention = GeneralAttention()
        self.combine = nn.Linear(2 * H + H, H, bias=False)
        self.output = nn.Linear(H, VT)

    def forward(self, source, source_lengths, target_in, target_out, valid):
        emb = self.encoder.embedding(source)  # (S, B, E)
        packed = pack_padded_sequence(emb, source_lengths, enforce_sorted=True)
        out, h_n = self.encoder.rnn(packed)
        memory, _ = pad_packed_sequence(out, total_length=S)  # (S, B, 2H)
        h0 = self.bridge(h_n)  # (L, B, H)
        dec, _ = self.decoder.rnn(self.decoder.embedding(target_in), h0)  # (T, B, H)
        scores = torch.einsum("tbh,hd,sbd->bts", dec, self.attention.weight, memory)
        pad = torch.arange(S).unsqueeze(0) >= source_lengths.unsqueeze(1)  # (B, S)
        scores = scores.masked_fill(pad.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = torch.einsum("bts,sbd->tbd", weights, memory)  # (T, B, 2H)
        attentional = torch.tanh(self.combine(torch.cat([context, dec], dim=-1)))
        logits = self.output(attentional)  # (T, B, VT)
        per_position = F.cross_entropy(logits.reshape(-1, VT), target_out.reshape(-1), reduction="none")
        return logits, (per_position * valid.reshape(-1)).sum()


def tensor_json(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def make_case(rng: random.Random) -> dict:
    def draw(*shape) -> torch.Tensor:
        n = math.prod(shape)
        vals = [f32(rng.uniform(-SCALE, SCALE)) for _ in range(n)]
        return torch.tensor(vals, dtype=torch.float64).reshape(shape)

    model = Seq2Seq().double()
    names = list(model.state_dict().keys())
    params = {n: draw(*model.state_dict()[n].shape) for n in names}
    model.load_state_dict(params)

    source = torch.tensor([rng.randrange(VS) for _ in range(S * B)]).reshape(S, B)
    target_out = torch.tensor([rng.randrange(VT) for _ in range(T * B)]).reshape(T, B)
    target_in = torch.cat([torch.zeros(1, B, dtype=torch.long), target_out[:-1]], dim=0)  # <bos> = 0
    valid = torch.tensor([[1.0 if t < TARGET_LENGTHS[b] else 0.0 for b in range(B)] for t in range(T)],
                         dtype=torch.float64)
    source_lengths = torch.tensor(SOURCE_LENGTHS)
    inputs = (source, source_lengths, target_in, target_out, valid)

    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    logits, loss = functional_call(model, leaves, inputs)
    grads = torch.autograd.grad(loss, list(leaves.values()))

    def loss_fn(*xs):
        return functional_call(model, dict(zip(names, xs)), inputs)[1]

    gc_inputs = tuple(t.detach().clone().requires_grad_(True) for t in leaves.values())
    assert torch.autograd.gradcheck(loss_fn, gc_inputs, eps=1e-6, atol=1e-7, rtol=1e-6), "gradcheck"
    assert logits.abs().max() < 10, "logits too large"

    return {
        "name": "gru_bi_general_tanh", "cell": "gru", "layers": L, "bidirectional": True, "bridge": "tanh",
        "attention": "general", "source_vocab_size": VS, "target_vocab_size": VT, "embedding_size": E,
        "hidden_size": H, "batch": B, "source_steps": S, "target_steps": T,
        "source_lengths": SOURCE_LENGTHS, "target_lengths": TARGET_LENGTHS,
        "source": source.reshape(-1).tolist(), "target_input": target_in.reshape(-1).tolist(),
        "target_output": target_out.reshape(-1).tolist(),
        "params": {n: tensor_json(t) for n, t in params.items()},
        "expected": {
            "logits": tensor_json(logits),
            "loss_sum": loss.item(),
            "count": int(valid.sum().item()),
            "grads": {n: tensor_json(g) for n, g in zip(names, grads)},
        },
    }


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(SEED)
    cases = [make_case(rng)]
    doc = {"generator": "Tests/Reference/make_seq2seq_golden.py", "torch_version": torch.__version__,
           "cases": cases}
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes, {len(cases)} case(s), torch {torch.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
