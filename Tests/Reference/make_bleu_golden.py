"""Writes the sacrebleu golden fixture Tests/Reference/bleu_golden.json for BleuTests.swift.

Run by hand from the repository root (not part of CI; the output is committed):

    python3 -m venv /tmp/bleuvenv && /tmp/bleuvenv/bin/pip install sacrebleu \
        && /tmp/bleuvenv/bin/python Tests/Reference/make_bleu_golden.py

Each case is a corpus of hypothesis/reference token-id sequences (one reference per hypothesis),
drawn from Python's own seeded RNG. sacrebleu scores it as space-joined strings of the ids with
`BLEU(tokenize='none', smooth_method='none')` (whitespace split, no smoothing: a zero n-gram
precision gives 0), which is what `Bleu` computes on the ids. The fixture stores the ids, sacrebleu's
matches ("counts") and totals per n = 1..4, the hypothesis and reference lengths and the score
(0..100, repr of the float). Re-running it gives a byte-identical file.
"""

import json
import random
from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU


def mutate(rng, ref, vocab, rate):
    """A hypothesis near `ref`: tokens replaced, dropped or inserted with probability `rate` each."""
    out = []
    for t in ref:
        r = rng.random()
        if r < rate:
            out.append(rng.randrange(vocab))      # substitution
        elif r < 2 * rate:
            continue                               # deletion
        else:
            out.append(t)
        if rng.random() < rate:
            out.append(rng.randrange(vocab))      # insertion
    return out


def score(name, hyps, refs):
    bleu = BLEU(tokenize="none", smooth_method="none")
    result = bleu.corpus_score([" ".join(map(str, h)) for h in hyps], [[" ".join(map(str, r)) for r in refs]])
    return {
        "name": name,
        "hypotheses": hyps,
        "references": refs,
        "matches": list(result.counts),
        "totals": list(result.totals),
        "hypothesis_length": result.sys_len,
        "reference_length": result.ref_len,
        "score": result.score,
    }


def main():
    rng = random.Random(20261130)
    cases = []
    # Random corpora: vocabulary size, sentence count, length range, mutation rate.
    for i, (vocab, n, lengths, rate) in enumerate([(10, 30, (3, 15), 0.1), (50, 40, (1, 25), 0.2),
                                                  (5, 20, (5, 10), 0.3), (1000, 25, (4, 30), 0.05),
                                                  (20, 50, (1, 6), 0.15)]):
        refs = [[rng.randrange(vocab) for _ in range(rng.randint(*lengths))] for _ in range(n)]
        hyps = [mutate(rng, r, vocab, rate) for r in refs]
        cases.append(score(f"random{i}", hyps, refs))
    # Hypotheses much shorter than the references (brevity penalty < 1).
    refs = [[rng.randrange(30) for _ in range(rng.randint(10, 20))] for _ in range(20)]
    cases.append(score("short", [r[: len(r) // 2] for r in refs], refs))
    # Longer hypotheses (brevity penalty 1), repeated n-grams (clipping).
    cases.append(score("clipping", [[7, 7, 7, 7, 7, 7, 1, 2, 3, 4, 5], [1, 2, 3, 4, 1, 2, 3, 4]],
                       [[7, 7, 1, 2, 3, 4], [1, 2, 3, 4, 5]]))
    # Edge cases: a perfect match; no 4-gram in common (BLEU 0); hypotheses shorter than 4 tokens;
    # an empty hypothesis among others; all hypotheses empty.
    cases.append(score("perfect", [[1, 2, 3, 4, 5, 6]], [[1, 2, 3, 4, 5, 6]]))
    cases.append(score("noFourGram", [[1, 2, 3, 9, 4, 5, 6, 9, 7, 8]], [[1, 2, 3, 4, 5, 6, 7, 8]]))
    cases.append(score("tooShort", [[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5]]))
    cases.append(score("oneEmpty", [[1, 2, 3, 4, 5, 6], []], [[1, 2, 3, 4, 5, 6], [7, 8, 9]]))
    cases.append(score("allEmpty", [[], []], [[1, 2, 3, 4], [5, 6, 7, 8]]))
    out = {"sacrebleu": sacrebleu.__version__, "settings": "BLEU(tokenize='none', smooth_method='none')",
           "cases": cases}
    path = Path(__file__).with_name("bleu_golden.json")
    path.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(cases)} cases, sacrebleu {sacrebleu.__version__}")


if __name__ == "__main__":
    main()
