"""Seconds per epoch of a frozen attentive probe, with and without per-token keys and values.

neurossl's :class:`~neurossl.evaluate.heads.AttentiveProbe` computes V-JEPA's attentive pooler
without projecting every token to a key and a value (the same function, see
``tests/test_evaluate.py``). This script trains the probe on random cached tokens the way a frozen
evaluation does (``fit_classifier`` over ``TokenItems``, one validation pass per epoch) and
times it against the pooler's per-token form, by default at the demo's former shape (512 tokens
of width 192, 3 heads, one query).

    python benchmarks/bench_probe.py --scans 420 --val 50 --epochs 3 --batch-sizes 8,32

Prints a Markdown table and writes it to ``benchmarks/results/probe_<device>.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neurossl.evaluate.backbones import TokenClassifier
from neurossl.evaluate.fit import FitSettings, TokenItems, fit_classifier
from neurossl.evaluate.heads import AttentiveProbe

RESULTS = Path(__file__).parent / "results"


class PerTokenProbe(AttentiveProbe):
    """The pooler's per-token form: keys and values for every token, then attention."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        attn = self.attn
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        x = self.norm1(tokens)
        b, n, dim = queries.shape
        heads = attn.num_heads
        q = attn.q(queries).reshape(b, n, heads, dim // heads).transpose(1, 2)
        k, v = attn.kv(x).reshape(b, x.shape[1], 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, dim)
        queries = queries + attn.proj(y)
        queries = queries + self.mlp(self.norm2(queries))
        return self.linear(queries.mean(dim=1))


def seconds_per_epoch(probe: type[AttentiveProbe], train: TokenItems, val: TokenItems,
                      batch_size: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = TokenClassifier(probe(train.tokens.shape[-1], 2, num_heads=3))
    settings = FitSettings(epochs, 1e-3, batch_size=batch_size, patience=0, warmup_epochs=1,
                           desc="probe")
    start = time.perf_counter()
    fit_classifier(model, train, val, train.y, 2, settings, torch.device("cpu"))
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=420, help="training token sets")
    parser.add_argument("--val", type=int, default=50, help="validation token sets")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)

    def items(count: int) -> TokenItems:
        return TokenItems(torch.randn(count, args.tokens, args.width, generator=gen).half(),
                          rng.integers(0, 2, count))

    train, val = items(args.scans), items(args.val)
    rows = ["| batch | per-token keys (s/epoch) | neurossl (s/epoch) | speed-up |", "|---:|---:|---:|---:|"]
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        slow = seconds_per_epoch(PerTokenProbe, train, val, batch, args.epochs)
        fast = seconds_per_epoch(AttentiveProbe, train, val, batch, args.epochs)
        rows.append(f"| {batch} | {slow:.3f} | {fast:.3f} | {slow / fast:.1f}x |")
    header = (f"# Frozen attentive probe, seconds per epoch ({date.today()})\n\n"
              f"{args.scans} training and {args.val} validation token sets of {args.tokens} x "
              f"{args.width} (float16, as evaluation caches them), 3 heads, one query, "
              f"{args.epochs} epochs each; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} threads.\n\n"
              f"    python benchmarks/bench_probe.py --scans {args.scans} --val {args.val} "
              f"--epochs {args.epochs} --batch-sizes {args.batch_sizes}\n\n")
    text = header + "\n".join(rows) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "probe_cpu.md").write_text(text)


if __name__ == "__main__":
    main()
