"""Performance machinery: the benchmark tool and memory-bounded streaming.

Timings are never asserted (they drift on shared machines); what is asserted is
that the tool runs end to end and that streaming never reads more than a batch.
"""

import numpy as np
import pytest
import torch
from astropy.table import Table

import sfnet
import sfnet._imagedata
from sfnet import GalaxySample, SparseFeatureNet
from sfnet.benchmark import format_table, run_benchmark
from sfnet.datasets._store import read_file_rows

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
    result = run_benchmark(device="cpu", image_size=32, batch_size=4, steps=2, io_images=8,
                           precisions=("fp32",), paper_baseline=True, rss_images=())
    fp32 = result["precisions"]["fp32"]
    for key in ("fit_ratio", "activations_ratio", "fit_fraction_of_matmul", "fit_img_s",
                "bare_train_img_s", "matmul_tflop_s"):
        assert np.isfinite(fp32[key]) and fp32[key] > 0, key
    # FLOPs of a ResNet-18 train step at 32 px: ~3x the forward (~0.037 GFLOP/img)
    assert 0.05 < fp32["train_gflop_per_image"] < 0.5
    assert result["io"]["jpeg_decode_img_s"] > 0 and result["io"]["fit_vs_paper_style"] > 0
    st = result["streaming"]
    assert st["in_memory_img_s"] > 0 and st["streamed_img_s"] > 0
    assert st["streamed_vs_in_memory"] == pytest.approx(
        st["streamed_img_s"] / st["in_memory_img_s"])
    # the projection: both paper samples exceed 4 GiB at 144 px, so both run streamed,
    # and time is proportional to the number of galaxies
    proj = result["projection"]["samples"]
    small, large = proj["metallicity (117k)"], proj["BPT lines (250k)"]
    assert small["streamed"] and large["streamed"]
    assert large["hours"] / small["hours"] == pytest.approx(250_207 / 117_000)
    assert large["stored_gb"] == pytest.approx(250_207 * 160 * 160 * 3 / 2**30)
    # rate at 144 px = rate at 32 px x (32/144)^2, times the streamed ratio
    assert small["img_s"] == pytest.approx(
        fp32["fit_img_s"] * (32 / 144) ** 2 * min(st["streamed_vs_in_memory"], 1.0))
    table = format_table(result)
    assert "fit / bare" in table and "paper-style" in table
    assert "streamed / in memory" in table and "BPT lines (250k)" in table


def test_streaming_memory_does_not_grow_with_the_sample(monkeypatch):
    """Peak RSS of a streamed epoch over 500 and 4000 memory-mapped images (in fresh
    processes): the 41 MB more data must not show up as resident memory.

    glibc's adaptive mmap threshold lets its heaps grow by up to ~200 MB over the
    first few dozen batches (then it levels off; see docs/performance.rst); a
    fixed threshold in the child takes that allocator effect out of the test.
    """
    from sfnet.benchmark import _streaming_rss_in_subprocess

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    small, large = (_streaming_rss_in_subprocess(n) for n in (500, 4000))
    grown = large["peak_rss_mb"] - small["peak_rss_mb"]
    assert large["data_mb"] - small["data_mb"] > 40
    assert grown < 15, (small, large)


def test_predict_streams_batches(tmp_path):
    X, y = blobs(48, seed=2)
    model = SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                             random_state=0).fit(X, y)
    store = CountingImages(X)
    pred = model.predict(store, batch_size=8)
    assert max(store.reads) == 8 and sum(store.reads) == len(X)
    np.testing.assert_allclose(pred, model.predict(X), rtol=1e-6)


def test_fit_streams_large_memmaps(tmp_path):
    X, y = blobs(200, seed=3)
    store = CountingImages(X)
    with sfnet.conf.set_temp("max_in_memory_gb", 0):  # pretend it does not fit
        SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                         random_state=0, augment=False).fit(store, y)
    # 160 training images: one pass for the normalisation statistics, then training
    # batches of 16 and validation batches of <=32 (40 validation images); the
    # uncertainties are calibrated from the validation pass, not another one; the
    # out-of-distribution statistics cost one inference pass (batches of <=32) over the
    # 160 training and 40 validation images -- never more
    assert store.reads.count(160) == 1
    assert set(store.reads) == {160, 16, 32, 8}
    assert sum(r for r in store.reads if r != 160) == (160 + 40) + (160 + 40)


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


@pytest.mark.parametrize("geometry", [{}, {"image_size": 40, "crop_size": 32}])
def test_streamed_training_equals_in_memory_training(tmp_path, monkeypatch, geometry):
    X, y = blobs(96, seed=6)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    params = dict(k=2, target="r", epochs=2, batch_size=16, progress=False,
                  random_state=0, precision="fp32", **geometry)
    reads = []

    def counting(arr, rows):
        reads.append(len(rows))
        return read_file_rows(arr, rows)

    monkeypatch.setattr(sfnet._imagedata, "read_file_rows", counting)
    in_memory = SparseFeatureNet(**params).fit(mm, y)
    n_train = in_memory.n_train_
    # the statistics, then the training and validation images prepared once (the
    # uncertainties are calibrated from the validation passes: no pass of their own);
    # then the one inference pass of the out-of-distribution statistics (batches <= 32)
    assert reads[:3] == [n_train, n_train, in_memory.n_valid_]
    assert max(reads[3:]) <= 32 and sum(reads[3:]) == n_train + in_memory.n_valid_
    reads.clear()
    with sfnet.conf.set_temp("max_in_memory_gb", 1e-6):  # 1 kiB: read + prefetch batches
        streamed = SparseFeatureNet(**params).fit(mm, y)
    # the statistics, then batches of 16 (training) and <= 32 (validation) from the file
    assert reads[0] == n_train and max(reads[1:]) <= 32
    assert sum(reads[1:]) == 2 * (n_train // 16 * 16 + streamed.n_valid_) \
        + n_train + streamed.n_valid_  # + the out-of-distribution statistics' pass
    np.testing.assert_allclose(streamed.predict(X), in_memory.predict(X), rtol=1e-5, atol=1e-5)
    assert [h["train_loss"] for h in streamed.history_] == pytest.approx(
        [h["train_loss"] for h in in_memory.history_], rel=1e-5)
    assert streamed.uncertainty_["rows"] == in_memory.uncertainty_["rows"]
    assert streamed.uncertainty_["scale"] == pytest.approx(in_memory.uncertainty_["scale"],
                                                           rel=1e-5)


def test_read_file_rows_scatters_any_order_into_place(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (300, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    rng = np.random.default_rng(1)
    for rows in (rng.permutation(300), rng.integers(0, 300, 700), np.arange(40, 90)[::-1],
                 np.r_[np.arange(5, 1300 // 2) % 300]):
        np.testing.assert_array_equal(read_file_rows(mm, rows), X[rows])


def test_crop_resize_geometry_runs_on_the_host_before_the_transfer(monkeypatch):
    """On an accelerator the PIL-exact resize runs before the copy (a 'meta' device
    stands in for CUDA here: a batch moved there first could not come back to PIL)."""
    import sfnet.preprocessing
    from sfnet._imagedata import DeviceImages, ImageSource, to_device_with_geometry
    from sfnet.preprocessing import Preprocessor

    seen = []
    real = sfnet.preprocessing.resize_like_pil

    def spy(x, size):
        seen.append(x.device.type)
        return real(x, size)

    monkeypatch.setattr(sfnet.preprocessing, "resize_like_pil", spy)
    X = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    prep = Preprocessor(48, 32, order="crop-resize")
    host = torch.from_numpy(X).permute(0, 3, 1, 2)
    assert prep.geometry_on_host(host)
    assert not Preprocessor(48, 32).geometry_on_host(host)  # resize-crop: on the device
    assert not prep.geometry_on_host(host.float())          # float: torch's resize
    meta = to_device_with_geometry(host, prep, torch.device("meta"))
    assert meta.device.type == "meta" and tuple(meta.shape) == (6, 3, 48, 48)
    assert seen == ["cpu"]
    # on the CPU the result is the same as the geometry applied after the transfer
    cpu = to_device_with_geometry(host, prep, torch.device("cpu"))
    torch.testing.assert_close(cpu, prep.geometry(host), rtol=0, atol=0)
    # the prepared validation/training images go the same way
    images = DeviceImages(ImageSource(X), prep, torch.device("cpu"), in_memory=True)
    torch.testing.assert_close(images.batch(np.arange(6)), prep.geometry(host), rtol=0, atol=0)


def test_max_in_memory_gb_must_be_non_negative():
    X, y = blobs(32, seed=1)
    model = SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                             random_state=0)
    with sfnet.conf.set_temp("max_in_memory_gb", -1), \
            pytest.raises(ValueError, match="max_in_memory_gb"):
        model.fit(X, y)


def test_read_file_rows_reads_any_order_without_the_map(tmp_path):
    X = np.arange(10 * 2 * 3 * 3, dtype=np.uint8).reshape(10, 2, 3, 3)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.array([7, 2, 3, 4, 9, 0, 0])
    out = read_file_rows(mm, rows)
    np.testing.assert_array_equal(out, X[rows])
    assert out.flags.writeable and not isinstance(out, np.memmap)
    np.testing.assert_array_equal(read_file_rows(mm[2:9:3], [2, 0]), X[2:9:3][[2, 0]])
    assert read_file_rows(X, [0]) is None  # not a memmap: the caller indexes it
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    assert read_file_rows(np.load(tmp_path / "f.npy", mmap_mode="r"), [0]) is None
    with pytest.raises(IndexError, match="out of range"):
        read_file_rows(mm, [10])


def test_compile_must_be_a_bool():
    X, y = blobs(32, seed=1)
    with pytest.raises(TypeError, match="compile"):
        SparseFeatureNet(k=2, target="r", epochs=1, compile="yes").fit(X, y)


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch, tmp_path):
    """A failing torch.compile (no C++ compiler, say) warns and trains eagerly:
    the same model as compile=False."""
    from torch._dynamo.exc import TorchDynamoException

    calls = []

    def failing_compile(fn, *args, **kwargs):
        def compiled(*a, **k):
            calls.append(fn)
            raise TorchDynamoException("simulated: no working C++ compiler")
        return compiled

    X, y = blobs(64, seed=5)
    params = dict(k=2, target="r", epochs=1, batch_size=16, progress=False,
                  random_state=0, precision="fp32")
    eager = SparseFeatureNet(**params).fit(X, y)
    monkeypatch.setattr(torch, "compile", failing_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile of the network failed"):
        compiled = SparseFeatureNet(compile=True, **params).fit(X, y)
    assert len(calls) == 1  # tried once, then eager for the rest of the run
    with pytest.warns(RuntimeWarning, match="torch.compile of the network's forward failed"):
        pred = compiled.predict(X)
    np.testing.assert_allclose(pred, eager.predict(X), rtol=1e-5, atol=1e-5)
    # a runtime option, but a parameter: saved and loaded with the others
    compiled.save(tmp_path / "model")
    loaded = SparseFeatureNet.load(tmp_path / "model", precision="fp32")
    assert loaded.compile is True and eager.compile is False
    np.testing.assert_allclose(loaded.set_params(compile=False).predict(X), pred, rtol=1e-6)


def test_compiled_wrapper_does_not_keep_the_network_alive():
    import gc
    import pickle
    import weakref

    X, y = blobs(32, seed=2)
    model = SparseFeatureNet(k=2, target="r", epochs=1, batch_size=16, progress=False,
                             random_state=0).fit(X, y)
    model.set_params(compile=True)
    wrapper = model._inference_network()  # built lazily; nothing compiled yet
    assert model._inference_network() is wrapper  # cached while the network is the same
    clone = pickle.loads(pickle.dumps(model))  # the wrapper is left out of the state
    assert "_compiled" not in clone.__dict__
    ref = weakref.ref(model.network_)
    del model, wrapper, clone
    gc.collect()
    assert ref() is None
