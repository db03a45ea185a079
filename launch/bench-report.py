#!/usr/bin/env python3
"""Turns launch/bench's raw JSON lines into the markdown report (standard library only).

Sequence configs (F) count real (unpadded) steps as tokens on both sides; their PyTorch baseline in
the main table is pack_padded_sequence, and a section of their own adds the padded-batch PyTorch run,
sequences/s and padding efficiency. Encoder–decoder configs (G) count target tokens with their
<eos> on both sides, and a section of their own adds pairs/s and the decoder's padding efficiency.
"""
import json
import sys


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    machine = next(r for r in rows if r["kind"] == "machine")
    peaks = sorted(r["sgemm_peak_gflops"] for r in rows if r["kind"] == "sgemm")
    peak = peaks[len(peaks) // 2]
    rounds = max(1, len([r for r in rows if r["kind"] == "unroll" and r.get("mode") == "np1"]) //
                 max(1, len({r["config"] for r in rows if r["kind"] == "unroll"})))
    configs = sorted({r["config"] for r in rows if r["kind"] == "unroll"})
    seq2seq_configs = sorted({r["config"] for r in rows if r["kind"] == "unroll" and r.get("pairsPerSecond")})
    sequence_configs = sorted({r["config"] for r in rows if r["kind"] == "unroll" and r.get("paddingEfficiency")
                               and r["config"] not in seq2seq_configs})

    def get(kind, config, **match):
        """The run with the median throughput among the repeated rounds of one measurement."""
        runs = [r for r in rows
                if r["kind"] == kind and r.get("config") == config and all(r.get(k) == v for k, v in match.items())]
        if not runs:
            return None
        runs.sort(key=lambda r: r.get("tokensPerSecond", r.get("tokens_per_s", 0)))
        return runs[len(runs) // 2]

    def num(x, digits=0):
        return "—" if x is None else f"{x:,.{digits}f}"

    print(f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}); "
          f"single-thread sgemm peak in this run: {peak:.1f} GFLOP/s. Median step after warm-up; "
          f"tokens/s = global B·T / median step"
          + (f" ({', '.join(sequence_configs)}: real steps only, see the sequence table)" if sequence_configs else "")
          + (f" ({', '.join(seq2seq_configs)}: target tokens with <eos>, see the encoder–decoder table)"
             if seq2seq_configs else "")
          + f"; each figure is the median of {rounds} interleaved round(s).\n")
    print("| config | Unroll 1 rank | PyTorch 1 thread | ratio | Unroll np=2 | PyTorch 2 threads | PyTorch DDP 2×1 | ratio vs best 2-core | GFLOP/s (1 rank) | % sgemm peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2 = get("unroll", c, mode="np1"), get("unroll", c, mode="np2")
        # packing is None for the language models, "packed" (pack_padded_sequence) for F and G.
        packing = "packed" if c in sequence_configs + seq2seq_configs else None
        t1 = get("torch", c, mode="threads", threads=1, packing=packing)
        t2 = get("torch", c, mode="threads", threads=2, packing=packing)
        td = get("torch", c, mode="ddp", packing=packing)
        best2 = max([x["tokens_per_s"] for x in (t2, td) if x] or [0]) or None
        r1 = u1["tokensPerSecond"] / t1["tokens_per_s"] if u1 and t1 else None
        r2 = u2["tokensPerSecond"] / best2 if u2 and best2 else None
        print(f"| {c} | {num(u1 and u1['tokensPerSecond'])} | {num(t1 and t1['tokens_per_s'])} | "
              f"{num(r1, 2)}× | {num(u2 and u2['tokensPerSecond'])} | {num(t2 and t2['tokens_per_s'])} | "
              f"{num(td and td['tokens_per_s'])} | {num(r2, 2)}× | {num(u1 and u1['gflops'], 1)} | "
              f"{num(u1 and 100 * u1['gflops'] / peak, 0)}% |")
    print()
    print("| config | ceiling (2 × 1 rank, no comm) | np=2 / ceiling | np=2 / np=1 | np=2 step: compute / allreduce / data ms | "
          "allreduce share | rank spread ms | gradient MB | ordered allreduce ms (GB/s) | plain MPI_Allreduce ms (GB/s) | "
          "checkpoint save / raw write ms | step ms: no save / save every step in the foreground / in the background (stall) | "
          "peak RSS MB Unroll np1 / PyTorch 1t |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2, ce = get("unroll", c, mode="np1"), get("unroll", c, mode="np2"), get("unroll", c, mode="ceiling")
        t1 = get("torch", c, mode="threads", threads=1,
                 packing="packed" if c in sequence_configs + seq2seq_configs else None)
        if not (u1 and u2):
            continue
        mb = u2["gradientBytes"] / 1e6
        share = 100 * u2["communicationMs"] / u2["medianStepMs"]
        def bw(ms):
            return f"{num(ms, 2)} ({num(u2['gradientBytes'] / (ms / 1000) / 1e9, 1)})" if ms else "—"
        print(f"| {c} | {num(ce and ce['tokensPerSecond'])} | "
              f"{num(ce and 100 * u2['tokensPerSecond'] / ce['tokensPerSecond'], 1)}% | "
              f"{num(u2['tokensPerSecond'] / u1['tokensPerSecond'], 2)}× | "
              f"{u2['computeMs']:.1f} / {u2['communicationMs']:.2f} / {u2['ioMs']:.2f} | {share:.1f}% | {num(u2.get('rankSpreadMs'), 2)} | {mb:.1f} | "
              f"{bw(u2.get('orderedAllreduceMs'))} | {bw(u2.get('rawAllreduceMs'))} | "
              f"{num(u1.get('checkpointSaveMs'), 1)} / {num(u1.get('rawWriteMs'), 1)} "
              f"({num(u1.get('checkpointSaveMs') / u1.get('rawWriteMs') if u1.get('rawWriteMs') else None, 2)}×) | "
              f"{num(u1.get('stepWithoutSaveMs'), 1)} / {num(u1.get('stepWithForegroundSaveMs'), 1)} / "
              f"{num(u1.get('stepWithBackgroundSaveMs'), 1)} "
              f"({num(u1.get('checkpointStallMs'), 2)}) | "
              f"{num(u1['peakRssMB'])} / {num(t1 and t1['peak_rss_mb'])} |")
    if sequence_configs:
        sequences(rows, sequence_configs, get, num)
    if seq2seq_configs:
        seq2seq(seq2seq_configs, get, num)


def seq2seq(configs, get, num):
    """The encoder–decoder configs: target tokens/s and pairs/s against the same model in PyTorch."""
    print()
    print("Encoder–decoder configs: tokens/s count target tokens with their <eos> (what the loss averages "
          "over), median over steps of the global batch's target tokens / step time; pairs/s likewise. "
          "Padding efficiency is the decoder's: target tokens / (B × (longest target + 1)), the same "
          "batches on both sides (the encoders pack).\n")
    print("| config | Unroll 1 rank tok/s (pairs/s) | PyTorch 1t tok/s (pairs/s) | ratio | Unroll np=2 tok/s (pairs/s) | "
          "PyTorch 2t | PyTorch DDP 2×1 | ratio vs best | decoder padding eff. Unroll / PyTorch | GFLOP/s Unroll 1 rank | "
          "median step ms Unroll 1 / PyTorch 1t |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2 = get("unroll", c, mode="np1"), get("unroll", c, mode="np2")
        t1 = get("torch", c, mode="threads", threads=1, packing="packed")
        t2 = get("torch", c, mode="threads", threads=2, packing="packed")
        td = get("torch", c, mode="ddp", packing="packed")
        if not (u1 and u2):
            continue
        tok = lambda x: x and x["tokens_per_s"]
        best = max([tok(x) for x in (t2, td) if x] or [0]) or None
        ratio = lambda u, t: num(u / t, 2) + "×" if t else "—"
        print(f"| {c} | {num(u1['tokensPerSecond'])} ({num(u1['pairsPerSecond'], 1)}) | "
              f"{num(tok(t1))} ({num(t1 and t1['pairs_per_s'], 1)}) | {ratio(u1['tokensPerSecond'], tok(t1))} | "
              f"{num(u2['tokensPerSecond'])} ({num(u2['pairsPerSecond'], 1)}) | {num(tok(t2))} | {num(tok(td))} | "
              f"{ratio(u2['tokensPerSecond'], best)} | {num(100 * u1['paddingEfficiency'], 1)}% / "
              f"{num(t1 and 100 * t1['padding_efficiency'], 1)}% | {num(u1['gflops'], 1)} | "
              f"{num(u1['medianStepMs'], 1)} / {num(t1 and t1['median_step_ms'], 1)} |")


def sequences(rows, configs, get, num):
    """The sequence configs: real steps/s and sequences/s against packed and padded PyTorch."""
    print()
    print("Sequence configs: tokens/s count real (unpadded) steps only, median over steps of the global batch's "
          "real steps / step time; seq/s = that / mean length. PyTorch *packed* = `pack_padded_sequence` "
          "(the same computation as Unroll); *padded* = the LSTM over the padded batch (oneDNN; computes the "
          "padding and takes the forward h_n after it: faster but not the same model output).\n")
    print("| config | Unroll 1 rank tok/s (seq/s) | PyTorch packed 1t | ratio | PyTorch padded 1t | ratio | "
          "Unroll np=2 tok/s (seq/s) | PyTorch packed 2t / DDP 2×1 | ratio vs best | PyTorch padded 2t | ratio | "
          "padding eff. Unroll / PyTorch | aggregate tok/s Unroll 1 / PyTorch packed 1t |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2 = get("unroll", c, mode="np1"), get("unroll", c, mode="np2")
        p1 = get("torch", c, mode="threads", threads=1, packing="packed")
        p2 = get("torch", c, mode="threads", threads=2, packing="packed")
        pd = get("torch", c, mode="ddp", packing="packed")
        q1 = get("torch", c, mode="threads", threads=1, packing="padded")
        q2 = get("torch", c, mode="threads", threads=2, packing="padded")
        if not (u1 and u2):
            continue
        tok = lambda x: x and x["tokens_per_s"]
        ratio = lambda u, t: num(u / t, 2) + "×" if t else "—"
        best = max([tok(x) for x in (p2, pd) if x] or [0]) or None
        print(f"| {c} | {num(u1['tokensPerSecond'])} ({num(u1['sequencesPerSecond'], 1)}) | {num(tok(p1))} | "
              f"{ratio(u1['tokensPerSecond'], tok(p1))} | {num(tok(q1))} | {ratio(u1['tokensPerSecond'], tok(q1))} | "
              f"{num(u2['tokensPerSecond'])} ({num(u2['sequencesPerSecond'], 1)}) | {num(tok(p2))} / {num(tok(pd))} | "
              f"{ratio(u2['tokensPerSecond'], best)} | {num(tok(q2))} | {ratio(u2['tokensPerSecond'], tok(q2))} | "
              f"{num(100 * u1['paddingEfficiency'], 1)}% / {num(p1 and 100 * p1['padding_efficiency'], 1)}% | "
              f"{num(u1['aggregateTokensPerSecond'])} / {num(p1 and p1['aggregate_tokens_per_s'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
