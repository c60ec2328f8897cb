"""``neurossl evaluate``: every (encoder, task, mode) asked for, results appended as they finish.

Output folder layout:

- ``results.csv``: tidy rows ``encoder, objective, task, mode, fold, seed, metric, value``,
  appended after each (encoder, task, mode) so an interrupted batch keeps what it finished;
- ``predictions/<encoder>__<task>__<mode>.csv``: the test predictions of that evaluation
  (rewritten when it is rerun), read back by :mod:`neurossl.evaluate.report`;
- ``finetuned/<encoder>__<task>.safetensors``: encoders fine-tuned on an
  ``evaluate.export_finetuned`` task (first fold and seed), for the embedding analysis.

The mean-pooled tokens of every scan a frozen encoder encodes go to the cache's feature store
(``<cache_dir>/features``), where the embedding analysis finds them.

Baselines: ``random`` is the first encoder's architecture with random weights, evaluated with
the same protocol (on CT tasks, the first CT encoder's; MRI encoders are not probed on CT); ``resnet50`` is MONAI's ResNet50-3D trained from scratch (listed under
``finetune``, since all of its weights train); ``voxels`` is a logistic regression on
pooled intensities and their quantiles (listed under ``frozen``: nothing but a linear map is learnt).
"""

from __future__ import annotations

from pathlib import Path

from neurossl.config import Config
from neurossl.evaluate.backbones import EncoderSpec, random_twin, resolve_encoder
from neurossl.evaluate.feature_store import cache_feature_store
from neurossl.evaluate.run import EvalOutput, Evaluator
from neurossl.evaluate.tables import append_results
from neurossl.progress import tqdm
from neurossl.tasks import get_task

RESNET = EncoderSpec("resnet50", "none", None)
VOXELS = EncoderSpec("voxels", "none", None)


def plan(specs: list[EncoderSpec], baselines: list[str], modes: list[str]) -> list[tuple[EncoderSpec, str]]:
    """The (encoder, mode) pairs to run, baselines included.

    ``random`` copies the first encoder; when that one is not a CT encoder but another is, a
    second ``random`` copies the first CT encoder, for the CT tasks (see :func:`jobs`).
    """
    if "random" in baselines:
        if not specs:
            raise ValueError("--baseline random copies an encoder's architecture: give --encoder too")
        twins = [random_twin(specs[0])]
        ct = [s for s in specs if s.reads_ct]
        if ct and not specs[0].reads_ct:
            twins.append(random_twin(ct[0]))
        specs = [*specs, *twins]
    pairs = [(spec, mode) for spec in specs for mode in modes]
    if "resnet50" in baselines:
        pairs.append((RESNET, "finetune"))
    if "voxels" in baselines:
        pairs.append((VOXELS, "frozen"))
    return pairs


def jobs(specs: list[EncoderSpec], baselines: list[str], modes: list[str], tasks: list[str],
         resnet_tasks: tuple[str, ...] = ()) -> list[tuple[EncoderSpec, str, str]]:
    """``(encoder, mode, task)`` runs in order; full-data ResNet50-3D only on ``resnet_tasks``
    (every task when empty).

    CT tasks (``Task.input == "CT"``) go to CT encoders only, with their own random twin; an MRI
    encoder would see HU windows it never learnt, so it is skipped with a note. Where two
    random twins exist, the CT one runs the CT tasks and the MRI one the others.
    """
    pairs = plan(specs, baselines, modes)
    twins = [s for s, _ in pairs if s.name == "random"]
    ct_twin = next((s for s in twins if s.reads_ct), None)
    out, skipped = [], []
    for spec, mode in pairs:
        for task in tasks:
            task_input = get_task(task.partition(":")[0]).input
            if spec == RESNET and resnet_tasks and task not in resnet_tasks:
                continue
            if spec.name == "random" and ct_twin is not None and len(set(twins)) > 1:
                if (task_input == "CT") != spec.reads_ct:
                    continue
            if not spec.accepts(task_input):
                skipped.append(f"{spec.name} on {task}")
                continue
            out.append((spec, mode, task))
    if skipped:
        print(f"not probed on CT tasks (MRI encoders): {', '.join(sorted(set(skipped)))}")
    return out


def save(out: EvalOutput, out_dir: Path, stem: str) -> None:
    """Append the metric rows; (re)write this evaluation's prediction file."""
    append_results(out_dir / "results.csv", out.rows)
    folder = out_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    out.prediction_table().to_csv(folder / f"{stem}.csv", index=False)


def evaluate_all(cfg: Config, encoders: list[str | Path], baselines: list[str], tasks: list[str],
                 mode: str, cache_dir: str | Path, splits_dir: str | Path, out_dir: str | Path,
                 fewshot: bool = False, usable: set[str] | None = None) -> tuple[Path, Path]:
    """Run the evaluations; returns ``(results.csv, predictions folder)``.

    ``usable``: the scans a coverage report found cached; other split rows are left out.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [resolve_encoder(e) for e in encoders]
    modes = ["frozen", "finetune"] if mode == "both" else [mode]
    tasks = tasks or list(cfg.evaluate.tasks)
    evaluator = Evaluator(cfg, cache_dir, splits_dir, usable, export_dir=out_dir / "finetuned",
                          features=cache_feature_store(cache_dir))
    todo = jobs(specs, baselines, modes, tasks, cfg.evaluate.resnet_tasks)
    for spec, m, task in tqdm(todo, desc="evaluate", unit="run"):
        save(evaluator.run(spec, task, m), out_dir, f"{spec.name}__{task}__{m}")
    if fewshot:
        run_fewshot(evaluator, cfg, specs, baselines, out_dir)
    return out_dir / "results.csv", out_dir / "predictions"


def run_fewshot(evaluator: Evaluator, cfg: Config, specs: list[EncoderSpec], baselines: list[str],
                out_dir: Path) -> None:
    """Few-shot curves: the SSL encoders of ``evaluate.fewshot_objectives`` (probed frozen or
    fine-tuned, ``evaluate.fewshot_mode``) and the ResNet50-3D / voxels baselines."""
    e = cfg.evaluate
    chosen = [s for s in specs if not e.fewshot_objectives or s.objective in e.fewshot_objectives]
    models = chosen + [b for b in (RESNET, VOXELS) if b.name in baselines]
    jobs = [(spec, task, shots) for spec in models for task in e.fewshot_tasks for shots in e.fewshot_shots]
    for spec, task, shots in tqdm(jobs, desc="few-shot", unit="curve point"):
        out = EvalOutput()
        for seed in e.fewshot_seeds:
            out.extend(evaluator.run_fewshot(spec, task, shots, seed))
        save(out, out_dir, f"{spec.name}__{task}__fewshot_{shots}")
