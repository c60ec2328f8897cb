"""Typed configuration: dataclasses, YAML profiles and ``key=value`` overrides.

A value flows YAML -> dataclass -> the one function that uses it. Resolution order, later wins:

1. the dataclass defaults below (the paper's settings where the paper states one),
2. a named profile, ``neurossl/profiles/<name>.yaml`` (``smoke``, ``demo``, ``paper``),
3. when resolving for an objective, that objective's block of the profile's
   ``neurossl/profiles/<name>/objectives.yaml`` (its optimiser, its data: DINO-MIM takes CT),
4. a user YAML file (``--config FILE``),
5. dotted overrides (``--set preprocess.crop_size=96``).

Every entry point (CLI, notebooks, the Python API, benchmarks, tests) resolves an objective's
settings through :func:`load_config` with ``objective=``, so they train the same thing.

Unknown or misspelled keys are errors that name the key and list the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "demo", "paper")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it."""


@dataclass
class CohortConfig:
    """The embedded synthetic demo cohort (``neurossl demo-data``)."""

    seed: int = 0
    subjects: int = 300  # total over all demo datasets, split by `dataset_shares`
    resolution_mm: int = 2  # MNI template resolution the subjects are warped from (1 or 2)
    # Fractions of subjects per dataset: cognition (ADNI-like), glioma (UCSF-PDGM-like),
    # autism (ABIDE-like), pool (unlabelled pretraining mix), headct (CT, FM-CT objective).
    dataset_shares: dict[str, float] = field(
        default_factory=lambda: {
            "cognition": 0.45,
            "glioma": 0.2,
            "autism": 0.15,
            "pool": 0.12,
            "headct": 0.08,
        }
    )
    anisotropic_fraction: float = 0.35  # share of thick-slice acquisitions
    max_visits: int = 3


@dataclass
class RuleSetConfig:
    """Dataset-specific curation of the official release (its ``data_generation.md``), applied on
    top of the common filters; each rule rejects with its own reason (neurossl.data.curation_rules)."""

    min_file_bytes: int = 0  # file must be larger; 0 = the common filter only
    exclude_folders: tuple[str, ...] = ()  # a folder of the path with one of these names
    exclude_name_patterns: tuple[str, ...] = ()  # case-insensitive substrings of the file name
    # case-insensitive substrings of the JSON sidecar's SeriesDescription (else the file name)
    exclude_contrasts: tuple[str, ...] = ()
    max_mean: float = 0.0  # mean voxel intensity above this is excluded; 0 = off
    min_std: float = 0.0  # voxel intensity std below this is excluded; 0 = off


OFFICIAL_MIN_BYTES = 2_500_000  # OASIS-3, SCAN, ADNI, PPMI: files of 2.5 MB or less are skipped
# OASIS-3's excluded contrasts (SeriesDescription keywords) and TOF angiography
OASIS3_CONTRASTS = ("mIP", "bold", "SWI", "DTI", "ASL", "dwi", "field_mapping", "epd2d", "MDDW",
                    "rsfmri", "Mag_", "Pha_", "TOF")


@dataclass
class OfficialRuleSets:
    """The named rule sets; select one with ``curation.rule_set``, change one with
    ``--set curation.rule_sets.scan.max_mean=3000``."""

    oasis3: RuleSetConfig = field(default_factory=lambda: RuleSetConfig(
        OFFICIAL_MIN_BYTES, exclude_folders=("fmap", "func", "swi", "dwi"),
        exclude_contrasts=OASIS3_CONTRASTS))
    scan: RuleSetConfig = field(default_factory=lambda: RuleSetConfig(
        OFFICIAL_MIN_BYTES, exclude_name_patterns=("_ME_", "_3TE_"), max_mean=2000.0, min_std=10.0))
    adni: RuleSetConfig = field(default_factory=lambda: RuleSetConfig(
        OFFICIAL_MIN_BYTES, exclude_name_patterns=("Spatially_Normalized",)))
    ppmi: RuleSetConfig = field(default_factory=lambda: RuleSetConfig(
        OFFICIAL_MIN_BYTES, exclude_name_patterns=("Spatially_Normalized", "T2_in_T1-anatomical_space")))


@dataclass
class CurationConfig:
    """Official curation filters (design section 3); each threshold configurable."""

    min_file_bytes: int = 1_000_000  # official: file > 1 MB
    min_fov_mm: float = 50.0  # field of view > 50 mm on every axis
    max_spacing_mm: float = 6.5  # voxel spacing <= 6.5 mm on every axis
    min_spacing_mm: float = 0.05  # below this a header spacing is treated as corrupt
    max_voxels: int = 1024**3  # absurd header dimensions beyond this are rejected
    patterns: tuple[str, ...] = ("*.nii.gz", "*.nii")
    exclude_suffixes: tuple[str, ...] = ("_mask.nii.gz", "_mask.nii")
    rule_set: str = ""  # "" (common filters only) or a field of OfficialRuleSets: oasis3, scan, ...
    rule_sets: OfficialRuleSets = field(default_factory=OfficialRuleSets)


@dataclass
class PreprocessConfig:
    """The paper's deterministic + per-item pipeline; output ``(1, depth, crop, crop)``."""

    crop_size: int = 160  # square in-plane size after crop + resize (paper 160)
    depth: int = 160  # number of slices after depth interpolation (paper code 160; text 64)
    margin: int = 6  # voxels kept around the brain bounding box
    clip_percentiles: tuple[float, float] = (1.0, 99.0)
    # brain: clip and z-score with the brain's statistics in the cached stage, 0 outside |
    # official: clip over the square-cropped box (zeros included) before resizing, z-score the
    # whole volume after resizing and augmentation (neurossl.data.preprocess)
    intensity: str = "brain"
    isotropy_ratio: float = 1.4  # max/min extent below this counts as near-isotropic
    # which extent `isotropy_ratio` compares (neurossl.data.preprocess.slice_axis): spacing = the
    # voxel spacing, near-isotropic volumes at eval on `eval_axis` | official = the cropped
    # array's voxel counts, the axis with the fewest voxels at eval
    axis_rule: str = "spacing"
    eval_axis: str = "axial"  # fixed slice axis for near-isotropic volumes at eval
    # the square in-plane crop at eval: centre | random (official; drawn per (seed, index), so
    # an evaluation is still reproducible)
    eval_crop: str = "centre"
    mask: str = "auto"  # auto | given | deepbet | threshold
    ct_windows: tuple[tuple[float, float], ...] = ((40.0, 80.0), (75.0, 215.0), (600.0, 2800.0))
    cache_dtype: str = "float16"


@dataclass
class AugmentConfig:
    """Training augmentations (neurossl.data.augment maps each to the official transform)."""

    enabled: bool = True
    noise_std: float = 0.01
    bias_coeff: float = 0.1
    gamma: float = 0.1
    aspect_ratio: tuple[float, float] = (0.9, 1.1)
    scale: tuple[float, float] = (0.9, 1.0)
    rotation_deg: float = 10.0
    # area: in-plane zoom of area ~ U(scale) and aspect ~ U(aspect_ratio), depth kept |
    # per_axis (official): each of the three axes zoomed by its own factor ~ U(aspect_ratio)
    affine_rule: str = "area"
    flip_prob: float = 0.0  # left-right flip of the first in-plane axis (official 0.5)
    blur_sigma: tuple[float, float] = (0.0, 0.0)  # Gaussian sigma per axis ~ U(range), voxels
    # all: every transform on every item | one_of (official): one spatial and one intensity
    # transform per item, drawn with these weights (normalised)
    policy: str = "all"
    spatial_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)  # affine, flip, none
    # bias field, gamma, noise, blur, none
    intensity_weights: tuple[float, float, float, float, float] = (0.0, 0.2, 0.2, 0.2, 0.4)
    # Where the arithmetic runs: False = per item in the loader workers; True = the items carry
    # their drawn parameters and the trainer augments the whole batch on its device (GPU nodes:
    # an augmented 160^3 item costs a CPU core ~0.3 s, the crop alone ~0.05 s). Same result.
    on_device: bool = False


@dataclass
class SplitConfig:
    """Subject-level split protocol (paper section 3)."""

    seed: int = 0
    downstream_fraction: float = 0.15  # cognition (ADNI-like): 85% pretrain / 15% downstream
    folds: int = 5
    val_fraction: float = 0.15  # of each fold's training subjects, stratified
    # glioma and autism are downstream only: single stratified 70 / 15 / 15 split each
    holdout_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)


@dataclass
class ModelConfig:
    """The one 3-D ViT encoder and its light heads (decoder, predictor)."""

    name: str = "vit_base"  # preset: vit_tiny | vit_small | vit_base | vit_large
    patch_size: int = 8  # in-plane patch (paper 8)
    tubelet_size: int = 8  # depth extent of a token (paper 8): 160^3 -> 20 x 20 x 20 tokens
    in_chans: int = 1
    embed_dim: int = 0  # 0 = the preset's width; set to shrink a preset for CPU demos
    depth: int = 0  # 0 = the preset's depth
    num_heads: int = 0  # 0 = the preset's heads
    drop_path: float = 0.0
    # position embedding channels per axis: False = half depth, a quarter each in-plane axis;
    # True = a third each (the official release's `uniform_power: true`)
    uniform_power: bool = False
    decoder_dim: int = 384  # official MAE decoder: 6 blocks, 384 wide
    decoder_depth: int = 6
    decoder_heads: int = 12
    predictor_dim: int = 384  # official JEPA predictor: 6 blocks, 384 wide
    predictor_depth: int = 6
    predictor_heads: int = 12
    moe_every: int = 2  # MoE-JEPA (Neuro-JEPA): every n-th block uses a sparse MoE MLP (>= 1)
    num_experts: int = 4
    moe_top_k: int = 2
    moe_capacity: float = 1.25


@dataclass
class MaskConfig:
    """Which tokens the encoder sees (paper: single-token blocks until 75% are masked)."""

    kind: str = "random"  # random (single-token blocks, the paper's setting) | multiblock (V-JEPA's generator)
    ratio: float = 0.75
    # random masking as the paper's text says it (paper: exactly `ratio` of the tokens, a mask
    # per volume) or as the official release does it (official: int(ratio N) tokens drawn with
    # replacement, ~53 % masked at 0.75, one mask per batch); see neurossl.masks
    sampling: str = "paper"
    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    depth_scale: tuple[float, float] = (1.0, 1.0)


@dataclass
class OptimConfig:
    """AdamW with warm-up + cosine learning rate and a cosine weight-decay schedule."""

    epochs: int = 300
    batch_size: int = 8  # per process
    accum_steps: int = 1
    lr: float = 1.5e-4
    start_lr: float = 1e-6
    final_lr: float = 1e-6
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    final_weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 0.0  # 0 = no clipping
    # global: one norm over all parameters from step 0 | official: the encoder and the other
    # networks (decoder / predictor / heads) clipped separately, only after warm-up
    grad_clip_rule: str = "global"
    ema: tuple[float, float] = (0.998, 1.0)  # teacher momentum schedule (JEPA family, DINO)
    # share of the run over which the momentum ramps from ema[0] to ema[1], then holds ema[1]
    # (1.0 at the end: a frozen teacher); the releases ramp over the whole run
    ema_ramp: float = 1.0
    # learning-rate factor of the objective's predictor (JEPA family, DINO-MIM) against the
    # encoder's; the releases train both at one rate
    predictor_lr_scale: float = 1.0


@dataclass
class ViewConfig:
    """Strength of the random 3-D views of SimCLR and DINO-MIM (:mod:`neurossl.objectives.views`).

    The defaults follow the 3D-Neuro-SimCLR release's augmentation chain (see that module).
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)  # kept fraction of EACH axis, drawn per axis
    flip_prob: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per axis (D, H, W)
    rotation_deg: float = 10.0  # each of the three angles ~ U(-deg, deg)
    jitter_prob: float = 0.8  # gamma, contrast and brightness are applied together with this p
    brightness: float = 0.5  # shift ~ U(-b, b), in the view's foreground stds
    contrast: float = 0.25  # factor ~ U(1 - c, 1 + c) around the foreground mean
    gamma: tuple[float, float] = (0.5, 1.5)  # exponent on the min-max-normalised foreground
    noise_std: float = 0.1  # Gaussian noise std ~ U(0, noise_std), in foreground stds


@dataclass
class ObjectiveConfig:
    """Per-objective settings; each objective reads only its own fields."""

    name: str = "mae"  # mae | slmae | jepa | vcr_jepa | simclr | dino_mim | moe_jepa
    # which network is exported: auto (JEPA family: the student, paper section 5.2; DINO-MIM:
    # the EMA teacher) | encoder (the student) | target_encoder (the EMA teacher)
    export_encoder: str = "auto"
    loss_p: float = 1.0  # |x - y|^p / p (official configs: p = 1; p = 2 is MSE / 2)
    norm_pix: bool = False
    spectral_weight: float = 0.01  # lambda (official 0.01)
    spectral_every: int = 25  # K: official 25, paper text 10; 1 = the plain, every-step version
    spectral_start_epoch: int = 10
    spectral_warmup_epochs: int = 20
    spectral_cutoff: float = 0.3
    vcr_alpha: float = 1.0
    vcr_beta: float = 0.1
    vcr_coeff: float = 1.0
    temperature: float = 0.1  # SimCLR NT-Xent
    simclr_views: ViewConfig = field(default_factory=ViewConfig)
    proj_dim: int = 128
    dino_out_dim: int = 1024
    dino_head_hidden: int = 2048  # DINO head MLP width (DINO 2048)
    dino_head_bottleneck: int = 256  # L2-normalised bottleneck before the prototypes (DINO 256)
    dino_teacher_temp: float = 0.04
    # the teacher temperature rises from this value over the first epochs (DINO; FM-CT 30); 0 = none
    dino_warmup_teacher_temp: float = 0.04
    dino_warmup_teacher_epochs: int = 0
    dino_student_temp: float = 0.1
    dino_local_crops: int = 2
    # DINO's global crops keep 40-100 % of the image area; a similar share of a volume is about
    # 70-100 % of each axis. The local views are boxes of these views' tokens.
    dino_views: ViewConfig = field(default_factory=lambda: ViewConfig(crop_scale=(0.7, 1.0)))
    dino_centering: str = "center"  # center (DINO, iBOT) | sinkhorn (Sinkhorn-Knopp, DINOv2)
    mim_weight: float = 1.0
    koleo_weight: float = 0.0  # DINOv2's KoLeo on the student's pooled global views (DINOv2 0.1; FM-CT 0)
    moe_aux_weight: float = 0.01
    # MoE-JEPA: the contrasts the encoder's modality embedding has a row for, in row order
    embedding_modalities: tuple[str, ...] = ("T1w", "T2w", "FLAIR")


@dataclass
class TrainConfig:
    """The run itself: where it writes, how often it checkpoints and logs."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    max_steps: int = 0  # 0 = epochs x steps per epoch; > 0 stops early (smoke runs)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    num_workers: int = 2
    # none | a torch.compile backend ("inductor" on GPU nodes): every transformer block compiled
    # in place, parameter names kept (checkpoints and exports as eager ones)
    compile: str = "none"
    # recompute each block's activations in backward (~1/3 more compute, a fraction of the
    # activation memory; the batch stays whole, unlike optim.accum_steps)
    activation_checkpointing: bool = False
    # CPU runs: glibc's malloc keeps freed tensor memory for the next step instead of returning
    # it to the kernel (no page faults on every step; a demo step 5-10 % faster on CPU; see
    # neurossl.runtime.host_memory)
    retain_host_memory: bool = True
    dist_timeout_s: int = 1800  # a collective that waits longer (a rank died or hangs) raises
    collapse_every: int = 50  # JEPA collapse monitor: std and effective rank of embeddings
    datasets: tuple[str, ...] = ()  # pretraining datasets of the split folder; () = all of them
    # the contrasts of the scans pretraining loads; CT for FM-CT (3 window channels)
    scan_modalities: tuple[str, ...] = ("T1w", "T2w", "FLAIR")


@dataclass
class EvalConfig:
    """Downstream evaluation (paper section 3): probes, fine-tuning, baselines, few-shot."""

    tasks: tuple[str, ...] = ("cognition_nc_vs_ad", "cognition_nc_vs_mci", "glioma_grade2_vs_34",
                              "glioma_multiclass", "autism_asd_vs_td")
    head: str = "attentive"  # attentive (V-JEPA's attentive probe) | linear (mean-pooled tokens)
    num_queries: int = 1
    batch_size: int = 8
    # frozen probes train on cached tokens, where a step costs little beyond its overhead;
    # 0 = batch_size (the released protocol uses one batch size for both)
    probe_batch_size: int = 0
    head_lr: float = 1e-3
    encoder_lr_scale: float = 0.1  # fine-tuning: encoder lr = head lr x this
    weight_decay: float = 0.05
    probe_epochs: int = 100  # frozen encoder: the head trains on cached tokens
    finetune_epochs: int = 400  # paper: 400
    warmup_epochs: float = 5.0
    patience: int = 20  # early stopping: epochs without a better validation score; 0 = never
    select: str = "loss"  # the epoch kept: loss (lowest validation loss) | auc (highest validation AUC)
    # fine-tuning's schedule: finetune_lr 0 = head_lr with the encoder at encoder_lr_scale;
    # > 0 = one lr for the whole network from finetune_start_lr to finetune_final_lr (official)
    finetune_lr: float = 0.0
    finetune_start_lr: float = 0.0
    finetune_final_lr: float = 0.0
    encoder_freeze_epochs: int = 0  # fine-tuning: the encoder is held fixed for these first epochs
    # fine-tuned encoders saved for the embedding analysis (paper Table 7 / Figure 4): the first
    # fold and seed of these tasks, under <eval>/finetuned/
    export_finetuned: tuple[str, ...] = ("cognition_nc_vs_ad",)
    # frozen probes of JEPA-family encoders on tasks outside the pretraining domain (glioma,
    # autism; paper section 5.2): longer schedules (0 = probe_epochs / warmup_epochs)
    cross_domain_tasks: tuple[str, ...] = ("glioma_grade2_vs_34", "glioma_multiclass", "autism_asd_vs_td")
    jepa_cross_domain_epochs: int = 0
    jepa_cross_domain_warmup_epochs: float = 0.0
    max_folds: int = 0  # 0 = every fold of a task; > 0 = the first n (CPU demos)
    seeds: tuple[int, ...] = (0,)
    resnet_lr: float = 1e-4  # ResNet50-3D from scratch
    resnet_epochs: int = 100
    resnet_input_size: int = 0  # 0 = the preprocessed size; > 0 resamples to this cube (CPU demo)
    resnet_tasks: tuple[str, ...] = ()  # full-data ResNet50-3D on these tasks only; () = every task
    voxel_size: int = 6  # `voxels` baseline: pooled to this cube (+ intensity quantiles), logistic regression
    fewshot_tasks: tuple[str, ...] = ("cognition_nc_vs_ad", "glioma_grade2_vs_34")
    fewshot_shots: tuple[int, ...] = (16, 32, 64)  # labelled volumes per class
    fewshot_seeds: tuple[int, ...] = (0, 1, 2)
    fewshot_mode: str = "frozen"  # frozen probe | finetune (paper section 6.5: classical fine-tuning)
    fewshot_objectives: tuple[str, ...] = ()  # SSL encoders in the few-shot curves; () = all given
    fewshot_resnet_epochs: int = 0  # ResNet50-3D in the few-shot curves (paper 180); 0 = resnet_epochs
    fewshot_test_size: int = 0  # scans of the first fold's test partition kept (paper 500); 0 = all
    bootstrap: int = 1000  # resamples of test subjects for 95% confidence intervals
    # per-contrast frozen probes, `<task>:<contrast>` (every partition keeps that contrast's
    # scans), of the `contrast_objectives` encoders and their own random twin: Neuro-JEPA's
    # modality routing judged on each contrast of the same subjects
    contrast_tasks: tuple[str, ...] = ()
    contrast_objectives: tuple[str, ...] = ("moe_jepa",)


@dataclass
class Config:
    """Everything a run needs; saved resolved inside every run folder."""

    profile: str = "demo"
    cohort: CohortConfig = field(default_factory=CohortConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskConfig = field(default_factory=MaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists, YAML-safe)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert lists to tuples where declared."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping of {hint.__name__} fields, got {value!r}")
        return _build(hint, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"'{key}' must have {len(args)} entries, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {k: _coerce(v, vtype, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string; a float field takes it as the number it is
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"'{key}' must be float, got {value!r}") from None
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"'{key}' must be {hint.__name__}, got {value!r}")
    return value


# Keys renamed since configs were first saved -> their new names, so that an old file names them.
RENAMED = {
    "train.modalities": "train.scan_modalities",  # which scans pretraining loads
    "objective.modalities": "objective.embedding_modalities",  # rows of MoE-JEPA's embedding
}


def _build(cls: type, values: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Instantiate ``cls`` from ``values`` on top of ``base`` (or the defaults), strictly."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    obj = base if base is not None else cls()
    for key, value in values.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            if full in RENAMED:
                hint = f" It was renamed '{RENAMED[full]}'."
            raise ConfigError(f"unknown config key '{full}'.{hint} Valid keys here: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            setattr(obj, key, _build(type(current), value, full, base=current))
        else:
            setattr(obj, key, _coerce(value, hints[key], full))
    return obj


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> nested dict; values parsed as YAML scalars / lists."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def profile_path(name: str) -> Path:
    """Path of the packaged YAML for profile ``name``."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile '{name}'; choose one of {', '.join(PROFILES)}")
    return Path(str(resources.files("neurossl") / "profiles" / f"{name}.yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config sections")
    return data


# Enumerated values, checked when a config is resolved so that a misspelt value fails at once,
# naming the key and the valid values, instead of falling into some default branch.
CHOICES: dict[str, tuple[str, ...]] = {
    "masking.kind": ("random", "multiblock"),
    "masking.sampling": ("paper", "official"),
    "model.name": ("vit_tiny", "vit_small", "vit_base", "vit_large"),
    "optim.grad_clip_rule": ("global", "official"),
    "objective.export_encoder": ("auto", "encoder", "target_encoder"),
    "objective.dino_centering": ("center", "sinkhorn"),
    "train.device": ("auto", "cpu", "cuda"),
    "preprocess.mask": ("auto", "given", "deepbet", "threshold"),
    "preprocess.intensity": ("brain", "official"),
    "augment.affine_rule": ("area", "per_axis"),
    "augment.policy": ("all", "one_of"),
    "preprocess.axis_rule": ("spacing", "official"),
    "preprocess.eval_axis": ("axial", "coronal", "sagittal"),
    "preprocess.eval_crop": ("centre", "random"),
    "evaluate.head": ("attentive", "linear"),
    "evaluate.select": ("loss", "auc"),
    "evaluate.fewshot_mode": ("frozen", "finetune"),
}

# Numbers with a valid range: key -> (test, the range in words), checked like CHOICES.
LIMITS: dict[str, tuple[typing.Callable[[float], bool], str]] = {
    "masking.ratio": (lambda v: 0.0 < v < 1.0, "in (0, 1)"),
    "model.moe_every": (lambda v: v >= 1, ">= 1 (every n-th block a mixture of experts)"),
    "model.num_experts": (lambda v: v >= 1, ">= 1"),
    "model.moe_top_k": (lambda v: v >= 1, ">= 1"),
    "model.patch_size": (lambda v: v >= 1, ">= 1"),
    "model.tubelet_size": (lambda v: v >= 1, ">= 1"),
    "optim.accum_steps": (lambda v: v >= 1, ">= 1"),
    "optim.ema_ramp": (lambda v: 0.0 < v <= 1.0, "in (0, 1] (the share of the run the momentum ramps over)"),
    "optim.predictor_lr_scale": (lambda v: v > 0.0, "> 0 (a factor of optim.lr)"),
    "optim.batch_size": (lambda v: v >= 1, ">= 1"),
    "evaluate.batch_size": (lambda v: v >= 1, ">= 1"),
    "evaluate.probe_batch_size": (lambda v: v >= 0, ">= 0 (0 = evaluate.batch_size)"),
}


def config_value(cfg: Config, dotted: str) -> Any:
    """The value of ``section.key`` in ``cfg``."""
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def validate_choices(cfg: Config) -> None:
    """Raise :class:`ConfigError` for any value of :data:`CHOICES` outside its valid set, for an
    objective the registry does not know, and for a number outside its :data:`LIMITS`."""
    from neurossl.objectives import OBJECTIVES  # the registry imports this module

    for dotted, valid in {**CHOICES, "objective.name": tuple(OBJECTIVES)}.items():
        value = config_value(cfg, dotted)
        if value not in valid:
            close = difflib.get_close_matches(str(value), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"'{dotted}' must be one of {', '.join(valid)}; got {value!r}.{hint}")
    for dotted, (within, words) in LIMITS.items():
        if not within(config_value(cfg, dotted)):
            raise ConfigError(f"'{dotted}' must be {words}; got {config_value(cfg, dotted)!r}")
    if cfg.model.moe_top_k > cfg.model.num_experts:
        raise ConfigError(f"'model.moe_top_k' ({cfg.model.moe_top_k}) must be <= 'model.num_experts' "
                          f"({cfg.model.num_experts})")
    validate_masking(cfg.masking)
    validate_contrast_tasks(cfg.evaluate.contrast_tasks)


def validate_contrast_tasks(names: tuple[str, ...]) -> None:
    """Each of ``evaluate.contrast_tasks`` must be ``<known task>:<contrast>``."""
    from neurossl.tasks import PAPER_TASKS, TASKS

    known = {**TASKS, **PAPER_TASKS}
    for name in names:
        task, _, contrast = str(name).partition(":")
        if task not in known or not contrast:
            raise ConfigError(f"'evaluate.contrast_tasks' entries are '<task>:<contrast>' with a task of "
                              f"{', '.join(known)}; got {name!r}")


def validate_masking(masking: MaskConfig) -> None:
    """Refuse settings the chosen masking would silently ignore.

    V-JEPA's multi-block generator masks the union of ``num_blocks`` random boxes, so the share
    of masked tokens follows from the box sizes, never from ``masking.ratio``.
    """
    if masking.kind == "multiblock" and masking.ratio != MaskConfig.ratio:
        raise ConfigError(
            f"'masking.ratio' ({masking.ratio}) applies to masking.kind=random only; multiblock "
            "masks the union of masking.num_blocks boxes, whose sizes (masking.spatial_scale, "
            "masking.depth_scale, masking.aspect_ratio) set the masked share. Remove masking.ratio "
            f"or set masking.kind=random")


def objective_layer(profile: str, objective: str) -> dict[str, Any]:
    """The block of ``objective`` in ``neurossl/profiles/<profile>/objectives.yaml`` ({} if none).

    A family shares one block through a YAML anchor (``vcr_jepa: *jepa``), so each setting is
    written once.
    """
    path = profile_path(profile).with_suffix("") / "objectives.yaml"
    if not path.is_file():
        return {}
    layer = read_yaml(path).get(objective) or {}
    if not isinstance(layer, dict):
        raise ConfigError(f"{path}: '{objective}' must be a mapping of config sections")
    return layer


def load_config(
    profile: str = "demo", path: str | Path | None = None, overrides: list[str] | None = None,
    objective: str | None = None,
) -> Config:
    """Resolve a :class:`Config` from a profile, the profile's settings for ``objective`` (when
    given; it also becomes ``objective.name``), an optional YAML file and overrides."""
    cfg = _build(Config, read_yaml(profile_path(profile)))
    cfg.profile = profile
    if objective is not None:
        cfg = _build(Config, objective_layer(profile, objective), f"{profile}/objectives.yaml:{objective}",
                     base=cfg)
        cfg.objective.name = objective
    if path is not None:
        cfg = _build(Config, read_yaml(path), base=cfg)
    if overrides:
        cfg = _build(Config, parse_overrides(overrides), base=cfg)
    validate_choices(cfg)
    return cfg


def saved_config(tree: dict[str, Any], source: str | Path,
                 sections: tuple[str, ...] = ("preprocess", "model")) -> Config:
    """The ``sections`` of a resolved config saved with a run or an export (``config.yaml``, a
    checkpoint's or an encoder sidecar's ``config``) over the defaults; the other sections keep
    their defaults, so a file written before a key elsewhere was renamed still reads. A bad key
    in a read section is an error naming ``source``."""
    try:
        return _build(Config, {k: tree[k] for k in sections if k in tree})
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with ``--config``)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
