"""The feature store that hands evaluation's pooled features to the embedding analysis."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from neurossl.analysis.features import downstream_scans, pooled_features
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.evaluate.backbones import random_twin, resolve_encoder
from neurossl.evaluate.feature_store import FeatureStore, encoder_key
from neurossl.evaluate.run import Evaluator
from neurossl.models.checkpoint_io import sidecar_path


@pytest.fixture(scope="module")
def mae(smoke_runs):
    return resolve_encoder(smoke_runs["mae"])


def test_store_round_trips_and_merges(mae, tmp_path):
    cfg = load_config("smoke")
    store = FeatureStore(tmp_path)
    assert store.read(mae, cfg.preprocess) == {}
    store.add(mae, cfg.preprocess, {"b": np.ones(3), "a": np.zeros(3)})
    store.add(mae, cfg.preprocess, {"c": np.full(3, 2.0), "a": np.full(3, 5.0)})  # "a" replaced
    rows = store.read(mae, cfg.preprocess)
    assert sorted(rows) == ["a", "b", "c"]
    np.testing.assert_array_equal(rows["a"], np.full(3, 5.0, dtype=np.float32))
    assert [p.name for p in tmp_path.iterdir()] == [store.path(mae, cfg.preprocess).name]  # no temporaries left


def test_key_follows_weights_twin_and_preprocessing(mae, smoke_runs, tmp_path):
    cfg = load_config("smoke")
    key = encoder_key(mae, cfg.preprocess)
    assert encoder_key(mae, cfg.preprocess) == key
    # other weights: another objective's export
    assert encoder_key(resolve_encoder(smoke_runs["jepa"]), cfg.preprocess) != key
    # the same file with one byte changed is another encoder
    copy = tmp_path / "encoder.safetensors"
    shutil.copy(mae.path, copy)
    shutil.copy(sidecar_path(mae.path), sidecar_path(copy))  # the architecture, for the twin
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    assert encoder_key(replace(mae, path=copy), cfg.preprocess) != key
    # the random twin is keyed by architecture, not by the weights it copies nothing of
    assert encoder_key(random_twin(mae), cfg.preprocess) not in (key, encoder_key(replace(mae, path=copy), cfg.preprocess))
    assert encoder_key(random_twin(mae), cfg.preprocess) == encoder_key(random_twin(replace(mae, path=copy)), cfg.preprocess)
    assert encoder_key(mae, replace(cfg.preprocess, clip_percentiles=(2.0, 98.0))) != key


def test_unreadable_store_file_is_named(mae, tmp_path):
    cfg = load_config("smoke")
    store = FeatureStore(tmp_path)
    store.path(mae, cfg.preprocess).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="unreadable feature store file"):
        store.read(mae, cfg.preprocess)


def test_evaluation_features_are_what_the_analysis_computes(mae, smoke_data, tmp_path):
    cfg = load_config("smoke")
    cache = smoke_data / "cache"
    uids = downstream_scans(cache, smoke_data / "splits")["scan_uid"].tolist()[:5]
    store = FeatureStore(tmp_path / "features")
    evaluator = Evaluator(cfg, cache, smoke_data / "splits", features=store)
    evaluator.encode(mae, uids)
    direct = pooled_features(mae, cache, uids, cfg, batch_size=cfg.evaluate.batch_size)  # no store
    keys = read_index(cache).set_index("scan_uid")["key"]
    stored = store.read(mae, cfg.preprocess)
    np.testing.assert_allclose(np.stack([stored[keys[u]] for u in uids]), direct, rtol=1e-5, atol=1e-5)


def test_analysis_reads_the_store_and_encodes_only_the_rest(mae, smoke_data, tmp_path):
    cfg = load_config("smoke")
    cache = smoke_data / "cache"
    uids = downstream_scans(cache, smoke_data / "splits")["scan_uid"].tolist()[:4]
    keys = read_index(cache).set_index("scan_uid")["key"]
    store = FeatureStore(tmp_path)
    planted = np.full(cfg.model.embed_dim, 7.0, dtype=np.float32)  # no encoder outputs this
    store.add(mae, cfg.preprocess, {keys[uids[0]]: planted})
    out = pooled_features(mae, cache, uids, cfg, store=store)
    np.testing.assert_array_equal(out[0], planted)
    direct = pooled_features(mae, cache, uids[1:], cfg)
    np.testing.assert_allclose(out[1:], direct, rtol=1e-5, atol=1e-5)
    assert set(store.read(mae, cfg.preprocess)) == {keys[u] for u in uids}  # the rest was kept
    with pytest.raises(ValueError, match="not in the cache's index.csv"):
        pooled_features(mae, cache, ["sub-nobody_T1w"], cfg, store=store)
