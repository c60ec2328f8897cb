"""Self-distillation losses of DINO (view-level) and iBOT (masked patch tokens), for FM-CT.

The teacher's logits are centred (:class:`Centering`) and sharpened by a low temperature, the
student's softened by a higher one; the loss is the cross-entropy of the teacher distribution
under the student's. The teacher temperature warm-up DINO uses is the caller's schedule.

Instead of centring, the teacher's distributions can be balanced by Sinkhorn-Knopp
(:func:`sinkhorn_knopp`, DINOv2's choice): pass ``center=None``. Centring subtracts a running mean
of the teacher's logits that starts at 0: until it has caught up, the targets are sharper than
the teacher's outputs warrant, and once it has, targets drift to uniform when the teacher's
outputs for different volumes barely differ (a young model on a small, homogeneous cohort such as
the demo's head CTs), so a short run's loss climbs towards log K. Sinkhorn-Knopp balances each
batch on its own, with no running state and so no such transient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> torch.Tensor:
    """``tensor`` reduced over every rank in place (unchanged outside ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=op)
    return tensor


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, teacher_temp: float, iterations: int = 3) -> torch.Tensor:
    """Balanced teacher distributions (SwAV / DINOv2): ``(S, K)`` logits -> ``(S, K)`` probabilities.

    ``exp(logits / temp)`` is alternately scaled so that every prototype receives the same total
    mass over the ``S`` samples (all ranks together under ``torch.distributed``) and every sample
    sums to one; ``iterations`` rounds, ending on the per-sample normalisation.
    """
    logits = teacher_logits.detach().float() / teacher_temp
    # Subtracting the global max keeps exp finite; the scaling below removes the constant.
    q = torch.exp(logits - _all_reduce(logits.max(), dist.ReduceOp.MAX))  # (S, K)
    samples = _all_reduce(torch.tensor(float(q.shape[0]), device=q.device))
    for _ in range(iterations):
        q = q / (_all_reduce(q.sum(dim=0, keepdim=True)) * q.shape[1])  # each prototype: mass 1 / K
        q = q / (q.sum(dim=1, keepdim=True) * samples)  # each sample: mass 1 / S
    return q * samples


def _teacher_probs(teacher: torch.Tensor, center: torch.Tensor | None, teacher_temp: float) -> torch.Tensor:
    """Teacher distributions of ``(S, K)`` logits: centred and sharpened softmax, or, when
    ``center`` is None, Sinkhorn-Knopp over the ``S`` samples together."""
    if center is None:
        return sinkhorn_knopp(teacher, teacher_temp)
    return F.softmax((teacher.detach().float() - center.reshape(1, -1)) / teacher_temp, dim=-1)


def _cross_entropy(student: torch.Tensor, q: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Per-sample ``-sum_k q_k log p_k`` over the last axis for teacher probabilities ``q``."""
    log_p = F.log_softmax(student.float() / student_temp, dim=-1)
    return -(q * log_p).sum(dim=-1)


def dino_loss(
    student_logits: Sequence[torch.Tensor],
    teacher_logits: Sequence[torch.Tensor],
    center: torch.Tensor | None,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO's multi-crop cross-entropy.

    Args:
        student_logits: one ``(B, K)`` tensor per view, the global views first, in the teacher's
            order, then the local views.
        teacher_logits: one ``(B, K)`` tensor per global view.
        center: ``(K,)`` or ``(1, K)`` running teacher center; None balances the teacher views
            of the batch together with :func:`sinkhorn_knopp` instead.

    Returns:
        Scalar: the batch-mean cross-entropy averaged over every (teacher view i, student view j)
        pair with ``i != j`` (a view is never matched with itself).
    """
    targets = _teacher_probs(torch.cat(list(teacher_logits)), center, teacher_temp).chunk(len(teacher_logits))
    total, pairs = 0.0, 0
    for i, teacher in enumerate(targets):
        for j, student in enumerate(student_logits):
            if i == j:
                continue
            total = total + _cross_entropy(student, teacher, student_temp).mean()
            pairs += 1
    if pairs == 0:
        raise ValueError("dino_loss needs a teacher view and at least one other student view")
    return total / pairs


def masked_token_distillation_loss(
    student_patch_logits: torch.Tensor,
    teacher_patch_logits: torch.Tensor,
    mask: torch.Tensor,
    center: torch.Tensor | None,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """iBOT's masked image modelling loss on patch tokens.

    The student saw the masked volume, the teacher the full one; the per-token cross-entropy is
    averaged over each volume's masked tokens, then over the batch (as in iBOT).

    Args:
        student_patch_logits: ``(B, N, K)``.
        teacher_patch_logits: ``(B, N, K)``.
        mask: ``(B, N)`` bool, True at the tokens the student did not see.
        center: ``(K,)`` or ``(1, K)`` running center of the teacher's patch logits; None
            balances the masked tokens of the batch with :func:`sinkhorn_knopp` instead.
    """
    # Only masked tokens get a target (Sinkhorn-Knopp balances exactly those); the rest stay 0.
    q = torch.zeros(teacher_patch_logits.shape, device=teacher_patch_logits.device)
    q[mask] = _teacher_probs(teacher_patch_logits[mask], center, teacher_temp)
    ce = _cross_entropy(student_patch_logits, q, student_temp)
    mask = mask.to(ce.dtype)
    per_volume = (ce * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    return per_volume.mean()


class Centering(nn.Module):
    """EMA center of teacher logits: ``c <- m c + (1 - m) mean(teacher logits)``.

    The mean is over every leading axis (views, batch, tokens) and, under
    ``torch.distributed``, over every rank. The center is a buffer, so it is saved with
    :meth:`state_dict`.

    Args:
        dim: ``K``, the number of prototypes.
        momentum: EMA momentum (DINO 0.9).
    """

    center: torch.Tensor

    def __init__(self, dim: int, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Move the center towards the mean of ``teacher_logits`` (``(..., K)`` or a list of them)."""
        if not isinstance(teacher_logits, torch.Tensor):
            teacher_logits = torch.cat([t.reshape(-1, t.shape[-1]) for t in teacher_logits])
        flat = teacher_logits.reshape(-1, teacher_logits.shape[-1]).float()
        total = _all_reduce(flat.sum(dim=0, keepdim=True))
        count = _all_reduce(torch.tensor(float(flat.shape[0]), device=flat.device))
        self.center.mul_(self.momentum).add_(total / count, alpha=1.0 - self.momentum)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits - center``."""
        return logits - self.center
