"""Sparse Mixture-of-Experts MLP (Neuro-JEPA's sparse encoder), GShard / Switch style.

Each token is routed to its ``top_k`` experts by a linear router; the gates are the router's
softmax restricted to those experts and renormalised to sum to one (GShard); with ``top_k=1`` the
gate is the raw probability (Switch), since a renormalised single gate would be constant 1 and
pass no gradient to the router. Every expert takes at most
``capacity = ceil(capacity_factor * top_k * T / num_experts)`` of the ``T`` tokens in the batch;
first choices of all tokens are served before second choices, and within a rank earlier tokens
first. An assignment beyond its expert's capacity is dropped: it contributes zero, so a token
whose every assignment was dropped passes through the block unchanged by the residual connection.
Dropping happens in training only: in ``eval()`` mode each expert has room for every token, so a
volume's features (for probes, cached embeddings) never depend on the other volumes in its batch.

Dispatch is vectorised: every (token, choice) assignment gets a slot ``expert * capacity +
position``; tokens are gathered into a fixed ``(num_experts, capacity, dim)`` buffer, all experts
run at once as batched matrix products, and outputs are gathered back and summed with
``index_add``. Shapes are static, so no host synchronisation happens on GPU.

After each forward, ``aux_loss`` holds the Switch / GShard load-balancing loss
``num_experts * sum_e f_e * P_e``, where ``f_e`` is the fraction of the ``T * top_k`` router
assignments sent to expert ``e`` (before capacity) and ``P_e`` the mean router probability of
``e``. It equals 1.0 when either is uniform and grows to ``num_experts`` under total collapse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class MoEConfig:
    """Which blocks are sparse and how: block ``i`` (0-based) is an MoE block when
    ``(i + 1) % every == 0`` (``every=2``: blocks 1, 3, 5, ...; ``every=1``: all)."""

    num_experts: int = 8
    top_k: int = 2
    capacity_factor: float = 1.25
    every: int = 2

    def __post_init__(self):
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"MoE top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        if self.capacity_factor <= 0 or self.every < 1:
            raise ValueError(f"MoE needs capacity_factor > 0 and every >= 1, got {self}")

    def applies_to(self, block_index: int) -> bool:
        return (block_index + 1) % self.every == 0

    @classmethod
    def from_value(cls, value: MoEConfig | Mapping | None) -> MoEConfig | None:
        """Accept a config, a mapping of its fields (from YAML / JSON) or None (dense model)."""
        if value is None or isinstance(value, MoEConfig):
            return value
        return cls(**value)


class ExpertLinear(nn.Module):
    """``num_experts`` independent linear maps applied at once: (E, C, in) -> (E, C, out)."""

    def __init__(self, num_experts: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_experts, out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class ExpertMLPs(nn.Module):
    """``num_experts`` GELU MLPs ``fc1 -> GELU -> fc2`` run in parallel: (E, C, dim) -> (E, C, dim)."""

    def __init__(self, num_experts: int, dim: int, hidden: int):
        super().__init__()
        self.fc1 = ExpertLinear(num_experts, dim, hidden)
        self.act = nn.GELU()
        self.fc2 = ExpertLinear(num_experts, hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MoEMLP(nn.Module):
    """Top-k routed mixture of expert MLPs: (B, N, dim) -> (B, N, dim); see the module docstring."""

    def __init__(self, dim: int, hidden: int, num_experts: int, top_k: int = 2,
                 capacity_factor: float = 1.25):
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.capacity_factor = capacity_factor
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = ExpertMLPs(num_experts, dim, hidden)
        self.aux_loss: torch.Tensor | None = None
        self.dropped_fraction: torch.Tensor | None = None

    def capacity(self, num_tokens: int) -> int:
        """Slots per expert for a batch of ``num_tokens`` tokens; in eval mode every token fits."""
        if not self.training:
            return num_tokens
        return max(1, math.ceil(self.capacity_factor * self.top_k * num_tokens / self.num_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (T, dim)
        num_tokens, num_experts = x.shape[0], self.num_experts
        capacity = self.capacity(num_tokens)

        probs = self.router(x).float().softmax(dim=-1)  # (T, E)
        gates, experts = probs.topk(self.top_k, dim=-1)  # (T, k)
        if self.top_k > 1:
            gates = gates / gates.sum(dim=-1, keepdim=True)

        # assignments in priority order: all first choices, then all second choices, ...
        expert = experts.t().reshape(-1)  # (k T,)
        token = torch.arange(num_tokens, device=x.device).repeat(self.top_k)
        gate = gates.t().reshape(-1)
        one_hot = F.one_hot(expert, num_experts)  # (k T, E)
        position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1) - 1  # rank within its expert
        kept = position < capacity
        overflow = num_experts * capacity  # one spare slot that collects dropped assignments
        slot = torch.where(kept, expert * capacity + position, overflow)

        # dispatch: slot -> token (index num_tokens is a zero row, for empty slots)
        token_of_slot = torch.full((overflow + 1,), num_tokens, device=x.device, dtype=torch.long)
        token_of_slot.scatter_(0, slot, token)
        padded = torch.cat([x, x.new_zeros(1, x.shape[1])])
        buffer = padded[token_of_slot[:overflow]].view(num_experts, capacity, -1)
        out_slots = self.experts(buffer).reshape(overflow, -1)

        # combine: gate-weighted expert outputs summed per token; dropped ones read a zero row
        out_slots = torch.cat([out_slots, out_slots.new_zeros(1, out_slots.shape[1])])
        contrib = out_slots[slot] * gate.unsqueeze(1).to(out_slots.dtype)
        out = contrib.new_zeros(num_tokens, contrib.shape[1]).index_add_(0, token, contrib)

        fraction = one_hot.float().mean(dim=0)  # f_e: share of assignments, before capacity
        self.aux_loss = num_experts * (fraction * probs.mean(dim=0)).sum()
        self.dropped_fraction = 1.0 - kept.float().mean().detach()
        return out.reshape(shape)

    def __getstate__(self):
        # the last forward's losses hold its autograd graph: neither pickled nor deep-copied
        state = super().__getstate__()
        state["aux_loss"] = state["dropped_fraction"] = None
        return state
