"""Downstream evaluation: probe heads, few-shot sampling, task labels, fold and subject isolation."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from neurossl.config import ConfigError, load_config
from neurossl.data.cache import read_index
from neurossl.splits.files import read_splits
from neurossl.evaluate import run as run_module
from neurossl.evaluate.backbones import EncoderSpec, TokenClassifier, random_twin, resolve_encoder
from neurossl.evaluate.fewshot import sample_per_class
from neurossl.evaluate.fit import FitSettings, TokenItems, class_weights, fit_classifier, predict
from neurossl.evaluate.heads import AttentiveProbe, LinearProbe, build_head
from neurossl.evaluate.run import Evaluator
from neurossl.evaluate.tasks import fold_partitions, labelled, task_folds
from neurossl.tasks import TASKS, get_task


def test_heads_map_tokens_to_logits_and_ignore_token_order():
    torch.manual_seed(0)
    tokens = torch.randn(3, 20, 16)
    perm = torch.randperm(20)
    for head in (AttentiveProbe(16, 4, num_heads=4, num_queries=2), LinearProbe(16, 4)):
        head.eval()
        logits = head(tokens)
        assert logits.shape == (3, 4)
        # both pool over tokens: position information is in the tokens, not in their order
        torch.testing.assert_close(head(tokens[:, perm]), logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown probe head"):
        build_head("mlp", 16, 2)


def v_jepa_attentive_probe(probe: AttentiveProbe, tokens: torch.Tensor) -> torch.Tensor:
    """The probe's function as V-JEPA's attentive pooler writes it, keys and values per token.

    From its ``CrossAttention.forward``:
    ``q = self.q(q).reshape(B, n, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)``,
    ``kv = self.kv(x).reshape(B, N, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)``,
    ``q = F.scaled_dot_product_attention(q, k, v)``, ``q = q.transpose(1, 2).reshape(B, n, C)``,
    ``q = self.proj(q)``; and its block: ``y = self.xattn(q, self.norm1(x))``, ``q = q + y``,
    ``q = q + self.mlp(self.norm2(q))``.
    """
    attn = probe.attn
    q = probe.query_tokens.expand(tokens.shape[0], -1, -1)
    x = probe.norm1(tokens)
    B, n, C = q.shape
    N, heads = x.shape[1], attn.num_heads
    qh = attn.q(q).reshape(B, n, heads, C // heads).permute(0, 2, 1, 3)
    kv = attn.kv(x).reshape(B, N, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(qh, kv[0], kv[1]).transpose(1, 2).reshape(B, n, C)
    q = q + attn.proj(y)
    q = q + probe.mlp(probe.norm2(q))
    return probe.linear(q.mean(dim=1))


@pytest.mark.parametrize("heads, queries", [(1, 1), (4, 1), (2, 3)])
def test_attentive_probe_is_v_jepas_pooler_without_per_token_keys(heads, queries):
    # the probe never forms keys and values per token; its outputs and gradients are the pooler's
    torch.manual_seed(heads * 10 + queries)
    probe = AttentiveProbe(16, 3, num_heads=heads, num_queries=queries)
    with torch.no_grad():  # a LayerNorm affine and biases away from their initial 1 / 0
        for param in probe.parameters():
            param.add_(0.3 * torch.randn_like(param))
    tokens = (2.0 * torch.randn(5, 40, 16) + 0.5).requires_grad_()
    ours = probe(tokens)
    reference = v_jepa_attentive_probe(probe, tokens)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(ours.square().sum(), [tokens, *probe.parameters()])
    expected = torch.autograd.grad(reference.square().sum(), [tokens, *probe.parameters()])
    for got, want in zip(grads, expected):
        # the key bias's gradient is 0 in exact arithmetic (the softmax ignores a shift), so the
        # pooler's is rounding noise: compare on the scale of each gradient
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(want.abs().max())))


def test_attentive_probe_can_single_out_one_token():
    # a query attends to the token that matches it; mean pooling dilutes the same signal 20x
    probe = AttentiveProbe(8, 2, num_heads=1)
    tokens = torch.zeros(1, 20, 8)
    tokens[0, 7] = 5.0
    with torch.no_grad():
        probe.query_tokens.copy_(torch.full((1, 1, 8), 5.0))
        probe.attn.q.weight.copy_(torch.eye(8))
        probe.attn.kv.weight[:8].copy_(torch.eye(8))
        probe.attn.q.bias.zero_()
        probe.attn.kv.bias.zero_()
        probe.norm1 = torch.nn.Identity()
    queries = probe.query_tokens
    weights = torch.softmax(probe.attn.q(queries) @ probe.attn.kv(tokens)[..., :8].transpose(1, 2), -1)
    assert weights[0, 0, 7] > 0.99


def frame(counts: dict[int, list[int]]) -> pd.DataFrame:
    """rows: class -> scans per subject."""
    rows = []
    for label, scans in counts.items():
        for s, n in enumerate(scans):
            rows += [{"subject_id": f"s{label}_{s}", "scan_uid": f"s{label}_{s}_v{v}", "y": label}
                     for v in range(n)]
    return pd.DataFrame(rows)


def test_fewshot_draws_k_per_class_distinct_subjects_first():
    data = frame({0: [3, 3, 3, 3], 1: [1] * 10})
    picked = sample_per_class(data, 4, seed=0)
    assert picked.groupby("y").size().to_dict() == {0: 4, 1: 4}
    assert picked[picked["y"] == 0]["subject_id"].nunique() == 4  # one visit of each subject
    assert picked.equals(sample_per_class(data, 4, seed=0))
    assert not picked.equals(sample_per_class(data, 4, seed=1))
    five = sample_per_class(data, 5, seed=0)  # 4 subjects: the fifth draw is a second visit
    assert five[five["y"] == 0]["subject_id"].nunique() == 4
    with pytest.raises(ValueError, match="class 1 has 10 training volumes, fewer than 11"):
        sample_per_class(data, 11, seed=0)


def test_fit_without_validation_runs_every_epoch_and_keeps_the_final_weights():
    g = torch.Generator().manual_seed(0)
    y = np.array([0, 1] * 16)
    tokens = torch.randn(32, 4, 8, generator=g)
    tokens[..., 0] += 3.0 * torch.tensor(y)[:, None].float()  # class 1: feature 0 raised
    data = TokenItems(tokens, y)
    settings = FitSettings(epochs=8, lr=5e-2, patience=1, batch_size=8)
    torch.manual_seed(0)
    model = TokenClassifier(LinearProbe(8, 2))
    info = fit_classifier(model, data, None, y, 2, settings, torch.device("cpu"))
    assert info["epochs_run"] == 8 and info["best_epoch"] == 7 and np.isnan(info["best_val_loss"])
    proba, labels = predict(model, data, torch.device("cpu"))
    assert (proba.argmax(1) == labels).mean() > 0.9  # trained: an untrained probe is near 0.5
    # the same recipe again: the same final weights (the loop seeds itself)
    torch.manual_seed(0)
    again = TokenClassifier(LinearProbe(8, 2))
    fit_classifier(again, data, None, y, 2, settings, torch.device("cpu"))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_class_weights_balance_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0])


def test_labels_outside_the_task_are_an_error():
    task = get_task("cognition_nc_vs_ad")
    rows = pd.DataFrame({"subject_id": ["a", "b"], "scan_uid": ["a1", "b1"]})
    labels = pd.Series({"a1": "NC", "b1": "MCI"})
    with pytest.raises(ValueError, match="no label of task cognition_nc_vs_ad .*MCI"):
        labelled(rows, labels, task, "here")
    assert labelled(rows.iloc[:1], labels, task, "here")["y"].tolist() == [0]
    with pytest.raises(ValueError, match="unknown task"):
        get_task("cognition_nc_vs_everything")


def test_folds_keep_subjects_apart_and_cover_the_downstream_pool(smoke_data):
    labels = read_index(smoke_data / "cache").set_index("scan_uid")["label"]
    splits = read_splits(smoke_data / "splits")
    for task in TASKS.values():
        folds = task_folds(task, smoke_data / "splits")
        tested = []
        for fold in folds:
            parts = fold_partitions(task, smoke_data / "splits", fold, labels)
            subjects = {p: set(f["subject_id"]) for p, f in parts.items()}
            assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"]
            assert not subjects["train"] & subjects["val"]
            tested += list(subjects["test"])
        if folds != [None]:  # cross-validation: every downstream subject is tested exactly once
            pool = splits[(splits["dataset"] == task.dataset) & (splits["task"] == task.split_task)]
            assert sorted(tested) == sorted(pool["subject_id"].unique())


def test_no_test_subject_reaches_training_or_early_stopping(smoke_data, smoke_runs, monkeypatch):
    """Spy on the fitting step: the scans it trains and early-stops on never include a test subject."""
    seen = []

    def spy(model, train, val, train_y, num_classes, settings, device):
        seen.append((set(train_frames[-1]["subject_id"]), set(val_frames[-1]["subject_id"])))
        return {}

    train_frames, val_frames, test_frames = [], [], []
    original = Evaluator.fit_predict

    def recording(self, spec, task, mode, parts, seed, desc):
        train_frames.append(parts["train"])
        val_frames.append(parts["val"])
        test_frames.append(parts["test"])
        return original(self, spec, task, mode, parts, seed, desc)

    monkeypatch.setattr(run_module, "fit_classifier", spy)
    monkeypatch.setattr(Evaluator, "fit_predict", recording)
    cfg = load_config("smoke")
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    spec = resolve_encoder(smoke_runs["mae"])
    out = evaluator.run(spec, "cognition_nc_vs_ad", "frozen")
    out.extend(evaluator.run(random_twin(spec), "glioma_multiclass", "frozen"))
    assert len(seen) == len(test_frames) == 3
    for (train, val), test in zip(seen, test_frames):
        assert not (train | val) & set(test["subject_id"])
    predictions = out.prediction_table()
    assert set(predictions["scan_uid"]) == set(pd.concat(test_frames)["scan_uid"])


def test_jobs_limit_full_data_resnet_to_its_tasks():
    from neurossl.evaluate.backbones import EncoderSpec
    from neurossl.evaluate.runner import RESNET, jobs

    a, b = "cognition_nc_vs_ad", "glioma_grade2_vs_34"
    mae = EncoderSpec("mae", "mae", None)
    todo = jobs([mae], ["random", "resnet50"], ["frozen"], [a, b], resnet_tasks=(b,))
    assert [(s.name, m, t) for s, m, t in todo] == [
        ("mae", "frozen", a), ("mae", "frozen", b), ("random", "frozen", a),
        ("random", "frozen", b), ("resnet50", "finetune", b)]
    every = jobs([mae], ["resnet50"], ["frozen"], [a, b])
    assert [t for s, _, t in every if s == RESNET] == [a, b]


def test_ct_tasks_go_to_ct_encoders_and_their_own_random_twin(capsys):
    from pathlib import Path

    from neurossl.evaluate.backbones import EncoderSpec
    from neurossl.evaluate.runner import jobs

    # as resolve_encoder builds them: with the saved config, a dict
    mae = EncoderSpec("mae", "mae", Path("mae.safetensors"), trained={"train": {}},
                      inputs=("T1w", "T2w", "FLAIR"))
    fmct = EncoderSpec("dino_mim", "dino_mim", Path("ct.safetensors"), trained={"train": {}},
                       inputs=("CT",))
    mri, ct = "glioma_grade2_vs_34", "headct_ich"
    todo = [(s.name, s.path, t) for s, _, t in jobs([mae, fmct], ["random", "voxels"], ["frozen"], [mri, ct])]
    assert ("mae", mae.path, ct) not in todo and ("mae", mae.path, mri) in todo
    assert ("dino_mim", fmct.path, ct) in todo and ("dino_mim", fmct.path, mri) in todo
    # one random twin per input kind: mae's on MRI tasks, dino_mim's on the CT task
    assert [(p, t) for n, p, t in todo if n == "random"] == [(mae.path, mri), (fmct.path, ct)]
    assert ("voxels", None, ct) in todo
    assert "mae on headct_ich" in capsys.readouterr().out
    assert get_task(ct).input == "CT" and get_task(mri).input == "MR"


def test_one_task_class_serves_splits_and_evaluation():
    from neurossl import tasks as catalogue
    from neurossl.evaluate import tasks as evaluate_tasks
    from neurossl.splits.make import DEMO_PROTOCOL

    # the evaluation reads folds of the one catalogue; it keeps no table or class of its own
    assert not hasattr(evaluate_tasks, "TASKS")
    assert getattr(evaluate_tasks, "Task", catalogue.Task) is catalogue.Task
    written = {t for rule in DEMO_PROTOCOL.values() for t in rule.tasks}
    assert written == set(catalogue.TASKS.values())
    assert all(isinstance(t, catalogue.Task) for t in written)


def scripted_scores(monkeypatch, scores):
    """Make the fit loop see ``scores`` as its per-epoch validation scores."""
    from neurossl.evaluate import fit as fit_module

    it = iter(scores)
    monkeypatch.setattr(fit_module, "validation_score", lambda *a, **k: (next(it), 0.5))


@pytest.mark.parametrize("patience, epochs_run", [(0, 6), (2, 4)])
def test_fit_keeps_the_best_scored_epoch_and_stops_early_only_with_patience(monkeypatch, patience,
                                                                           epochs_run):
    scripted_scores(monkeypatch, [0.5, 0.9, 0.7, 0.6, 0.6, 0.6])
    y = np.array([0, 1] * 8)
    data = TokenItems(torch.randn(16, 4, 8), y)
    settings = FitSettings(epochs=6, lr=1e-2, patience=patience, batch_size=8, select="auc")
    info = fit_classifier(TokenClassifier(LinearProbe(8, 2)), data, data, y, 2, settings,
                          torch.device("cpu"))
    assert info["best_epoch"] == 1 and info["epochs_run"] == epochs_run


def test_auc_selection_scores_validation_by_roc_auc():
    from neurossl.evaluate.fit import validation_score
    from neurossl.evaluate.metrics import roc_auc

    y = np.array([0, 1] * 8)
    tokens = torch.randn(16, 4, 8)
    tokens[..., 0] += torch.tensor(y)[:, None].float()
    data, model = TokenItems(tokens, y), TokenClassifier(LinearProbe(8, 2))
    settings = FitSettings(epochs=1, lr=1e-2, select="auc")
    score, _ = validation_score(model, data, torch.device("cpu"), class_weights(y, 2), settings)
    proba, labels = predict(model, data, torch.device("cpu"))
    assert score == pytest.approx(roc_auc(labels, proba))
    with pytest.raises(ValueError, match="select must be one of loss, auc"):
        FitSettings(epochs=1, lr=1e-2, select="accuracy")


class TinyFineTune(torch.nn.Module):
    """An ``encoder`` and a ``head`` over token batches, named as EncoderClassifier names them."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, batch):
        return self.head(self.encoder(batch["tokens"]).mean(dim=1))


@pytest.mark.parametrize("epochs, encoder_moved", [(2, False), (3, True)])
def test_encoder_freeze_holds_the_encoder_for_the_first_epochs(epochs, encoder_moved):
    y = np.array([0, 1] * 8)
    data = TokenItems(torch.randn(16, 4, 8), y)
    torch.manual_seed(0)
    model = TinyFineTune()
    before = model.encoder.weight.detach().clone()
    head_before = model.head.weight.detach().clone()
    settings = FitSettings(epochs=epochs, lr=1e-2, batch_size=8, freeze_epochs=2, weight_decay=0.0)
    fit_classifier(model, data, None, y, 2, settings, torch.device("cpu"))
    assert not torch.equal(model.head.weight, head_before)
    assert torch.equal(model.encoder.weight, before) != encoder_moved
    assert all(p.requires_grad for p in model.parameters())  # released after the fit


def test_schedules_of_the_paper_protocol(smoke_data, smoke_runs):
    """Fine-tuning's own lr, the JEPA cross-domain probe schedule and the few-shot ResNet."""
    from neurossl.evaluate.backbones import EncoderSpec, encoder_heads
    from neurossl.models import load_encoder

    cfg = load_config("smoke", overrides=[
        "evaluate.finetune_lr=1e-5", "evaluate.finetune_start_lr=1e-6", "evaluate.finetune_final_lr=1e-6",
        "evaluate.encoder_freeze_epochs=10", "evaluate.jepa_cross_domain_epochs=800",
        "evaluate.jepa_cross_domain_warmup_epochs=20", "evaluate.select=auc"])
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    glioma, cognition = get_task("glioma_multiclass"), get_task("cognition_nc_vs_ad")
    jepa, mae = EncoderSpec("jepa", "jepa", None), EncoderSpec("mae", "mae", None)
    tuned = evaluator.settings(mae, cognition, "finetune", 0, "d")
    assert (tuned.lr, tuned.start_lr, tuned.final_lr, tuned.freeze_epochs, tuned.lr_scales) == (
        1e-5, 1e-6, 1e-6, 10, {})
    assert tuned.select == "auc"
    long = evaluator.settings(jepa, glioma, "frozen", 0, "d")
    assert (long.epochs, long.warmup_epochs) == (800, 20)
    assert evaluator.settings(jepa, cognition, "frozen", 0, "d").epochs == cfg.evaluate.probe_epochs
    assert evaluator.settings(mae, glioma, "frozen", 0, "d").epochs == cfg.evaluate.probe_epochs
    resnet = EncoderSpec("resnet50", "none", None)
    assert evaluator.settings(resnet, cognition, "finetune", 0, "d", epochs=180).epochs == 180
    spec = resolve_encoder(smoke_runs["mae"])
    assert encoder_heads(spec) == load_encoder(spec.path).num_heads


def test_probe_batch_size_applies_to_frozen_probes_only(smoke_data):
    e = load_config("smoke").evaluate
    assert e.probe_batch_size == 0  # one batch size for both, as the released protocol
    cfg = load_config("smoke", overrides=["evaluate.probe_batch_size=32"])
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    mae, resnet = EncoderSpec("mae", "mae", None), EncoderSpec("resnet50", "none", None)
    task = get_task("cognition_nc_vs_ad")
    assert evaluator.settings(mae, task, "frozen", 0, "d").batch_size == 32
    assert evaluator.settings(mae, task, "finetune", 0, "d").batch_size == e.batch_size
    assert evaluator.settings(resnet, task, "finetune", 0, "d").batch_size == e.batch_size
    plain = Evaluator(load_config("smoke"), smoke_data / "cache", smoke_data / "splits")
    assert plain.settings(mae, task, "frozen", 0, "d").batch_size == e.batch_size
    with pytest.raises(ConfigError, match="evaluate.probe_batch_size"):
        load_config("smoke", overrides=["evaluate.probe_batch_size=-1"])


def test_fewshot_fine_tunes_the_ssl_encoders_and_trains_resnet_for_its_own_epochs(smoke_data, smoke_runs,
                                                                                   monkeypatch, tmp_path):
    # paper section 6.5: "Both models are trained with the few-shot subsets under a classical
    # fine-tuning regime" ... "ResNet50-3D is trained for 180 epochs"
    from neurossl.evaluate.runner import RESNET, run_fewshot

    cfg = load_config("smoke", overrides=["evaluate.fewshot_mode=finetune", "evaluate.fewshot_resnet_epochs=2",
                                          "evaluate.fewshot_objectives=[slmae]", "evaluate.fewshot_seeds=[0]"])
    calls = []
    original = Evaluator.fit_predict

    def recording(self, spec, task, mode, parts, seed, desc, epochs=0):
        calls.append((spec.name, mode, epochs, len(parts["train"])))
        return original(self, spec, task, mode, parts, seed, desc, epochs)

    monkeypatch.setattr(Evaluator, "fit_predict", recording)
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    specs = [resolve_encoder(smoke_runs[name]) for name in ("mae", "slmae")]
    run_fewshot(evaluator, cfg, specs, ["resnet50"], tmp_path)
    assert calls == [("slmae", "finetune", 0, 2), (RESNET.name, "finetune", 2, 2)]  # 1 shot x 2 classes
    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["mode"]) == {"fewshot_1"} and set(results["encoder"]) == {"slmae", "resnet50"}


def test_finetuned_encoder_of_the_first_fold_is_exported_for_table7(smoke_data, smoke_runs, tmp_path):
    import json

    from neurossl.analysis.stages import finetuned_encoders, task_test_scans
    from neurossl.models import load_encoder

    cfg = load_config("smoke", overrides=["evaluate.max_folds=2"])
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits", export_dir=tmp_path)
    spec = resolve_encoder(smoke_runs["mae"])
    evaluator.run(spec, "cognition_nc_vs_ad", "finetune")
    evaluator.run(spec, "glioma_multiclass", "frozen")  # neither exported: frozen, not listed
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["mae__cognition_nc_vs_ad.safetensors"]
    sidecar = json.loads((tmp_path / "mae__cognition_nc_vs_ad.json").read_text())
    first_fold = task_folds(get_task("cognition_nc_vs_ad"), smoke_data / "splits")[0]
    assert sidecar["meta"]["finetuned"] == {"from": str(spec.path), "task": "cognition_nc_vs_ad",
                                            "fold": first_fold, "seed": 0}
    tuned, pretrained = load_encoder(tmp_path / "mae__cognition_nc_vs_ad.safetensors"), load_encoder(spec.path)
    assert not torch.equal(tuned.blocks[0].attn.qkv.weight, pretrained.blocks[0].attn.qkv.weight)
    found = finetuned_encoders(tmp_path.parent / "x", "cognition_nc_vs_ad", ["mae"])
    assert found == {}
    test = task_test_scans("cognition_nc_vs_ad", smoke_data / "cache", smoke_data / "splits")
    assert set(test["label"]) <= {"NC", "AD"} and len(test) > 0


def test_a_task_can_be_evaluated_on_one_contrast_of_its_subjects(smoke_data, smoke_runs):
    # Neuro-JEPA: the MoE's modality routing is exercised downstream, one contrast at a time
    cfg = load_config("smoke", overrides=["evaluate.max_folds=1"])
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    modality = read_index(smoke_data / "cache").set_index("scan_uid")["modality"]
    spec = resolve_encoder(smoke_runs["mae"])
    out = evaluator.run(spec, "glioma_multiclass:FLAIR", "frozen")
    predictions = out.prediction_table()
    assert set(predictions["task"]) == {"glioma_multiclass:FLAIR"}
    assert set(predictions["scan_uid"].map(modality)) == {"FLAIR"}
    with pytest.raises(ValueError, match="no CT scans in train, val, test"):
        evaluator.run(spec, "glioma_multiclass:CT", "frozen")


def test_a_frozen_probe_is_the_same_whether_or_not_its_tokens_were_cached(smoke_data, smoke_runs):
    # the pipeline probes many tasks on one encoder; only the first encodes (building the encoder
    # draws random numbers), and its probe must not differ from the one a lone task trains
    cfg = load_config("smoke", overrides=["evaluate.max_folds=1"])
    spec = resolve_encoder(smoke_runs["mae"])
    alone = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    after = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    index = read_index(smoke_data / "cache")
    after.encode(spec, index.loc[index["modality"] != "CT", "scan_uid"].tolist())  # every MR scan cached
    tables = [e.run(spec, "glioma_multiclass", "frozen").prediction_table() for e in (alone, after)]
    pd.testing.assert_frame_equal(*tables)


def test_fewshot_test_set_is_a_fixed_subject_level_sample_of_the_stated_size():
    from neurossl.evaluate.fewshot import sample_test

    frame = pd.DataFrame({"subject_id": np.repeat([f"s{i}" for i in range(40)], 3),
                          "scan_uid": [f"u{i}" for i in range(120)], "y": np.tile([0, 1, 0], 40)})
    test = sample_test(frame, 50, seed=0)
    assert len(test) == 50 and test["scan_uid"].is_unique
    assert test["subject_id"].value_counts().lt(3).sum() <= 1  # whole subjects, one cut at the end
    assert test.equals(sample_test(frame, 50, seed=0))
    assert len(sample_test(frame, 500)) == 120 and len(sample_test(frame, 0)) == 120
