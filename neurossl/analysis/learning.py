"""Did a pretraining run learn? Each objective against the trivial predictor of its own kind.

A falling loss is no evidence (DESIGN section 7): it also falls from random initialisation to a
trivial solution. Every check here scores a run on held-out volumes beside that solution:

- MAE / SL-MAE (``recon_pearson_r``): masked-voxel Pearson r of the reconstruction against the
  truth, beside the per-position mean predictor (a template prior); passes when r >= 0.5 and
  above the template. ``recon_error`` gives the masked-voxel loss beside predicting zero.
- JEPA family (``prediction_error``): the predictor's error at the masked tokens, beside
  predicting each position's mean teacher target over the held-out volumes.
- SimCLR (``positive_retrieval``): top-1 retrieval of a volume's other view among the ``2B``
  views of a batch of the run's training size ``B``, beside chance ``1 / (2B - 1)``;
  ``positive_retrieval_all`` among all ``2V`` held-out views. Several pairs of views are drawn
  per volume; a row passes when the 95 % bootstrap interval over volumes lies above chance.
- DINO-MIM (``teacher_entropy``, ``mim_term``): the teacher's entropy and the MIM cross-entropy,
  beside their uniform value ``ln K``.
- every objective (``centred_token_rank``): the effective rank of the exported encoder's patch
  tokens over the volumes after subtracting their mean token
  (:func:`neurossl.losses.collapse.collapse_stats`), beside :data:`MIN_CENTRED_RANK`. A
  collapsed encoder gives every token the same vector (centred rank 0) or tokens that differ
  along one direction only (1), however different the volumes; similar inputs do not lower it.
  Centred, because a component every token shares lowers the uncentred rank of a healthy
  encoder too; an absolute floor, because encoders that learn concentrate their tokens on far
  fewer directions than the random twin's near-isotropic ones
  (``benchmarks/results/learning_curves.md``).

:func:`learning_checks` returns one row per (objective, check): ``objective, check, model,
trivial, n_volumes, passed`` (``higher_is_better`` says which way ``passed`` compares).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from neurossl.losses.collapse import effective_rank
from neurossl.masks import gather_tokens, indices_to_mask
from neurossl.models import patchify
from neurossl.objectives import build_objective
from neurossl.analysis.runs import load_run_objective
from neurossl.evaluate.stats import bootstrap_mean

MIN_PEARSON_R = 0.5  # issue 22's bar for a reconstruction that carries anatomy
RANK_FRACTION = 0.25  # an uncentred token rank below this share of the random twin's: collapse
MIN_CENTRED_RANK = 2.0  # tokens that vary along fewer directions than this have collapsed
# Pairs of views per held-out volume for SimCLR's check: one draw gives a few hits on 48
# volumes, so its share moves by a hit or two between draws; more draws, same estimand.
VIEW_DRAWS = 8
COLUMNS = ["objective", "check", "model", "trivial", "n_volumes", "higher_is_better", "passed"]


# ----------------------------------------------------------------------------- pure statistics
def pearson_r(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Pearson correlation of two equally shaped tensors, flattened; 0 when either is constant."""
    x, y = pred.double().flatten(), truth.double().flatten()
    x, y = x - x.mean(), y - y.mean()
    denom = (x.square().sum() * y.square().sum()).sqrt()
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def psnr_db(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """``10 log10(range^2 / MSE)`` with the truth's value range; inf for a perfect prediction."""
    mse = float((pred.double() - truth.double()).square().mean())
    span = float(truth.max() - truth.min())
    if mse == 0:
        return math.inf
    return 10 * math.log10(max(span, 1e-12) ** 2 / mse)


def leave_one_out_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-position mean of the OTHER volumes: ``(V, ...) -> (V, ...)``, V >= 2.

    The template prior without the volume it is scored on (it would otherwise see the truth).
    """
    if x.shape[0] < 2:
        raise ValueError("a leave-one-out mean needs at least 2 volumes")
    return (x.sum(dim=0, keepdim=True) - x) / (x.shape[0] - 1)


def retrieval_hits(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Per volume, how many of its two views have the other as their nearest view (cosine):
    ``(B, D), (B, D) -> (B,)`` in {0, 1, 2}; row i of both embeddings comes from volume i."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-math.inf)
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    hit = (sim.argmax(dim=1) == positive).long()
    return hit[:b] + hit[b:]


def batched_retrieval_hits(z1: torch.Tensor, z2: torch.Tensor, batch: int) -> torch.Tensor:
    """:func:`retrieval_hits` within consecutive groups of ``batch`` volumes, as a training batch
    of that size sees them: ``(V, D), (V, D) -> (G * batch,)``, ``G = V // batch`` (a last
    partial group would have another chance level, so it is left out)."""
    if not 2 <= batch <= z1.shape[0]:
        raise ValueError(f"retrieval within batches of {batch} needs 2 <= batch <= {z1.shape[0]} volumes")
    groups = z1.shape[0] // batch
    return torch.cat([retrieval_hits(z1[g * batch:(g + 1) * batch], z2[g * batch:(g + 1) * batch])
                      for g in range(groups)])


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats over the last axis, ``(..., K) -> (...)``."""
    p = probs.double().clamp_min(1e-30)
    return -(probs.double() * p.log()).sum(dim=-1)


def row(objective: str, check: str, model: float, trivial: float, n: int,
        higher_is_better: bool, passed: bool | None = None) -> dict:
    """One result row; ``passed`` defaults to the model beating the trivial value."""
    if passed is None:
        passed = model > trivial if higher_is_better else model < trivial
    return {"objective": objective, "check": check, "model": float(model), "trivial": float(trivial),
            "n_volumes": int(n), "higher_is_better": higher_is_better, "passed": bool(passed)}


def reconstruction_rows(objective: str, pred: torch.Tensor, truth: torch.Tensor,
                        masked: torch.Tensor, template: torch.Tensor | None = None,
                        p: float = 2.0) -> list[dict]:
    """MAE rows from reconstructions in the original intensity space.

    Args:
        pred, truth: ``(V, ...)`` reconstruction and input volumes (or patches).
        masked: bool of the same shape, True at the masked voxels (the only ones scored).
        template: ``(V, ...)`` per-position mean predictor; default the leave-one-out mean.
        p: exponent of the reported error ``mean |x - y|^p / p`` (the run's ``loss_p``).
    """
    template = leave_one_out_mean(truth) if template is None else template
    v = truth.shape[0]
    r_model, r_template = pearson_r(pred[masked], truth[masked]), pearson_r(template[masked], truth[masked])
    t = truth[masked].double()
    err = float((pred[masked].double() - t).abs().pow(p).mean() / p)
    err_zero = float(t.abs().pow(p).mean() / p)
    err_template = float((template[masked].double() - t).abs().pow(p).mean() / p)
    return [
        row(objective, "recon_pearson_r", r_model, r_template, v, True,
            r_model >= MIN_PEARSON_R and r_model > r_template),
        row(objective, "recon_error_vs_zero", err, err_zero, v, False),
        row(objective, "recon_error_vs_template", err, err_template, v, False),
    ]


def prediction_rows(objective: str, pred: torch.Tensor, target: torch.Tensor,
                    masked: torch.Tensor, all_targets: torch.Tensor, p: float = 1.0) -> list[dict]:
    """JEPA rows: the predictor's error beside the per-position mean teacher target.

    Args:
        pred, target: ``(V, M, D)`` predictions and teacher targets at the masked tokens.
        masked: ``(V, M)`` long indices of those tokens.
        all_targets: ``(V, N, D)`` teacher targets of every token; their leave-one-out mean over
            the volumes at each position is the trivial prediction.
        p: the run's ``loss_p``.
    """
    trivial = gather_tokens(leave_one_out_mean(all_targets), masked)
    err = float((pred.double() - target.double()).abs().pow(p).mean() / p)
    err_trivial = float((trivial.double() - target.double()).abs().pow(p).mean() / p)
    return [row(objective, "prediction_error", err, err_trivial, pred.shape[0], False)]


def rank_row(objective: str, tokens: torch.Tensor, twin_tokens: torch.Tensor | None = None,
             centre: bool = False) -> dict:
    """``token_rank``: effective rank of ``(V, N, D)`` patch tokens; passes when it is at least
    :data:`RANK_FRACTION` of the random twin's (reported as trivial).

    With ``centre`` (``centred_token_rank``, the collapse check of :func:`learning_checks`): the
    rank after subtracting the mean token, so an offset every token shares does not count
    (:func:`~neurossl.losses.collapse.effective_rank`); passes when it is at least
    :data:`MIN_CENTRED_RANK` (reported as trivial); ``twin_tokens`` may be None then.
    """
    if twin_tokens is None and not centre:
        raise ValueError("rank_row: the uncentred token rank needs the random twin's tokens")
    shapes = [tuple(t.shape) for t in (tokens, twin_tokens) if t is not None]
    if any(len(s) != 3 for s in shapes):
        raise ValueError(f"rank_row expects (V, N, D) tokens, got {' and '.join(map(str, shapes))}")
    flat = [t.float().reshape(-1, t.shape[-1]) for t in (tokens, twin_tokens) if t is not None]
    model = effective_rank(flat[0], centre=centre)
    floor = MIN_CENTRED_RANK if centre else RANK_FRACTION * effective_rank(flat[1])
    check = "centred_token_rank" if centre else "token_rank"
    return row(objective, check, model, floor, tokens.shape[0], True, model >= floor)


# ----------------------------------------------------------------------------- run folders
def random_twin(cfg, input_shape: tuple[int, int, int, int], seed: int = 0) -> torch.nn.Module:
    """The run's encoder at random initialisation (same config, seeded)."""
    torch.manual_seed(seed)
    return build_objective(cfg, input_shape).eval().encoder()


def _modality(objective, batch: dict) -> torch.Tensor | None:
    ids = getattr(objective, "modality_ids", None)
    return ids(batch) if ids is not None and getattr(objective, "modalities", ()) else None


def _masks(objective, n: int, seed: int):
    return objective.masks(n, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def mae_patches(objective, images: torch.Tensor, seed: int = 0):
    """``(pred, truth, masked)``, each ``(V, N, P)``: an MAE's reconstruction of every tubelet in
    the original intensity space, the input's tubelets, and True at the masked ones' voxels.

    With ``norm_pix`` the prediction is mapped back with the TRUE patch mean and std (as MAE's
    figures do), which hands the reconstruction each patch's statistics: such an r is optimistic.
    """
    keep, masked = _masks(objective, images.shape[0], seed)
    pred = objective.reconstruct(images, keep)
    st = objective.student
    truth = patchify(images, st.tubelet_size, st.patch_size)
    if objective.norm_pix:
        pred = pred * (truth.var(-1, keepdim=True) + 1e-6).sqrt() + truth.mean(-1, keepdim=True)
    return pred, truth, indices_to_mask(masked, truth.shape[1])[..., None].expand_as(truth)


@torch.no_grad()
def objective_rows(objective, batch: dict, p: float, seed: int = 0,
                   batch_size: int | None = None) -> list[dict]:
    """The objective-specific rows for held-out ``batch["image"]`` ``(V, C, D, H, W)``;
    ``batch_size``: the run's training batch (SimCLR's retrieval is scored within batches of it,
    default all ``V``)."""
    from neurossl.objectives.dino_mim import DINOMIM
    from neurossl.objectives.jepa import JEPA
    from neurossl.objectives.mae import MAE
    from neurossl.objectives.simclr import SimCLR

    images, name = batch["image"].float(), objective.name
    v = images.shape[0]
    if isinstance(objective, MAE):
        return reconstruction_rows(name, *mae_patches(objective, images, seed), p=p)
    if isinstance(objective, JEPA):
        from neurossl.losses import layer_norm_targets

        modality = _modality(objective, batch)
        keep, masked = _masks(objective, v, seed)
        targets = layer_norm_targets(objective.teacher(images, modality=modality))  # (V, N, D)
        context = objective.student(images, masks=keep, modality=modality)
        pred = objective.predictor(context, keep, masked)
        return prediction_rows(name, pred, gather_tokens(targets, masked), masked, targets, p=p)
    info = _eval_info(seed)
    if isinstance(objective, SimCLR):
        return simclr_rows(objective, images, info, batch_size or v)
    if isinstance(objective, DINOMIM):
        return dino_rows(objective, images, info, seed)
    raise ValueError(f"no learning check for objective {name!r}")


@torch.no_grad()
def simclr_rows(objective, images: torch.Tensor, info, batch: int, draws: int = VIEW_DRAWS) -> list[dict]:
    """SimCLR: positive-view retrieval within batches of ``batch`` volumes and among all ``2V``
    views, over ``draws`` pairs of views per volume, each beside chance; passes when the
    interval over volumes (:func:`~neurossl.evaluate.stats.bootstrap_mean`) lies above chance."""
    from neurossl.objectives.views import random_view

    v, size = images.shape[0], objective.student.img_size
    batch = min(batch, v)
    in_batch, overall = [], []
    for _ in range(draws):
        z1, z2 = (objective.projector(objective.embed(random_view(images, objective.views, info, size)))
                  for _ in range(2))
        in_batch.append(batched_retrieval_hits(z1, z2, batch))
        overall.append(retrieval_hits(z1, z2))
    rows = []
    for check, hits, chance in (("positive_retrieval", in_batch, 1 / (2 * batch - 1)),
                                ("positive_retrieval_all", overall, 1 / (2 * v - 1))):
        per_volume = torch.stack(hits).double().sum(dim=0).numpy() / (2 * draws)
        share, low, _ = bootstrap_mean(per_volume, n_boot=2000)
        rows.append(row(objective.name, check, share, chance, len(per_volume), True, low > chance))
    return rows


def _eval_info(seed: int):
    from neurossl.objectives.base import StepInfo

    return StepInfo(step=10**9, epoch=1e9, total_steps=10**9, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def dino_rows(objective, images: torch.Tensor, info, seed: int) -> list[dict]:
    """DINO-MIM: teacher entropy (plain softmax at the final teacher temperature, no balancing)
    and the MIM cross-entropy at the masked tokens, each beside ``ln K``."""
    from neurossl.losses.distillation import _teacher_probs

    v = images.shape[0]
    s_temp, t_temp = objective.temps
    tokens = objective.teacher(images)
    t_logits = objective.teacher_head(tokens.mean(dim=1))  # (V, K)
    k = t_logits.shape[-1]
    # the teacher's own softmax (centred where the run centres): a uniform teacher scores ln K
    center = torch.zeros(k) if objective.sinkhorn else objective.center.center
    probs = _teacher_probs(t_logits, center, t_temp)
    ent = float(entropy(probs).mean())
    keep, masked = _masks(objective, v, seed)
    visible = objective.student(images, masks=keep)
    predicted = objective.patch_head(objective.predictor(visible, keep, masked))
    mim = float(objective.mim_loss(predicted, objective.teacher_patch_head(tokens), masked, (s_temp, t_temp)))
    ln_k = math.log(k)
    return [row(objective.name, "teacher_entropy", ent, ln_k, v, False, ent < 0.9 * ln_k),
            row(objective.name, "mim_term", mim, ln_k, v, False)]


@torch.no_grad()
def learning_checks(run_dir: str | Path, images: torch.Tensor, modality: list[str] | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """Every learning check of one pretraining run on held-out volumes.

    Args:
        run_dir: pretraining run folder (``config.yaml``, ``checkpoints/``).
        images: ``(V, C, D, H, W)`` held-out volumes (V >= 2), e.g. stacked
            ``CachedVolumeDataset(..., train=False)`` items of pretraining-pool scans kept out of
            training.
        modality: per-volume contrast names (MoE-JEPA needs them).
        seed: seed of the masks and views drawn for the checks.

    Returns:
        One row per (objective, check): ``objective, check, model, trivial, n_volumes,
        higher_is_better, passed``.
    """
    shape = tuple(images.shape[1:])
    objective, cfg = load_run_objective(run_dir, shape)
    batch = {"image": images.float(), "modality": modality}
    rows = objective_rows(objective, batch, cfg.objective.loss_p, seed, cfg.optim.batch_size)
    mod = _modality(objective, batch)
    kwargs = {"modality": mod} if mod is not None else {}
    rows.append(rank_row(objective.name, objective.encoder()(batch["image"], **kwargs), centre=True))
    return pd.DataFrame(rows, columns=COLUMNS)


@torch.no_grad()
def reconstruction_quality(run_dir: str | Path, images: torch.Tensor, seed: int = 0) -> pd.DataFrame:
    """``objective, pearson_r, psnr_db, n_volumes`` of an MAE / SL-MAE run at its masked voxels.

    Args:
        run_dir: an MAE or SL-MAE pretraining run folder.
        images: ``(V, C, D, H, W)`` held-out volumes.
    """
    from neurossl.objectives.mae import MAE

    objective, _ = load_run_objective(run_dir, tuple(images.shape[1:]))
    if not isinstance(objective, MAE):
        raise ValueError(f"{run_dir}: {objective.name} does not reconstruct voxels")
    images = images.float()
    pred, truth, sel = mae_patches(objective, images, seed)
    return pd.DataFrame([{"objective": objective.name, "pearson_r": pearson_r(pred[sel], truth[sel]),
                          "psnr_db": psnr_db(pred[sel], truth[sel]), "n_volumes": images.shape[0]}])
