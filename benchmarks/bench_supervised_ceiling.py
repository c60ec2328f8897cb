"""What the demo's encoder reads when it is trained on the labels themselves (issue 22, point 5).

The paired cells of ``paper/`` ask a pretrained encoder, frozen, to read a condition better than
its random twin does. This script asks the easier question first: does the same architecture
learn the condition at all when it is trained end to end on the task's own labels, on the
training scans the probes see? For each task and fold it trains the random twin (the demo
profile's ViT, randomly initialised) with the fine-tuning loop of ``neurossl evaluate``, one
learning rate for the whole network (``evaluate.finetune_lr``), without augmentation (so that
it could memorise its training scans), and reports the ROC-AUC on the fold's training scans
(did it fit them?) and on its test scans, beside the frozen twin's attentive probe of the run's
``eval/results.csv`` on the same test scans.

``--model cnn`` trains a small 3-D CNN on the full input instead (MONAI's ``Classifier``: four
strided residual stages of 8-64 channels), under the same settings: a network that sees every
voxel through convolutions rather than through 16^3-voxel tokens.

    python benchmarks/bench_supervised_ceiling.py --run runs/demo --splits splits/demo \\
        --epochs 25 --lr 3e-4 --out supervised_ceiling.csv
    python benchmarks/bench_supervised_ceiling.py --run runs/demo --splits splits/demo \
        --model cnn --epochs 15 --lr 1e-4 --select auc --out supervised_ceiling_cnn.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.networks.nets import Classifier
from torch import nn

from neurossl.config import load_config
from neurossl.evaluate.backbones import EncoderSpec, random_twin, resolve_encoder
from neurossl.evaluate.fit import fit_classifier, predict
from neurossl.evaluate.metrics import roc_auc
from neurossl.evaluate.run import Evaluator
from neurossl.evaluate.tables import read_results
from neurossl.evaluate.tasks import task_folds
from neurossl.tasks import Task, get_task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_signal_tokens import demo_run_parser  # noqa: E402


def frozen_twin(run: Path, task: str) -> dict[int, float]:
    """Test ROC-AUC per fold of the frozen random twin in the run's evaluation."""
    results = read_results(run / "eval" / "results.csv")
    rows = results[(results.encoder == "random") & (results.task == task) & (results["mode"] == "frozen")
                   & (results.metric == "roc_auc")]
    return dict(zip(rows.fold, rows.value))


class SmallCNN(nn.Module):
    """A small 3-D CNN on the whole volume: ``batch["image"]`` ``(B, C, D, H, W)`` -> logits ``(B, K)``."""

    def __init__(self, num_classes: int, shape: tuple[int, ...]):
        super().__init__()
        self.net = Classifier(in_shape=shape, classes=num_classes, channels=(8, 16, 32, 64),
                              strides=(2, 2, 2, 2), num_res_units=1, dropout=0.1)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.net(batch["image"])


def fit(evaluator: Evaluator, twin: EncoderSpec, task: Task, parts: dict[str, pd.DataFrame], model: str,
        desc: str) -> tuple[nn.Module, np.ndarray]:
    """Train the twin (``vit``) or a :class:`SmallCNN` on ``parts["train"]`` with the fine-tuning
    settings; the fitted model and its class probabilities of ``parts["test"]``."""
    if model == "vit":
        proba = evaluator.fit_predict(twin, task, "finetune", parts, seed=0, desc=desc)
        return evaluator.last_model, proba
    data = {p: evaluator.volumes(twin, f, train=p == "train") for p, f in parts.items()}
    torch.manual_seed(0)
    cnn = SmallCNN(task.num_classes, tuple(data["train"][0]["image"].shape))
    fit_classifier(cnn, data["train"], data["val"], parts["train"]["y"].to_numpy(), task.num_classes,
                   evaluator.settings(twin, task, "finetune", 0, desc), evaluator.device)
    return cnn, predict(cnn, data["test"], evaluator.device)[0]


def main() -> None:
    parser = demo_run_parser(__doc__)
    parser.add_argument("--tasks", nargs="+", default=["cognition_nc_vs_ad", "glioma_grade2_vs_34"])
    parser.add_argument("--encoder", default="mae", help="pretraining run whose architecture the twin copies")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--folds", type=int, default=0, help="the first n folds (0 = all)")
    parser.add_argument("--model", choices=["vit", "cnn"], default="vit")
    parser.add_argument("--select", choices=["loss", "auc"], default="loss",
                        help="the epoch kept: lowest validation loss or highest validation AUC")
    args = parser.parse_args()
    cfg = load_config(args.profile, overrides=[
        f"evaluate.finetune_epochs={args.epochs}", f"evaluate.finetune_lr={args.lr}",
        "evaluate.finetune_start_lr=1e-5", "evaluate.finetune_final_lr=1e-5",
        "evaluate.patience=0", f"evaluate.select={args.select}", "augment.enabled=false"])
    evaluator = Evaluator(cfg, args.run / "cache", args.splits)
    twin = random_twin(resolve_encoder(args.run / "pretrain" / args.encoder))
    rows = []
    for name in args.tasks:
        task = get_task(name)
        frozen = frozen_twin(args.run, name)
        folds = task_folds(task, args.splits)[: args.folds or None]
        for fold in folds:
            parts = evaluator.partitions(task, fold, None)
            desc = f"supervised {args.model} {name} fold {fold}"
            model, proba = fit(evaluator, twin, task, parts, args.model, desc)
            train_items = evaluator.volumes(twin, parts["train"], train=False)
            train_proba, train_y = predict(model, train_items, evaluator.device)
            rows.append({"model": args.model, "task": name, "fold": -1 if fold is None else fold,
                         "epochs": args.epochs, "lr": args.lr, "select": args.select,
                         "n_train": len(parts["train"]), "n_test": len(parts["test"]),
                         "train_auc": roc_auc(train_y, train_proba),
                         "test_auc": roc_auc(parts["test"]["y"].to_numpy(), proba),
                         "frozen_twin_test_auc": frozen.get(-1 if fold is None else fold)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False, float_format="%.4f")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
