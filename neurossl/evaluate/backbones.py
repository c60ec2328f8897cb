"""What gets evaluated: a pretrained encoder, its random-initialisation twin, or ResNet50-3D.

:class:`EncoderSpec` names an encoder the way results tables do (``encoder``, ``objective``).
:class:`TokenEncoder` adapts a :class:`~neurossl.models.VisionTransformer3D` to downstream
batches: MRI volumes are single-channel, so an encoder pretrained on 3-channel inputs (FM-CT's
CT windows) sees the MRI channel repeated; a multi-contrast encoder (MoE-JEPA) gets each
volume's contrast index from ``batch["modality"]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neurossl.config import Config, ConfigError, PreprocessConfig, config_value, saved_config
from neurossl.models import VisionTransformer3D, load_encoder
from neurossl.models.checkpoint_io import sidecar_path
from neurossl.models.vit import modality_index

BASELINES = ("random", "resnet50", "voxels")


# the settings that shape an encoder's input tokens: evaluating with other values than the
# encoder was trained with feeds it volumes of another size or tokens of another grid
INPUT_KEYS = ("preprocess.crop_size", "preprocess.depth", "model.patch_size", "model.tubelet_size")


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to evaluate.

    Attributes:
        name: its label in results (the run folder's name, ``random``, ``resnet50`` or
            ``voxels``).
        objective: the pretraining objective (``none`` for baselines).
        path: the exported ``encoder.safetensors``; for ``random``, the encoder whose
            architecture the random twin copies; None for ``resnet50`` and ``voxels``.
        modalities: contrast names in the order of the encoder's modality embedding.
        trained: the resolved config the encoder was trained with (its sidecar's
            ``meta.config``), or None (baselines, exports without one).
        inputs: the modalities it was pretrained on (``train.scan_modalities`` of its run);
            ``CT`` among them makes it a CT encoder, the only kind probed on CT tasks (whose HU
            windows come with its own preprocessing, :func:`encoder_preprocess`).
    """

    name: str
    objective: str
    path: Path | None
    modalities: tuple[str, ...] = ()
    # a dict: kept out of hashing and equality (the file identifies the encoder), so specs stay
    # usable as set members and dict keys
    trained: dict | None = field(default=None, compare=False, hash=False)
    inputs: tuple[str, ...] = ()

    @property
    def reads_ct(self) -> bool:
        """True for an encoder pretrained on head CT (FM-CT's DINO-MIM)."""
        return "CT" in self.inputs

    def accepts(self, task_input: str) -> bool:
        """Whether this encoder is probed on a task feeding ``task_input`` (``MR`` / ``CT``):
        CT tasks only for CT encoders; baselines without weights (resnet50, voxels) take both."""
        if task_input != "CT" or self.path is None:
            return True
        return self.reads_ct


def resolve_encoder(source: str | Path) -> EncoderSpec:
    """An :class:`EncoderSpec` from a run folder (holding ``encoder.safetensors``) or the file."""
    path = Path(source)
    if path.is_dir():
        path = path / "encoder.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no encoder at {source} (expected a run folder with "
                                "encoder.safetensors, or the .safetensors file)")
    meta = {}
    if sidecar_path(path).is_file():
        meta = json.loads(sidecar_path(path).read_text()).get("meta", {})
    objective = str(meta.get("objective") or "unknown")
    trained = meta.get("config")
    section = (trained or {}).get("objective", {})
    # exports written before the field's rename call it `modalities`
    modalities = tuple(section.get("embedding_modalities", section.get("modalities", ())))
    train = (trained or {}).get("train", {})
    inputs = tuple(train.get("scan_modalities", train.get("modalities", ())))
    name = path.parent.name if path.name == "encoder.safetensors" else path.stem
    return EncoderSpec(name, objective, path, modalities, trained, inputs)


def encoder_preprocess(spec: EncoderSpec, cfg: Config) -> PreprocessConfig:
    """The per-item preprocessing that feeds ``spec``'s encoder: the ``preprocess`` section of
    the config it was trained with (``cfg.preprocess`` when the export records none).

    Raises:
        ConfigError: ``cfg`` (the evaluating config, whose cache and baselines the encoder is
            compared on) disagrees with the encoder on a key of :data:`INPUT_KEYS`; the message
            names the encoder file, the key and both values.
    """
    if spec.trained is None:
        return cfg.preprocess
    trained = saved_config(spec.trained, spec.path)
    for key in INPUT_KEYS:
        own, evaluating = config_value(trained, key), config_value(cfg, key)
        if own != evaluating:
            raise ConfigError(
                f"{spec.path}: the encoder was trained with {key}={own}, the evaluating config has "
                f"{key}={evaluating}; evaluate it with its own setting (--set {key}={own}) or "
                "pretrain an encoder for this one")
    return trained.preprocess


def encoder_heads(spec: EncoderSpec) -> int:
    """The encoder's attention heads, read from its sidecar: an attentive probe on its tokens
    uses as many (V-JEPA's probe takes the encoder's ``num_heads``)."""
    sidecar = sidecar_path(spec.path)
    config = json.loads(sidecar.read_text()).get("config") or {} if sidecar.is_file() else {}
    if "num_heads" not in config:
        raise ValueError(f"{spec.path}: its sidecar has no config.num_heads; re-export the encoder")
    return int(config["num_heads"])


def random_twin(spec: EncoderSpec) -> EncoderSpec:
    """The same architecture as ``spec`` with random weights (the paper's key control)."""
    return replace(spec, name="random", objective="none")


class TokenEncoder(nn.Module):
    """``batch`` -> encoder tokens ``(B, N, D)`` for downstream heads."""

    def __init__(self, encoder: VisionTransformer3D, modalities: tuple[str, ...] = ()):
        super().__init__()
        self.encoder = encoder
        self.modalities = modalities
        self.embed_dim = encoder.embed_dim
        self.num_heads = encoder.num_heads

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["image"]
        if x.shape[1] != self.encoder.in_chans:
            if x.shape[1] != 1:
                raise ValueError(f"encoder takes {self.encoder.in_chans} channels, batch has {x.shape[1]}")
            x = x.expand(-1, self.encoder.in_chans, -1, -1, -1)
        return self.encoder(x, modality=self.modality_ids(batch, x.device))

    def modality_ids(self, batch: dict, device: torch.device) -> torch.Tensor | None:
        """Per-volume row of the encoder's modality embedding, ``(B,)`` long, or None."""
        if not hasattr(self.encoder, "modality_embed"):
            return None
        return modality_index(batch.get("modality"), self.modalities, device)


def build_token_encoder(spec: EncoderSpec) -> TokenEncoder:
    """Load ``spec`` (random weights for the ``random`` twin) as a :class:`TokenEncoder`."""
    reference = load_encoder(spec.path)
    if spec.name == "random":
        torch.manual_seed(0)  # the twin is the same network whichever encoder it copies
        reference = VisionTransformer3D(**reference.config)
    return TokenEncoder(reference, spec.modalities)


class ResNetClassifier(nn.Module):
    """MONAI's ResNet50 3-D (``spatial_dims=3``) from scratch: ``batch`` -> logits ``(B, K)``.

    The stem convolution has stride 2 as in the original ResNet and MedicalNet's 3-D ResNets
    (MONAI's default stride 1 costs 8x the compute at no gain for whole-brain inputs).
    ``input_size`` > 0 resamples volumes to that cube first: a CPU demo trains ResNet50-3D at
    32^3, where a 64^3 step would take minutes.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 0):
        super().__init__()
        from monai.networks.nets import resnet50

        self.input_size = input_size
        self.net = resnet50(spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes,
                            conv1_t_stride=2)

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["image"]
        if self.input_size and tuple(x.shape[2:]) != (self.input_size,) * 3:
            x = F.interpolate(x, size=(self.input_size,) * 3, mode="trilinear", align_corners=False)
        return self.net(x)


class EncoderClassifier(nn.Module):
    """A :class:`TokenEncoder` and a probe head: ``batch`` -> logits ``(B, K)`` (fine-tuning)."""

    def __init__(self, encoder: TokenEncoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.encoder(batch))


class TokenClassifier(nn.Module):
    """A probe head over cached tokens: ``batch["tokens"]`` ``(B, N, D)`` -> logits ``(B, K)``."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(batch["tokens"].float())
