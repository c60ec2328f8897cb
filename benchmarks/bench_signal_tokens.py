"""Where a task's label signal lies among the encoder's tokens, and whether each probe finds it.

Issue 22 asks the frozen attentive probes of the pretrained encoders to beat their random twin.
This script separates the two things such a comparison needs, on each fold of a task of a
finished ``make demo`` run (its cache, splits and pretraining runs):

- does a token carry the label? For every token position and every encoder (the random twin,
  each pretrained encoder) and for the raw voxels of the same tubelet (2x average-pooled), an
  L2-regularised logistic regression on that position alone, trained on the fold's training
  scans; the position with the best validation AUC is reported with its test AUC, and every
  encoder is also read at the position the voxels chose (like for like). Nothing here is
  trained on the test partition or chosen by it.
- does the probe find it? The demo's frozen attentive probe (``evaluate`` section of the
  profile: head learning rate, weight decay, epochs, patience, probe batch), trained on all the
  tokens exactly as :mod:`neurossl.evaluate.run` trains it, with its validation and test AUC;
  with ``--variants`` also under the other settings of :data:`VARIANTS`.

    python benchmarks/bench_signal_tokens.py --run runs/demo --splits splits/demo \\
        --task cognition_nc_vs_ad --out signal_tokens.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from neurossl.analysis.runs import run_config
from neurossl.config import load_config
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.evaluate.backbones import TokenClassifier, build_token_encoder, random_twin, resolve_encoder
from neurossl.evaluate.fit import TokenItems, fit_classifier, predict
from neurossl.evaluate.heads import build_head
from neurossl.evaluate.run import Evaluator
from neurossl.evaluate.tasks import fold_partitions, task_folds
from neurossl.models import patchify
from neurossl.tasks import TASKS

ENCODERS = ("mae", "slmae", "jepa", "vcr_jepa", "simclr")
C = 0.01  # L2 strength of the per-token regression: 240 training scans against up to 512 features


def regression(features: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict:
    """Logistic regression (standardised) on ``features[p] (N, F)``, trained on ``train``:
    ``{"val_auc", "test_auc"}``."""
    scaler = StandardScaler().fit(features["train"])
    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    model.fit(scaler.transform(features["train"]), y["train"])
    return {f"{p}_auc": roc_auc_score(y[p], model.predict_proba(scaler.transform(features[p]))[:, 1])
            for p in ("val", "test")}


def position_regression(tokens: dict[str, np.ndarray], y: dict[str, np.ndarray], t: int) -> dict:
    """:func:`regression` on position ``t`` of ``tokens[p] (N, T, D)``:
    ``{"position", "val_auc", "test_auc"}``."""
    return {"position": t, **regression({p: x[:, t] for p, x in tokens.items()}, y)}


def token_regression(tokens: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict:
    """:func:`position_regression` at the position with the best validation AUC."""
    scores = [position_regression(tokens, y, t) for t in range(tokens["train"].shape[1])]
    return max(scores, key=lambda r: r["val_auc"])  # the first of equals


# probe settings tried beside the profile's (``--variants``): a lower rate for longer, 20 and 200
# times the weight decay, selection by validation AUC, four queries
VARIANTS = {
    "lr 1e-4, 100 epochs": {"head_lr": 1e-4, "probe_epochs": 100, "patience": 30},
    "weight decay 1": {"weight_decay": 1.0},
    "weight decay 10, 60 epochs": {"weight_decay": 10.0, "probe_epochs": 60, "patience": 20},
    "select by val AUC": {"select": "auc"},
    "4 queries": {"num_queries": 4},
}


def attentive_probe(tokens: dict[str, torch.Tensor], y: dict[str, np.ndarray], spec, heads: int,
                    cfg, run: Path, splits: Path, task, changes: dict | None = None) -> dict:
    """The profile's frozen attentive probe on all tokens, with ``changes`` to its ``evaluate``
    settings and trained with the :class:`~neurossl.evaluate.run.Evaluator`'s own settings:
    ``{"val_auc", "test_auc", "best_epoch"}``."""
    cfg = dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, **(changes or {})))
    settings = Evaluator(cfg, run / "cache", splits).settings(spec, task, "frozen", seed=0, desc="probe")
    torch.manual_seed(0)
    model = TokenClassifier(build_head("attentive", tokens["train"].shape[-1], 2, heads, cfg.evaluate.num_queries))
    data = {p: TokenItems(tokens[p], y[p]) for p in tokens}
    info = fit_classifier(model, data["train"], data["val"], y["train"], 2, settings, torch.device("cpu"))
    auc = {p: roc_auc_score(y[p], predict(model, data[p], torch.device("cpu"), settings.batch_size)[0][:, 1])
           for p in ("val", "test")}
    return {"val_auc": auc["val"], "test_auc": auc["test"], "best_epoch": info["best_epoch"]}


def cached_images(run: Path, parts: dict[str, pd.DataFrame], pre) -> dict[str, torch.Tensor]:
    """Each partition's cached volumes as the evaluation feeds them: ``(N, C, D, H, W)``."""
    return {p: torch.stack([d["image"] for d in CachedVolumeDataset(run / "cache", f["scan_uid"].tolist(),
                                                                    train=False, preprocess=pre)])
            for p, f in parts.items()}


def encoder_specs(run: Path, encoders: tuple[str, ...]) -> dict:
    """The random twin (of the first encoder) then each pretraining run under ``run/pretrain``."""
    specs = {n: resolve_encoder(run / "pretrain" / n) for n in encoders}
    return {"random": random_twin(specs[encoders[0]]), **specs}


@torch.no_grad()
def encode(spec, images: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The frozen encoder of ``spec`` and its tokens ``(N, T, D)`` per partition, 32 volumes at a time."""
    encoder = build_token_encoder(spec).eval()
    tokens = {p: torch.cat([encoder({"image": x[i:i + 32].float()}) for i in range(0, len(x), 32)])
              for p, x in images.items()}
    return encoder, tokens


def fold_rows(run: Path, splits: Path, task, fold, cfg, variants: bool = False,
              encoders: tuple[str, ...] = ENCODERS) -> list[dict]:
    index = pd.read_csv(run / "cache" / "index.csv")
    parts = fold_partitions(task, splits, fold, pd.Series(index["label"].values, index=index["scan_uid"]))
    images = cached_images(run, parts, run_config(run / "pretrain" / encoders[0]).preprocess)
    y = {p: f["y"].to_numpy() for p, f in parts.items()}
    base = {"task": task.name, "fold": fold, **{f"n_{p}": len(v) for p, v in y.items()}}
    pooled = {p: patchify(F.avg_pool3d(x.float(), 2), 8, 8).numpy() for p, x in images.items()}
    rows = [{**base, "features": "voxels (tubelet, pooled 2x)", "probe": "per-token LR", **token_regression(pooled, y)}]
    where = rows[0]["position"]  # where the voxels say the signal is: every encoder read there too
    for name, spec in encoder_specs(run, encoders).items():
        encoder, tokens = encode(spec, images)
        arrays = {p: t.numpy() for p, t in tokens.items()}
        rows.append({**base, "features": name, "probe": "per-token LR", **token_regression(arrays, y)})
        rows.append({**base, "features": name, "probe": "LR at the voxels' position",
                     **position_regression(arrays, y, where)})
        probe = (tokens, y, spec, encoder.num_heads, cfg, run, splits, task)
        rows.append({**base, "features": name, "probe": "attentive (profile)", **attentive_probe(*probe)})
        for label, changes in (VARIANTS.items() if variants else ()):
            rows.append({**base, "features": name, "probe": f"attentive ({label})",
                         **attentive_probe(*probe, changes)})
        print(*rows[-3:], flush=True)
    return rows


def demo_run_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with the options of every benchmark that reads a
    finished demo run: ``--run``, ``--splits``, ``--profile``, ``--out``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished demo run folder (runs/demo)")
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def main() -> None:
    parser = demo_run_parser(__doc__)
    parser.add_argument("--task", default="cognition_nc_vs_ad")
    parser.add_argument("--variants", action="store_true", help="also the probe settings of VARIANTS")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS),
                        help="pretraining runs under <run>/pretrain (the twin copies the first)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    torch.set_num_threads(1)
    task, cfg = TASKS[args.task], load_config(args.profile)
    rows = [r for fold in task_folds(task, args.splits)
            for r in fold_rows(args.run, args.splits, task, fold, cfg, args.variants, tuple(args.encoders))]
    pd.DataFrame(rows).round(4).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
