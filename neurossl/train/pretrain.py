"""``neurossl pretrain``: splits (audited) -> cached volumes -> objective -> trainer -> encoder export.

The run folder holds the resolved config, the environment (git commit, library versions), the
metrics log, the checkpoints and, at the end, ``encoder.safetensors`` with its JSON sidecar.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pandas as pd
import torch

from neurossl import __version__
from neurossl.config import Config, save_config, to_dict
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.splits.audit import assert_no_leakage
from neurossl.splits.files import read_splits
from neurossl.models import save_encoder
from neurossl.objectives import build_objective
from neurossl.objectives.base import EXPORT_KEYS
from neurossl.train.distributed import any_rank, init_distributed, shutdown_distributed
from neurossl.train.trainer import Trainer


def git_commit() -> str | None:
    """The checked-out commit of the neurossl sources, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict:
    """Versions a result depends on, saved in every run folder."""
    import monai
    import numpy

    return {"neurossl": __version__, "git_commit": git_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "monai": monai.__version__, "numpy": numpy.__version__,
            "cuda": torch.version.cuda, "platform": platform.platform()}


def pretraining_scans(splits_dir: str | Path, cache_index: pd.DataFrame, datasets: tuple[str, ...],
                      modalities: tuple[str, ...]) -> list[str]:
    """Scan ids of the ``pretrain`` partitions, refusing a split folder with subject leakage."""
    assert_no_leakage(splits_dir)
    splits = read_splits(splits_dir)
    pretrain = splits[splits["partition"] == "pretrain"]
    if datasets:
        missing = sorted(set(datasets) - set(pretrain["dataset"]))
        if missing:
            raise ValueError(f"{splits_dir}: no pretraining split for datasets {missing}")
        pretrain = pretrain[pretrain["dataset"].isin(datasets)]
    cached = cache_index[(cache_index["status"] == "ok") & cache_index["modality"].isin(modalities)]
    uids = sorted(set(pretrain["scan_uid"]) & set(cached["scan_uid"]))
    if not uids:
        raise ValueError(f"no cached scans of modalities {list(modalities)} in the pretraining splits "
                         f"of {splits_dir}")
    return uids


def pretrain(cfg: Config, cache_dir: str | Path, splits_dir: str | Path, run_dir: str | Path,
             resume: bool = False) -> Path:
    """Pretrain ``cfg.objective.name``; returns the exported encoder's path."""
    from neurossl.data.cache import read_index

    run_dir = Path(run_dir)
    env = init_distributed(cfg.train.device, cfg.train.dist_timeout_s)
    finished = False
    try:
        torch.manual_seed(cfg.train.seed)
        uids = pretraining_scans(splits_dir, read_index(cache_dir), cfg.train.datasets, cfg.train.scan_modalities)
        dataset = CachedVolumeDataset(cache_dir, uids, train=True, preprocess=cfg.preprocess,
                                      augment=cfg.augment, seed=cfg.train.seed)
        input_shape = tuple(dataset[0]["image"].shape)
        objective = build_objective(cfg, input_shape)
        trainer = Trainer(cfg, objective, dataset, run_dir, env)
        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, run_dir / "config.yaml")
            (run_dir / "environment.json").write_text(json.dumps(environment(), indent=2))
        if env.is_main:
            layout = trainer.layout()
            print(f"global batch {trainer.global_batch}: {layout['world_size']} processes x "
                  f"{layout['batch_size']} volumes x {layout['accum_steps']} accumulation steps")
        # torchrun --max-restarts relaunches the same command after a worker died: it continues
        # from the newest checkpoint. Each node's agent counts its own restarts (one restarted
        # for another node's failure may count 0), so one restarted rank decides for all.
        restarted = any_rank(env.restart_count > 0)
        if (resume or restarted) and trainer.resume() and env.is_main:
            how = "after a restart by torchrun" if restarted else "with --resume"
            print(f"resumed {run_dir} at step {trainer.position.step} {how}")
        trainer.fit()
        path = run_dir / "encoder.safetensors"
        if env.is_main:
            meta = {"objective": objective.name, "steps": trainer.position.step,
                    "checkpoint_key": objective.export_key,
                    "encoder_role": EXPORT_KEYS[objective.export_key],
                    "data": {"cache": str(cache_dir), "splits": str(splits_dir), "scans": len(uids)},
                    "git_commit": git_commit(), "config": to_dict(cfg)}
            save_encoder(objective.encoder(), path, meta)
        finished = True
        return path
    finally:
        shutdown_distributed(finished)
