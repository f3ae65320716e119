"""Performance machinery: the benchmark tool and memory-bounded streaming.

Timings are never asserted (they drift on shared machines); what is asserted is
that the tool runs end to end and that streaming never reads more than a batch.
"""

import numpy as np
import pytest
from astropy.table import Table

import sfnet.training
from sfnet import GalaxySample, SparseFeatureNet
from sfnet.benchmark import format_table, run_benchmark

from _synthetic import blobs


class CountingImages:
    """An image store that records how many images each read materialises."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        out = self.array[key]
        self.reads.append(len(out))
        return out


def test_benchmark_runs_end_to_end():
    result = run_benchmark(device="cpu", image_size=32, batch_size=4, steps=1, io_images=8,
                           precisions=("fp32",), paper_baseline=True)
    fp32 = result["precisions"]["fp32"]
    for key in ("fit_ratio", "activations_ratio", "fit_fraction_of_matmul", "fit_img_s",
                "bare_train_img_s", "matmul_tflop_s"):
        assert np.isfinite(fp32[key]) and fp32[key] > 0, key
    # FLOPs of a ResNet-18 train step at 32 px: ~3x the forward (~0.037 GFLOP/img)
    assert 0.05 < fp32["train_gflop_per_image"] < 0.5
    assert result["io"]["jpeg_decode_img_s"] > 0 and result["io"]["fit_vs_paper_style"] > 0
    table = format_table(result)
    assert "fit / bare" in table and "paper-style" in table


def test_predict_streams_batches(tmp_path):
    X, y = blobs(48, seed=2)
    model = SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                             random_state=0).fit(X, y)
    store = CountingImages(X)
    pred = model.predict(store, batch_size=8)
    assert max(store.reads) == 8 and sum(store.reads) == len(X)
    np.testing.assert_allclose(pred, model.predict(X), rtol=1e-6)


def test_fit_streams_large_memmaps(tmp_path, monkeypatch):
    X, y = blobs(200, seed=3)
    monkeypatch.setattr(sfnet.training, "IN_MEMORY_LIMIT", 0)  # pretend it does not fit
    store = CountingImages(X)
    SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                     random_state=0, augment=False).fit(store, y)
    # 160 training images: one pass for the normalisation statistics, then training
    # batches of 16 and validation batches of <=32 (40 validation images), then one
    # pass over the validation images to calibrate the uncertainties -- never more
    assert store.reads.count(160) == 1
    assert set(store.reads) == {160, 16, 32, 8}
    assert sum(r for r in store.reads if r != 160) == 160 + 40 + 40


def test_fit_memmapped_sample_matches_in_memory(tmp_path):
    X, y = blobs(96, seed=4)
    catalog = Table({"objID": np.arange(96, dtype=np.int64) + 10**17, "radius": y})
    GalaxySample(X, catalog).save(tmp_path / "s")
    mm = GalaxySample.load(tmp_path / "s", mmap=True)
    subset = mm[catalog["radius"] > 3]  # a lazy subset of the memmap
    params = dict(k=2, target="radius", epochs=2, batch_size=16, progress=False,
                  random_state=0, precision="fp32")
    m1 = SparseFeatureNet(**params).fit(subset)
    m2 = SparseFeatureNet(**params).fit(GalaxySample(X, catalog)[catalog["radius"] > 3])
    np.testing.assert_allclose(m1.predict(subset), m2.predict(X[catalog["radius"] > 3]),
                               rtol=1e-5, atol=1e-5)
    assert m1.n_train_ + m1.n_valid_ == int((catalog["radius"] > 3).sum())


def test_streamed_training_equals_in_memory_training(monkeypatch):
    X, y = blobs(96, seed=6)
    params = dict(k=2, target="r", epochs=2, batch_size=16, progress=False,
                  random_state=0, precision="fp32")
    in_memory = SparseFeatureNet(**params).fit(X, y)
    monkeypatch.setattr(sfnet.training, "IN_MEMORY_LIMIT", 0)  # read + prefetch batches
    streamed = SparseFeatureNet(**params).fit(X, y)
    np.testing.assert_allclose(streamed.predict(X), in_memory.predict(X), rtol=1e-5, atol=1e-5)
    assert [h["train_loss"] for h in streamed.history_] == pytest.approx(
        [h["train_loss"] for h in in_memory.history_], rel=1e-5)
