"""`sfnet.workflow`: select -> split -> fit -> score, the baselines, the floor, the output check."""

import math

import numpy as np
import pytest

from sfnet import GalaxySample, SparseFeatureNet
from sfnet._io import check_output_dir
from sfnet.cli import main
from sfnet.datasets import make_mock_galaxies
from sfnet.workflow import oracle_floor, reference_scores, score_model, select_and_split


@pytest.fixture(scope="module")
def mock():
    return make_mock_galaxies(300, image_size=16, seed=2, progress=False)


def test_select_and_split_keeps_the_cuts_and_reads_the_truth_once(mock):
    split = select_and_split(mock, "metallicity", 0.25, seed=1)
    selected = mock.select("metallicity")
    assert split.n_total == len(mock) and split.n_selected == len(selected)
    train, valid = selected.split(0.25, seed=1)
    assert list(split.valid.catalog["objID"]) == list(valid.catalog["objID"])
    assert list(split.train.catalog["objID"]) == list(train.catalog["objID"])
    np.testing.assert_array_equal(split.truth[:, 0], np.asarray(valid.catalog["oh_p50"]))
    whole = select_and_split(mock, "metallicity", 0, seed=1)
    assert whole.valid is None and whole.truth is None and len(whole.train) == len(selected)


def test_select_and_split_errors_name_the_problem(mock):
    with pytest.raises(TypeError, match="sample"):
        select_and_split(np.zeros((3, 8, 8, 3)), "metallicity", 0.2, 0)
    with pytest.raises(ValueError, match="validation_fraction"):
        select_and_split(mock, "metallicity", 1.0, 0)
    with pytest.raises(ValueError, match=r"at least 100000 .*more galaxies"):
        select_and_split(mock, "metallicity", 0.2, 0, min_selected=100_000,
                         hint="more galaxies")


def test_score_model_matches_evaluate_and_activations(mock):
    split = select_and_split(mock, "metallicity", 0.3, seed=0)
    model = SparseFeatureNet(k=3, epochs=1, batch_size=32, device="cpu", precision="fp32",
                             random_state=0, progress=False, validation_fraction=0.0)
    model.fit(split.train)
    scores = score_model(model, split.valid, split.truth)
    expected = model.evaluate(split.valid)["oh_p50"]
    for key in ("rmse", "nmad", "bias", "r2"):
        assert scores.metrics["oh_p50"][key] == pytest.approx(expected[key], rel=1e-5), key
    assert scores.metrics["oh_p50"]["n"] == expected["n"] == len(split.valid)
    np.testing.assert_allclose(scores.activations, model.activations(split.valid), rtol=1e-6)
    np.testing.assert_allclose(scores.predictions[:, 0], model.predict(split.valid),
                               rtol=1e-6, atol=1e-6)
    # without the truth it is read from the catalog
    assert score_model(model, split.valid).metrics == scores.metrics


def test_references_and_floor_on_the_mock_and_without_photometry(mock):
    split = select_and_split(mock, "metallicity", 0.3, seed=0)
    refs = reference_scores(split, mock, seed=0)
    assert refs.floor == oracle_floor(mock, split.valid)
    assert 0.03 < refs.floor.valid < 0.2 and refs.floor.best == refs.floor.valid
    assert refs.floor.sample == mock.catalog.meta["oracle_rmse"]
    assert refs.floor.best < refs.photometric_gbm_rmse and refs.floor.best < refs.mean_rmse
    assert refs.details["gbm_features"] and refs.details["linear_features"]
    assert not refs.notes

    # a catalog without the model magnitudes: the GBM is NaN with a note, the rest runs
    cat = mock.catalog.copy()
    cat.remove_columns([c for c in cat.colnames if c.startswith("modelMag_")])
    cat.remove_column("mock_oh_hidden")
    cat.meta.pop("oracle_rmse", None)
    bare = GalaxySample(mock.images, cat)
    refs = reference_scores(select_and_split(bare, "metallicity", 0.3, seed=0), bare)
    assert math.isnan(refs.photometric_gbm_rmse) and "modelMag" in refs.notes[
        "photometric_gbm_note"]
    assert math.isfinite(refs.photometric_linear_rmse) and math.isfinite(refs.mean_rmse)
    assert math.isnan(refs.floor.best)


def test_one_output_check_for_every_command(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a directory"):
        check_output_dir(a_file)
    with pytest.raises(FileExistsError, match="refusing"):
        check_output_dir(foreign, marker="sfnet.json", what="an sfnet model")
    assert check_output_dir(foreign) == foreign                 # no marker: any directory
    assert check_output_dir(tmp_path / "new", marker="sfnet.json") == tmp_path / "new"
    assert not (tmp_path / "new").exists()

    commands = [["demo", "--output", str(a_file)],
                ["sweep", "--k", "1", "--output", str(a_file)],
                ["train", str(tmp_path), "--output", str(a_file)],
                ["train", str(tmp_path), "--output", str(foreign)],
                ["interpret", str(tmp_path), str(tmp_path), "--output", str(a_file)]]
    for argv in commands:
        assert main(argv + ["--no-progress"]) == 1, argv
        err = capsys.readouterr().err
        assert str(a_file if "foreign" not in argv[-1] else foreign) in err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign"]


def test_benchmark_is_a_subcommand_with_bounds(capsys):
    for flag, value in (("--steps", "0"), ("--batch-size", "0"), ("--backbone", "vgg"),
                        ("--precision", "fp16"), ("--rss-images", "-1"),
                        ("--image-size", "4")):
        assert main(["benchmark", flag, value]) == 2, flag
        err = capsys.readouterr().err
        assert err.startswith("sfnet: error: ") and flag in err, flag


def test_the_overwrite_rule_for_directories_and_files(tmp_path):
    from sfnet._io import check_output_file

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        check_output_dir(foreign, marker=("a.json", "model"), what="an output")
    assert check_output_dir(foreign, marker="a.json", overwrite=True) == foreign
    (foreign / "model").mkdir()  # one of several markers, a folder too
    assert check_output_dir(foreign, marker=("a.json", "model")) == foreign

    out = tmp_path / "table.ecsv"
    assert check_output_file(out, "output") == out  # new: fine, nothing created
    assert not out.exists()
    out.write_text("x")
    with pytest.raises(FileExistsError, match="output .* already exists"):
        check_output_file(out, "output")
    assert check_output_file(out, "output", overwrite=True) == out
    with pytest.raises(IsADirectoryError):
        check_output_file(tmp_path, "output", overwrite=True)
