"""KoLeo regulariser (DINOv2): spread a batch of embeddings uniformly over the sphere.

The Kozachenko-Leonenko differential-entropy estimator, up to constants, is the mean log distance
of each sample to its nearest neighbour; DINOv2 maximises it on the student's global-view
embeddings (weight 0.1). It counters the failure self-distillation suffers on small, homogeneous
cohorts such as the demo's head CTs: when every volume's embedding is nearly the same, the
teacher's centred targets carry no per-volume information and drift to the uniform distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``-mean_i log min_{j != i} || x_i - x_j ||`` of the L2-normalised rows of ``x``.

    Args:
        x: ``(N, D)`` embeddings, ``N >= 2``.
        eps: added to each distance so that duplicate rows give a large finite loss.

    Returns:
        Scalar; lower when the rows are spread out. For ``N`` orthogonal rows it is
        ``-log sqrt(2)``.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"koleo_loss expects (N, D) with N >= 2, got {tuple(x.shape)}")
    z = F.normalize(x.float(), dim=-1, eps=eps)
    with torch.no_grad():  # the neighbour's identity is a selection, not a function to differentiate
        similarity = z @ z.T
        similarity.fill_diagonal_(-2.0)  # never one's own neighbour (cosines lie in [-1, 1])
        nearest = similarity.argmax(dim=1)
    distances = (z - z[nearest]).norm(dim=-1)
    return -torch.log(distances + eps).mean()
