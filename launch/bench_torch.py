"""PyTorch TBPTT training-step benchmark: the baseline Unroll's Swift trainer is compared against.

Set up the interpreter with launch/torch-env (creates the git-ignored .venv-torch at the repository
root when needed), then for example:

    launch/torch-env launch/bench_torch.py --configs A,D --threads 1 --seconds 10
    launch/torch-env launch/bench_torch.py --configs A --threads 2 --seconds 10
    launch/torch-env launch/bench_torch.py --configs A --ddp 2 --seconds 10   # 2 ranks x 1 thread
    launch/torch-env launch/bench_torch.py --json > torch.jsonl

One step = embedding -> nn.LSTM / nn.GRU / nn.RNN(tanh) -> linear -> cross-entropy (mean over
tokens) on one window of random tokens, backward, clip_grad_norm_(params, 5), plain SGD (lr 1).
The hidden state is carried from window to window and detached, as in truncated BPTT training.

tokens_per_s is B*T divided by the median step time over the timed steps (warm-up excluded).
With several configs each one runs in its own child process, so peak_rss_mb is that config's own
peak resident set (ru_maxrss), not the largest seen so far.

Modes ("mode" in the JSON): "threads" is one process with --threads intra-op threads. "ddp" (--ddp N)
spawns N processes on this machine (gloo over 127.0.0.1, a free port), each with --threads threads,
wrapping the model in DistributedDataParallel. The global shapes stay those of the config: rank r
takes streams [r*B/N, (r+1)*B/N) of the same B-stream token stream, its cross-entropy is the mean over
its own tokens and DDP averages the gradients, which is the single-process mean over B*T tokens. A
DDP step includes the gradient allreduce (DDP waits for it inside backward). tokens_per_s is the
global B*T over rank 0's median step time; peak_rss_mb is the largest rank's peak RSS. Between timed
steps rank 0 broadcasts whether to stop (outside the timed interval), so all ranks run the same
number of steps under --seconds.

Config F is a sequence classifier instead: embedding -> nn.LSTM(bidirectional=True) over
pack_padded_sequence(enforce_sorted=True) -> linear on h_n of both directions -> cross-entropy (mean
over the global batch's sequences), backward, clip_grad_norm_(5), SGD. Sequences have random tokens
and lengths uniform over 20..200; batches follow Unroll's policy (SequenceBatches.swift): each epoch
shuffles the set, sorts pools of 50 batches by length (longest first) and cuts them into batches of
B, then shuffles the batches. Under DDP rank r takes rows r, r+N, ... of each batch (still sorted),
as Unroll does. Batches vary in length, so tokens_per_s counts real (unpadded) steps only: the median
over timed steps of (global batch's valid steps / step time); aggregate_tokens_per_s is all valid
steps over all timed step time; padding_efficiency is valid / (B x longest) summed over the timed steps.
With --padded, F runs the LSTM on the padded batch instead (no packing: PyTorch's oneDNN RNN
primitive, which computes the padded steps too and whose forward h_n of a shorter row is taken after
the padding: not the same model output, an upper bound on PyTorch's speed); still counting real steps.
PyTorch 2.15's packed LSTM on CPU with unequal lengths runs its per-step native path, whose backward
zero-fills a full-size gradient per time step (aten::fill_ is >80% of the step).

Config G is an encoder-decoder (Unroll's Seq2SeqModel, see the Seq2Seq class): bi-GRU 256 encoder
over pack_padded_sequence, tanh bridge, GRU 256 decoder run once over the teacher-forced target
<bos> y1..yn (padded to the rank's longest target: a GRU is causal, so the valid positions are exact),
additive attention batched over all decoder steps with the source padding masked, combine, output
layer; cross-entropy summed over the target tokens y1..yn <eos> / their global count, backward,
clip_grad_norm_(5), SGD (lr 0.1). Random pairs, vocabularies of 1000 per side (3 specials first),
source and target lengths independently uniform over 10..50, 6400 pairs, batches grouped by source
length as F's. tokens_per_s counts target tokens (with <eos>) of the global batch; pairs_per_s the
pairs; padding_efficiency is the decoder's (target tokens / (B x (longest target + 1))).
"""

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
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
# Sequence configs: (description, vocab V, embedding E, hidden H, classes, shortest, longest, batch B,
# train sequences); must match SequenceBenchmarkShape.reference in TrainingBenchmark+Sequences.swift.
SEQUENCE_CONFIGS = {
    "F": ("BiLSTM 1x256 classifier", 1000, 128, 256, 4, 20, 200, 64, 6400),
}
POOL_BATCHES = 50  # batches per length-sorted pool (SequenceBatches.poolBatches)
# Encoder-decoder configs: (description, source vocab, target vocab, embedding E, hidden H, source
# lengths, target lengths, batch B, train pairs); must match Seq2SeqBenchmarkShape.reference in
# TrainingBenchmark+Seq2Seq.swift. Both vocabularies start with 3 specials (<unk>, <bos>, <eos>).
SEQ2SEQ_CONFIGS = {
    "G": ("biGRU 256 enc, GRU 256 dec, additive attn", 1000, 1000, 128, 256, (10, 50), (10, 50), 64, 6400),
}
SPECIALS, BOS, EOS = 3, 1, 2


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


class Classifier(nn.Module):
    """Embedding -> bidirectional LSTM over packed sequences -> linear on [h_n forward, h_n reverse]."""

    def __init__(self, V, E, H, C, padded=False):
        super().__init__()
        self.padded = padded
        self.embedding = nn.Embedding(V, E)
        self.rnn = nn.LSTM(E, H, bidirectional=True)  # time-major, as Unroll
        self.head = nn.Linear(2 * H, C)

    def forward(self, x, lengths):
        if self.padded:
            _, (h_n, _) = self.rnn(self.embedding(x))  # --padded: the padded batch, no packing
        else:
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(x), lengths, enforce_sorted=True)
            _, (h_n, _) = self.rnn(packed)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


class Seq2Seq(nn.Module):
    """Unroll's Seq2SeqModel (GRU, 1 layer, bidirectional encoder, tanh bridge, additive attention,
    no input feeding) in PyTorch: embedding -> bi-GRU over pack_padded_sequence -> h0 = tanh(W_b
    [h_fwd; h_bwd] + b) -> decoder GRU over the teacher-forced input (one call for all steps) ->
    scores v^T tanh(W_q h_t + W_k e_s) with the source padding masked -> softmax -> context c_t ->
    h~_t = tanh(W_c [c_t; h_t]) -> linear to the vocabulary. Parameter shapes as Unroll's layout
    (W_q, W_k, v and W_c without bias)."""

    def __init__(self, Vs, Vt, E, H):
        super().__init__()
        self.source_embedding = nn.Embedding(Vs, E)
        self.encoder = nn.GRU(E, H, bidirectional=True)  # time-major, as Unroll
        self.bridge = nn.Linear(2 * H, H)
        self.target_embedding = nn.Embedding(Vt, E)
        self.decoder = nn.GRU(E, H)
        self.query = nn.Linear(H, H, bias=False)
        self.key = nn.Linear(2 * H, H, bias=False)
        self.v = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(3 * H, H, bias=False)
        self.output = nn.Linear(H, Vt)

    def forward(self, source, source_lengths, target_input):
        """source (S, B) padded, sorted longest first; target_input (T, B). Returns logits (B, T, V)."""
        packed = nn.utils.rnn.pack_padded_sequence(self.source_embedding(source), source_lengths,
                                                   enforce_sorted=True)
        memory, h_n = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True)  # (B, S, 2H), zero padding
        h0 = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], dim=1))).unsqueeze(0)
        states, _ = self.decoder(self.target_embedding(target_input), h0)  # (T, B, H)
        states = states.transpose(0, 1)  # (B, T, H)
        u = torch.tanh(self.query(states).unsqueeze(2) + self.key(memory).unsqueeze(1))  # (B, T, S, H)
        scores = self.v(u).squeeze(-1)  # (B, T, S)
        S = memory.shape[1]
        padding = torch.arange(S).unsqueeze(0) >= source_lengths.unsqueeze(1)  # (B, S)
        weights = torch.softmax(scores.masked_fill(padding.unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, memory)  # (B, T, 2H)
        return self.output(torch.tanh(self.combine(torch.cat([context, states], dim=-1))))


def sequence_batches(lengths, B, generator):
    """One epoch of global batches (index lists, longest first), Unroll's length-grouping policy."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    pool = B * POOL_BATCHES
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: (-lengths[i], i))
        batches += [chunk[b:b + B] for b in range(0, len(chunk), B)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def run_sequence_config(name, threads, warmup, steps, seconds, rank=0, ranks=1, padded=False):
    """Times training steps of sequence config `name` (rank of ranks).

    Returns (step times, valid steps per global batch, padded steps per global batch, fields).
    """
    _, V, E, H, C, shortest, longest, B, N = SEQUENCE_CONFIGS[name]
    torch.manual_seed(0)
    model = Classifier(V, E, H, C, padded)
    params = list(model.parameters())
    distributed = dist.is_initialized()
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.SGD(params, lr=0.1)
    data = torch.Generator().manual_seed(17)
    lengths = torch.randint(shortest, longest + 1, (N,), generator=data).tolist()
    tokens = [torch.randint(V, (n,), generator=data) for n in lengths]
    labels = torch.randint(C, (N,), generator=data)
    order = torch.Generator().manual_seed(1)
    plan = []

    def batch(i):
        """Padded (T, b) tokens, lengths and labels of this rank's rows of global batch i."""
        while len(plan) <= i:
            plan.extend(sequence_batches(lengths, B, order))
        rows = plan[i][rank::ranks]
        ls = [lengths[r] for r in rows]
        x = torch.zeros(ls[0], len(rows), dtype=torch.long)
        for j, r in enumerate(rows):
            x[:ls[j], j] = tokens[r]
        full = [lengths[r] for r in plan[i]]
        return x, torch.tensor(ls), labels[rows], sum(full), len(full) * full[0]

    def step(i, prepared):
        x, ls, y = prepared
        logits = net(x, ls)
        loss = F.cross_entropy(logits, y)  # mean over this rank's rows; DDP averages the ranks
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        return loss.item()

    stop = torch.zeros(1, dtype=torch.int32)
    i = 0
    for _ in range(warmup):
        step(i, batch(i)[:3])
        i += 1
    times, valid, computed = [], [], []
    start = time.perf_counter()
    while True:
        x, ls, y, v, p = batch(i)  # built outside the timed interval
        t0 = time.perf_counter()
        step(i, (x, ls, y))
        times.append(time.perf_counter() - t0)
        valid.append(v)
        computed.append(p)
        i += 1
        if steps is not None:
            done = len(times) >= steps
        else:
            done = time.perf_counter() - start >= seconds and len(times) >= 3
        if distributed and steps is None:
            stop.fill_(int(done))
            dist.broadcast(stop, src=0)
            done = bool(stop.item())
        if done:
            break
    return times, valid, computed, {
        "config": name, "cell": "lstm", "bidirectional": True, "vocab": V, "embedding": E, "layers": 1,
        "hidden": H, "classes": C, "batch": B, "lengths": [shortest, longest], "threads": threads,
        "packing": "padded" if padded else "packed",
    }


def run_seq2seq_config(name, threads, warmup, steps, seconds, rank=0, ranks=1):
    """Times training steps of encoder-decoder config `name` (rank of ranks).

    Batches are grouped by source length as Unroll's (sequence_batches); under DDP rank r takes rows
    r, r+N, ... of each global batch. The loss is the cross-entropy summed over this rank's target
    tokens (each target and its <eos>) divided by the global batch's count, times N (DDP averages the
    ranks' gradients): the single-process mean over the global batch, as Unroll divides by the
    global count. Returns (step times, target tokens per global batch, decoder steps computed per
    global batch (B x (longest target + 1)), pairs per global batch, fields).
    """
    _, Vs, Vt, E, H, (s_lo, s_hi), (t_lo, t_hi), B, N = SEQ2SEQ_CONFIGS[name]
    torch.manual_seed(0)
    model = Seq2Seq(Vs, Vt, E, H)
    params = list(model.parameters())
    distributed = dist.is_initialized()
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.SGD(params, lr=0.1)
    data = torch.Generator().manual_seed(23)
    source_lengths = torch.randint(s_lo, s_hi + 1, (N,), generator=data).tolist()
    target_lengths = torch.randint(t_lo, t_hi + 1, (N,), generator=data).tolist()
    sources = [torch.randint(SPECIALS, Vs, (n,), generator=data) for n in source_lengths]
    targets = [torch.randint(SPECIALS, Vt, (n,), generator=data) for n in target_lengths]
    order = torch.Generator().manual_seed(1)
    plan = []

    def batch(i):
        """This rank's padded tensors of global batch i, plus the global batch's counts."""
        while len(plan) <= i:
            plan.extend(sequence_batches(source_lengths, B, order))
        full = plan[i]
        rows = full[rank::ranks]
        ls = [source_lengths[r] for r in rows]
        lt = [target_lengths[r] + 1 for r in rows]  # decoder steps: <bos> y1..yn -> y1..yn <eos>
        x = torch.zeros(ls[0], len(rows), dtype=torch.long)
        y_in = torch.zeros(max(lt), len(rows), dtype=torch.long)
        y_out = torch.full((len(rows), max(lt)), -100, dtype=torch.long)  # batch-major, as the logits
        for j, r in enumerate(rows):
            x[:ls[j], j] = sources[r]
            y_in[0, j] = BOS
            y_in[1:lt[j], j] = targets[r]
            y_out[j, :lt[j] - 1] = targets[r]
            y_out[j, lt[j] - 1] = EOS
        counts = [target_lengths[r] + 1 for r in full]
        return (x, torch.tensor(ls), y_in, y_out, sum(counts)), sum(counts), len(full) * max(counts), len(full)

    def step(prepared):
        x, ls, y_in, y_out, count = prepared
        logits = net(x, ls, y_in)
        loss = F.cross_entropy(logits.reshape(-1, Vt), y_out.reshape(-1), ignore_index=-100,
                               reduction="sum") * (ranks / count)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        return loss.item()

    stop = torch.zeros(1, dtype=torch.int32)
    i = 0
    for _ in range(warmup):
        step(batch(i)[0])
        i += 1
    times, valid, computed, pairs = [], [], [], []
    start = time.perf_counter()
    while True:
        prepared, v, p, n = batch(i)  # built outside the timed interval
        t0 = time.perf_counter()
        step(prepared)
        times.append(time.perf_counter() - t0)
        valid.append(v)
        computed.append(p)
        pairs.append(n)
        i += 1
        if steps is not None:
            done = len(times) >= steps
        else:
            done = time.perf_counter() - start >= seconds and len(times) >= 3
        if distributed and steps is None:
            stop.fill_(int(done))
            dist.broadcast(stop, src=0)
            done = bool(stop.item())
        if done:
            break
    return times, valid, computed, pairs, {
        "config": name, "cell": "gru", "bidirectional": True, "attention": "additive", "bridge": "tanh",
        "source_vocab": Vs, "target_vocab": Vt, "embedding": E, "layers": 1, "hidden": H, "batch": B,
        "source_lengths": [s_lo, s_hi], "target_lengths": [t_lo, t_hi], "threads": threads,
        "packing": "packed",
    }


def finish_seq2seq(fields, times, valid, padded, pairs, mode, ranks, rss):
    """Target tokens/s (median per-step rate) and pairs/s; padding_efficiency is the decoder's."""
    r = finish_sequence(fields, times, valid, padded, mode, ranks, rss)
    del r["sequences_per_s"]
    r["pairs_per_s"] = round(statistics.median([n / t for n, t in zip(pairs, times)]), 2)
    r["mean_length"] = round(sum(valid) / sum(pairs), 2)  # target tokens with <eos> per pair
    return r


def finish_sequence(fields, times, valid, padded, mode, ranks, rss):
    rates = [v / t for v, t in zip(valid, times)]
    tok = statistics.median(rates)
    mean_length = sum(valid) / (len(valid) * fields["batch"])
    r = {"config": fields["config"], "mode": mode, "ranks": ranks, "threads": fields["threads"],
         "tokens_per_s": round(tok, 1),
         "sequences_per_s": round(tok / mean_length, 2),
         "aggregate_tokens_per_s": round(sum(valid) / sum(times), 1),
         "padding_efficiency": round(sum(valid) / sum(padded), 4),
         "mean_length": round(mean_length, 2),
         "median_step_ms": round(statistics.median(times) * 1e3, 3),
         "steps": len(times),
         "peak_rss_mb": max(rss),
         "torch_version": torch.__version__}
    for k, v in fields.items():
        r.setdefault(k, v)
    if mode == "ddp":
        r["batch_per_rank"] = fields["batch"] // ranks
        r["peak_rss_mb_per_rank"] = rss
    return r


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_config(name, threads, warmup, steps, seconds, rank=0, ranks=1):
    """Times training steps of one config (rank of ranks); DDP wraps the model when a process group exists.

    Returns (step times in seconds, result fields common to both modes).
    """
    _, cell, V, E, L, H, B, T = CONFIGS[name]
    b = B // ranks  # this rank's streams
    torch.manual_seed(0)
    model = LM(cell, V, E, L, H)
    params = list(model.parameters())
    distributed = dist.is_initialized()
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.SGD(params, lr=LR)
    # One (T*STREAM_WINDOWS + 1, B) stream so inputs and targets are shifted by one, as in training;
    # every rank draws the same global stream and keeps its own columns.
    stream = torch.randint(V, (T * STREAM_WINDOWS + 1, B))[:, rank * b:(rank + 1) * b].contiguous()
    zeros = torch.zeros(L, b, H)
    state = (zeros, zeros.clone()) if cell == "lstm" else zeros

    def step(i):
        nonlocal state
        w = i % STREAM_WINDOWS
        x = stream[w * T:(w + 1) * T]
        y = stream[w * T + 1:(w + 1) * T + 1]
        state = detach(state)  # truncate BPTT at the window boundary, keep the values
        logits, state = net(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP this returns after the gradient allreduce has finished
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        return loss.item()  # forces the step to finish before the clock is read

    stop = torch.zeros(1, dtype=torch.int32)
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
            done = len(times) >= steps
        else:
            done = time.perf_counter() - start >= seconds and len(times) >= 3
        if distributed and steps is None:
            # Rank 0's clock decides; every rank must run the same number of collective steps.
            stop.fill_(int(done))
            dist.broadcast(stop, src=0)
            done = bool(stop.item())
        if done:
            break
    return times, {
        "config": name, "cell": cell, "vocab": V, "embedding": E, "layers": L, "hidden": H,
        "batch": B, "bptt": T, "threads": threads,
    }


def finish(fields, times, mode, ranks, rss):
    med = statistics.median(times)
    B, T = fields["batch"], fields["bptt"]
    r = {"config": fields["config"], "mode": mode, "ranks": ranks, "threads": fields["threads"],
         "tokens_per_s": round(B * T / med, 1),
         "median_step_ms": round(med * 1e3, 3),
         "steps": len(times),
         "peak_rss_mb": max(rss),
         "torch_version": torch.__version__}
    for k, v in fields.items():
        r.setdefault(k, v)
    if mode == "ddp":
        r["batch_per_rank"] = B // ranks
        r["peak_rss_mb_per_rank"] = rss
    return r


def run_threads(name, args):
    if name in SEQ2SEQ_CONFIGS:
        times, valid, padded, pairs, fields = run_seq2seq_config(name, args.threads, args.warmup, args.steps,
                                                                 args.seconds)
        return finish_seq2seq(fields, times, valid, padded, pairs, "threads", 1, [peak_rss_mb()])
    if name in SEQUENCE_CONFIGS:
        times, valid, padded, fields = run_sequence_config(name, args.threads, args.warmup, args.steps,
                                                           args.seconds, padded=args.padded)
        return finish_sequence(fields, times, valid, padded, "threads", 1, [peak_rss_mb()])
    times, fields = run_config(name, args.threads, args.warmup, args.steps, args.seconds)
    return finish(fields, times, "threads", 1, [peak_rss_mb()])


def ddp_worker(rank, ranks, name, args, results):
    """One DDP rank (entry point of torch.multiprocessing.spawn)."""
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=ranks)
    try:
        if name in SEQ2SEQ_CONFIGS:
            times, valid, padded, pairs, fields = run_seq2seq_config(name, args.threads, args.warmup, args.steps,
                                                                     args.seconds, rank=rank, ranks=ranks)
        elif name in SEQUENCE_CONFIGS:
            times, valid, padded, fields = run_sequence_config(name, args.threads, args.warmup, args.steps,
                                                               args.seconds, rank=rank, ranks=ranks,
                                                               padded=args.padded)
        else:
            times, fields = run_config(name, args.threads, args.warmup, args.steps, args.seconds,
                                       rank=rank, ranks=ranks)
        rss = [None] * ranks
        dist.all_gather_object(rss, peak_rss_mb())
        if rank == 0:
            if name in SEQ2SEQ_CONFIGS:
                results.put(finish_seq2seq(fields, times, valid, padded, pairs, "ddp", ranks, rss))
            elif name in SEQUENCE_CONFIGS:
                results.put(finish_sequence(fields, times, valid, padded, "ddp", ranks, rss))
            else:
                results.put(finish(fields, times, "ddp", ranks, rss))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(name, args):
    """Spawns args.ddp fresh rank processes for this config, so their peak RSS is this config's."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(free_port())
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(ddp_worker, args=(args.ddp, name, args, results), nprocs=args.ddp, join=True)
    return results.get()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = list(CONFIGS) + list(SEQUENCE_CONFIGS) + list(SEQ2SEQ_CONFIGS)
    p.add_argument("--configs", default=",".join(names),
                   help=f"comma-separated subset of {','.join(names)} (default: all)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads, per rank with --ddp (default: 1)")
    p.add_argument("--ddp", type=int, metavar="N",
                   help="DistributedDataParallel (gloo) over N local processes, each taking B/N "
                        "streams of the global batch B (default: one process)")
    p.add_argument("--padded", action="store_true",
                   help="sequence configs (F): run the LSTM on the padded batch instead of "
                        "pack_padded_sequence (default: packed)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="timed steps per config")
    g.add_argument("--seconds", type=float, default=10.0,
                   help="time each config for about this long, at least 3 steps (default: 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per config per line")
    args = p.parse_args()
    args.configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in names]
    if unknown:
        p.error(f"--configs: unknown {','.join(unknown)}; expected some of {','.join(names)}")
    if args.threads < 1 or args.warmup < 0 or (args.steps is not None and args.steps < 1) \
            or args.seconds <= 0 or (args.ddp is not None and args.ddp < 1):
        p.error("--threads, --ddp and --steps must be >= 1, --warmup >= 0, --seconds > 0")
    if args.ddp is not None:
        batch = {c: CONFIGS[c][6] if c in CONFIGS else SEQUENCE_CONFIGS[c][7] if c in SEQUENCE_CONFIGS
                 else SEQ2SEQ_CONFIGS[c][7] for c in args.configs}
        bad = [f"{c} (B={batch[c]})" for c in args.configs if batch[c] % args.ddp]
        if bad:
            p.error(f"--ddp {args.ddp}: must divide the batch of every config; not {', '.join(bad)}")
    return args


def child_result(name, args):
    """Runs one config in a fresh interpreter so its peak RSS is its own."""
    cmd = [sys.executable, __file__, "--configs", name, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--json"] + (["--padded"] if args.padded else [])
    cmd += ["--steps", str(args.steps)] if args.steps is not None else ["--seconds", str(args.seconds)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.json:
        procs = f"DDP (gloo) {args.ddp} rank(s) x " if args.ddp is not None else ""
        print(f"torch {torch.__version__}, {procs}{args.threads} thread(s), warm-up {args.warmup}, "
              + (f"{args.steps} steps" if args.steps is not None else f"~{args.seconds:g} s")
              + " per config")
        print(f"{'cfg':<4}{'model':<26}{'B':>4}{'T':>4}{'steps':>7}{'ms/step':>10}"
              f"{'tok/s':>10}{'RSS MB':>9}")
    for name in args.configs:
        if args.ddp is not None:
            r = run_ddp(name, args)
        elif len(args.configs) == 1:
            r = run_threads(name, args)
        else:
            r = child_result(name, args)
        if args.json:
            print(json.dumps(r), flush=True)
        elif name in SEQ2SEQ_CONFIGS:
            print(f"{name:<4}{SEQ2SEQ_CONFIGS[name][0][:25]:<26}{r['batch']:>4}{r['mean_length']:>4.0f}{r['steps']:>7}"
                  f"{r['median_step_ms']:>10.2f}{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>9.0f}"
                  f"  (target tokens with <eos>; T = mean target length; {r['pairs_per_s']:.1f} pairs/s; "
                  f"decoder padding eff {100 * r['padding_efficiency']:.1f}%)", flush=True)
        elif name in SEQUENCE_CONFIGS:
            print(f"{name:<4}{SEQUENCE_CONFIGS[name][0]:<26}{r['batch']:>4}{r['mean_length']:>4.0f}{r['steps']:>7}"
                  f"{r['median_step_ms']:>10.2f}{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>9.0f}"
                  f"  (real steps only; T = mean length; padding eff {100 * r['padding_efficiency']:.1f}%)",
                  flush=True)
        else:
            print(f"{name:<4}{CONFIGS[name][0]:<26}{r['batch']:>4}{r['bptt']:>4}{r['steps']:>7}"
                  f"{r['median_step_ms']:>10.2f}{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>9.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
