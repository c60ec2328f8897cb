"""The one supervised loop of downstream evaluation: probes, fine-tuning and ResNet50-3D.

Every model here maps a batch dict to logits ``(B, K)``; the loop trains it with AdamW under a
warm-up + cosine learning rate, keeps the epoch with the best validation score (``select``: the
lowest loss or the highest ROC-AUC) and restores those weights; early stopping after
``patience`` epochs without a better score is an option (0 trains every epoch). Without a
validation split it trains the fixed number of epochs and keeps the final weights. The test
split never enters this module.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from neurossl.data.dataset import batch_to_device
from neurossl.evaluate.metrics import roc_auc
from neurossl.progress import tqdm
from neurossl.runtime.param_groups import param_groups
from neurossl.runtime.schedules import warmup_cosine


class LabelledItems(Dataset):
    """Items of ``base`` (dicts) with the class id ``y`` added: ``base[i] | {"y": y[i]}``."""

    def __init__(self, base: Dataset, y: np.ndarray):
        if len(base) != len(y):
            raise ValueError(f"{len(base)} items but {len(y)} labels")
        self.base, self.y = base, np.asarray(y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict:
        return {**self.base[index], "y": int(self.y[index])}

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)


class TokenItems(Dataset):
    """Cached encoder tokens ``(N, T, D)`` with labels: items ``{"tokens": (T, D), "y"}``."""

    def __init__(self, tokens: torch.Tensor, y: np.ndarray):
        if len(tokens) != len(y):
            raise ValueError(f"{len(tokens)} token sets but {len(y)} labels")
        self.tokens, self.y = tokens, np.asarray(y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict:
        return {"tokens": self.tokens[index], "y": int(self.y[index])}


SELECTIONS = ("loss", "auc")


@dataclass
class FitSettings:
    """How :func:`fit_classifier` trains (filled from ``EvalConfig`` by the caller)."""

    epochs: int
    lr: float
    weight_decay: float = 0.05
    warmup_epochs: float = 0.0
    patience: int = 20
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    lr_scales: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr factor
    desc: str = "fit"
    start_lr: float = 0.0  # at the start of warm-up
    final_lr: float | None = None  # end of the cosine; None = lr / 100
    select: str = "loss"  # loss (lowest validation loss) | auc (highest validation ROC-AUC)
    freeze_prefix: str = "encoder."  # parameters held fixed during the first freeze_epochs
    freeze_epochs: int = 0

    def __post_init__(self):
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if self.patience < 0 or self.freeze_epochs < 0:
            raise ValueError("patience and freeze_epochs must be >= 0")


def class_weights(y: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights so a majority class cannot win by default: ``(K,)``."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def loader(dataset: Dataset, settings: FitSettings, shuffle: bool, epoch: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
    # a training batch of one volume breaks BatchNorm (ResNet50-3D): drop such a remainder
    drop_last = shuffle and len(dataset) % settings.batch_size == 1 and len(dataset) > 1
    return DataLoader(dataset, batch_size=settings.batch_size, shuffle=shuffle, generator=generator,
                      num_workers=settings.num_workers, drop_last=drop_last)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 8,
            num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(N, K)`` and labels ``(N,)`` of ``dataset`` in order."""
    model.eval()
    probs, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        batch = batch_to_device(batch, device)
        probs.append(F.softmax(model(batch).float(), dim=-1).cpu())
        labels.append(batch["y"].cpu())
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


@torch.no_grad()
def validation_score(model: nn.Module, dataset: Dataset, device: torch.device, weights: torch.Tensor,
                     settings: FitSettings) -> tuple[float, float]:
    """``(score, loss)`` on ``dataset`` from one pass over it; higher scores are better (``-loss``
    or the ROC-AUC, which counts as -inf when the validation split lacks a class)."""
    model.eval()
    total, probs, labels = 0.0, [], []
    for batch in loader(dataset, settings, shuffle=False):
        batch = batch_to_device(batch, device)
        logits = model(batch).float()
        total += float(F.cross_entropy(logits, batch["y"], weight=weights, reduction="sum"))
        if settings.select == "auc":
            probs.append(F.softmax(logits, dim=-1).cpu())
            labels.append(batch["y"].cpu())
    loss = total / max(len(dataset), 1)
    if settings.select == "loss":
        return -loss, loss
    auc = roc_auc(torch.cat(labels).numpy(), torch.cat(probs).numpy())
    return (auc if math.isfinite(auc) else -math.inf), loss


def set_frozen(model: nn.Module, prefix: str, frozen: bool) -> None:
    """Hold the parameters named ``prefix*`` fixed (no gradient) or release them."""
    for name, param in model.named_parameters():
        if name.startswith(prefix):
            param.requires_grad_(not frozen)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset,
                settings: FitSettings, epoch: int, total_steps: int, device: torch.device,
                weights: torch.Tensor) -> float:
    model.train()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    batches = loader(dataset, settings, shuffle=True, epoch=epoch)
    warmup = int(settings.warmup_epochs * len(batches))
    losses = []
    for i, batch in enumerate(batches):
        step = epoch * len(batches) + i
        final = settings.lr * 1e-2 if settings.final_lr is None else settings.final_lr
        lr = warmup_cosine(step, total_steps, warmup, settings.start_lr, settings.lr, final)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
            group["weight_decay"] = settings.weight_decay if group["apply_decay"] else 0.0
        batch = batch_to_device(batch, device)
        loss = F.cross_entropy(model(batch).float(), batch["y"], weight=weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{settings.desc}: non-finite training loss at epoch {epoch}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def fit_classifier(model: nn.Module, train: Dataset, val: Dataset | None, train_y: np.ndarray,
                   num_classes: int, settings: FitSettings, device: torch.device) -> dict:
    """Train ``model`` on ``train``; keeps the weights of the epoch ``val`` scores best
    (``settings.select``), stopping early after ``settings.patience`` epochs without a better
    score (0: never).

    With ``val=None`` every one of ``settings.epochs`` runs and the final weights are kept (a
    fixed recipe, for data too small to spare a validation split).
    Returns ``{"best_epoch", "best_val_loss", "epochs_run"}`` (NaN loss without ``val``).
    """
    torch.manual_seed(settings.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, settings.lr_scales), lr=settings.lr)
    weights = class_weights(train_y, num_classes).to(device)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    best = {"score": -math.inf, "loss": math.nan, "epoch": -1, "state": None}
    bar = tqdm(range(settings.epochs), desc=settings.desc, unit="epoch", leave=False)
    epoch = 0
    for epoch in bar:
        set_frozen(model, settings.freeze_prefix, epoch < settings.freeze_epochs)
        train_loss = train_epoch(model, optimizer, train, settings, epoch, total, device, weights)
        if val is None:
            bar.set_postfix(train=f"{train_loss:.3f}")
            continue
        score, val_loss = validation_score(model, val, device, weights, settings)
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
        if best["state"] is None or score > best["score"] + 1e-6:
            best = {"score": score, "loss": val_loss, "epoch": epoch,
                    "state": copy.deepcopy(model.state_dict())}
        elif settings.patience and epoch - best["epoch"] >= settings.patience:
            break
    bar.close()
    set_frozen(model, settings.freeze_prefix, False)
    if val is None:
        return {"best_epoch": epoch, "best_val_loss": math.nan, "epochs_run": epoch + 1}
    model.load_state_dict(best["state"])
    return {"best_epoch": best["epoch"], "best_val_loss": best["loss"], "epochs_run": epoch + 1}
