#!/usr/bin/env python3
"""Turns launch/bench's raw JSON lines into the markdown report (standard library only)."""
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
          f"tokens/s = global B·T / median step; each figure is the median of {rounds} interleaved round(s).\n")
    print("| config | Unroll 1 rank | PyTorch 1 thread | ratio | Unroll np=2 | PyTorch 2 threads | PyTorch DDP 2×1 | ratio vs best 2-core | GFLOP/s (1 rank) | % sgemm peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2 = get("unroll", c, mode="np1"), get("unroll", c, mode="np2")
        t1 = get("torch", c, mode="threads", threads=1)
        t2 = get("torch", c, mode="threads", threads=2)
        td = get("torch", c, mode="ddp")
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
          "checkpoint save / raw write ms | peak RSS MB Unroll np1 / PyTorch 1t |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in configs:
        u1, u2, ce = get("unroll", c, mode="np1"), get("unroll", c, mode="np2"), get("unroll", c, mode="ceiling")
        t1 = get("torch", c, mode="threads", threads=1)
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
              f"{num(u1['peakRssMB'])} / {num(t1 and t1['peak_rss_mb'])} |")


if __name__ == "__main__":
    main(sys.argv[1])
