"""Tests of the ``sfnet`` command line (`sfnet.cli.main`), on tiny mock data."""

import contextlib
import io
import json
import math
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

import sfnet
from sfnet import GalaxySample, SparseFeatureNet
from sfnet.cli import main
from sfnet.datasets import load_galaxy_folder, make_mock_galaxies, write_galaxy_folder

TINY = ["--epochs", "1", "--k", "2", "--batch-size", "16", "--no-progress"]

DEMO_KEYS = {"rmse", "nmad", "bias", "oracle_rmse", "baseline_rmse", "photometric_rmse",
             "n_train", "n_valid", "k", "epochs", "image_size", "seconds",
             "seconds_per_stage", "versions", "device", "precision"}


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sfnet: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Zenodo-layout folder (galaxies.csv + images-sdss/{objID}.jpg)."""
    sample = make_mock_galaxies(100, image_size=32, seed=3, progress=False)
    return write_galaxy_folder(sample, tmp_path_factory.mktemp("data") / "zenodo")


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    """A model trained by ``sfnet train`` on ``folder``, with the command's stdout."""
    model_dir = tmp_path_factory.mktemp("models") / "model"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["train", str(folder), "--output", str(model_dir), "--seed", "1"] + TINY)
    assert status == 0
    return model_dir, out.getvalue()


# ----------------------------------------------------------------------------- help
def test_help_version_and_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "fetch", "train", "predict", "interpret", "benchmark"):
        assert command in out
    assert main(["--version"]) == 0
    assert sfnet.__version__ in capsys.readouterr().out
    for command in ("demo", "fetch", "train", "predict", "interpret", "benchmark"):
        assert main([command, "--help"]) == 0, command
        out = capsys.readouterr().out
        assert out.startswith(f"usage: sfnet {command}")
        assert "examples:" in out and f"sfnet {command}" in out.split("examples:")[1]
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    # How to scale the demo up is part of its help.
    assert "--device cuda" in out and "--n-galaxies" in out


def test_python_m_sfnet_help():
    res = subprocess.run([sys.executable, "-m", "sfnet", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: sfnet")
    assert "demo" in res.stdout


# ----------------------------------------------------------------------------- errors
def test_usage_errors_are_one_line_and_exit_2(capsys, tmp_path):
    cases = [
        [],                                                        # no command
        ["train", str(tmp_path), "--output", "m", "--k", "0"],     # bad --k
        ["train", str(tmp_path), "--output", "m", "--k", "two"],
        ["demo", "--bogus"],                                       # unknown option
        ["predict", "model"],                                      # missing DATA
        ["train", str(tmp_path), "--output", "m", "--target", ","],
        ["train", str(tmp_path), "--output", "m", "--resume"],     # resume needs a dir
        ["benchmark", "--no-such-option"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        line = _one_error_line(capsys.readouterr().err)
        assert "--help" in line
    main(["train", str(tmp_path), "--output", "m", "--k", "0"])
    assert "--k" in capsys.readouterr().err


def test_user_errors_are_one_line_and_exit_1(capsys, tmp_path, folder):
    missing = tmp_path / "no-such-folder"
    assert main(["train", str(missing), "--output", str(tmp_path / "m")]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "does not exist" in line

    # k larger than the backbone's 512 features: refused before the data is read.
    assert main(["train", str(missing), "--output", str(tmp_path / "m"), "--k", "600"]) == 1
    # (the library's "k=600" is reported as the flag that set it)
    assert "--k 600" in _one_error_line(capsys.readouterr().err)

    # A folder that is neither layout.
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), "--output", str(tmp_path / "m")]) == 1
    assert "galaxies.csv" in _one_error_line(capsys.readouterr().err)

    assert main(["predict", str(tmp_path / "no-model"), str(folder),
                 "--output", str(tmp_path / "p.ecsv")]) == 1
    _one_error_line(capsys.readouterr().err)

    assert main(["predict", str(tmp_path / "no-model"), str(folder),
                 "--output", str(tmp_path / "p.txt")]) == 1
    assert ".ecsv" in _one_error_line(capsys.readouterr().err)

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["demo", "--output", str(a_file), "--no-progress"]) == 1
    assert "not a directory" in _one_error_line(capsys.readouterr().err)
    assert not list(tmp_path.glob("**/metrics.json"))


@pytest.mark.skipif(sfnet.estimator.torch.cuda.is_available(), reason="CUDA is available")
def test_unavailable_device_is_a_clear_error(capsys, tmp_path, folder):
    assert main(["train", str(folder), "--output", str(tmp_path / "m"), "--device", "cuda"]
                + TINY) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "CUDA is not available" in line and "--device 'cuda'" in line
    assert not (tmp_path / "m").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["--debug", "train", str(missing), "--output", str(tmp_path / "m")])
    # --debug is also accepted after the command name.
    with pytest.raises(FileNotFoundError):
        main(["train", str(missing), "--output", str(tmp_path / "m"), "--debug"])
    # The console script prints it.
    res = subprocess.run([sys.executable, "-m", "sfnet", "--debug", "train", str(missing),
                          "--output", str(tmp_path / "m")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert "FileNotFoundError" in res.stderr


# ----------------------------------------------------------------------------- demo
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--n-galaxies", "120", "--image-size", "32",
            "--seed", "0", "--max-features", "2"] + TINY
    assert main(argv) == 0
    stdout = capsys.readouterr().out

    metrics = json.loads((out / "metrics.json").read_text())
    assert DEMO_KEYS <= set(metrics)
    assert {"sfnet", "torch", "astropy", "python"} <= set(metrics["versions"])
    assert metrics["versions"]["sfnet"] == sfnet.__version__
    for key in ("rmse", "nmad", "oracle_rmse", "baseline_rmse", "photometric_rmse"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0, key
    assert math.isfinite(metrics["bias"])
    assert metrics["k"] == 2 and metrics["epochs"] == 1 and metrics["image_size"] == 32
    assert metrics["seconds"] > 0
    assert set(metrics["seconds_per_stage"]) >= {"generate", "train", "interpret"}
    assert metrics["seconds"] >= sum(metrics["seconds_per_stage"].values()) - 0.01
    assert metrics["precision"] in ("fp32", "bf16")
    assert metrics["device"].startswith(("cpu", "cuda", "mps"))

    # The split covers exactly the galaxies passing the metallicity cuts (the
    # mock catalog does not depend on the image size).
    mock = make_mock_galaxies(120, image_size=16, seed=0, progress=False)
    selected = mock.select("metallicity")
    assert metrics["n_train"] + metrics["n_valid"] == len(selected) == metrics["n_selected"]
    assert metrics["n_valid"] == round(0.2 * len(selected))
    assert metrics["oracle_rmse"] == pytest.approx(mock.catalog.meta["oracle_rmse"])
    # The mean predictor cannot beat the spread of the held-out targets by much.
    assert metrics["baseline_rmse"] >= 0.9 * metrics["target_std"]

    model = SparseFeatureNet.load(out / "model")
    assert model.k == 2 and model.target_names == ["oh_p50"]
    valid = make_mock_galaxies(120, image_size=32, seed=0, progress=False).select(
        "metallicity").split(0.2, seed=0)[1]
    rmse = model.evaluate(valid)["oh_p50"]["rmse"]
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-3)

    assert (out / "report.html").stat().st_size > 0
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
    assert "figures/" in (out / "report.html").read_text()

    # The summary table compares against the baselines and the oracle.
    for label in ("SFNet", "photometric", "mean predictor", "oracle"):
        assert label in stdout
    assert f"{metrics['rmse']:.4f}" in stdout and f"{metrics['oracle_rmse']:.4f}" in stdout


# ----------------------------------------------------------------------------- train / predict
def test_train_reports_validation_metrics(folder, trained):
    model_dir, stdout = trained
    assert "validation metrics" in stdout and "oh_p50" in stdout and "RMSE" in stdout
    selected = load_galaxy_folder(folder, progress=False).select("metallicity")
    n_valid = round(0.2 * len(selected))
    assert f"({n_valid} held-out galaxies)" in stdout
    model = SparseFeatureNet.load(model_dir)
    assert model.k == 2 and model.epochs == 1
    # Trained on the galaxies passing the cuts, minus the held-out ones.
    assert model.n_train_ == len(selected) - n_valid


def test_train_predict_round_trip(folder, trained, tmp_path, capsys):
    model_dir, _ = trained
    sample = load_galaxy_folder(folder, progress=False)
    expected = SparseFeatureNet.load(model_dir).predict(sample)

    out = tmp_path / "predictions.ecsv"
    assert main(["predict", str(model_dir), str(folder), "--output", str(out),
                 "--no-progress"]) == 0
    assert str(out) in capsys.readouterr().out
    table = QTable.read(out)
    assert table.colnames[:3] == ["objID", "coord", "oh_p50_pred"]
    assert {"feature_1", "activation_2", "oh_p50_contribution_2"} <= set(table.colnames)
    assert table["objID"].dtype == np.int64
    assert np.array_equal(np.asarray(table["objID"]), np.asarray(sample.catalog["objID"]))
    assert table["oh_p50_pred"].unit == u.dex
    assert np.allclose(table["coord"].ra.deg, sample.catalog["ra"])
    np.testing.assert_allclose(table["oh_p50_pred"].value, expected, rtol=1e-5)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind

    # CSV by extension, and a saved GalaxySample as DATA.
    saved = sample.save(tmp_path / "saved")
    csv = tmp_path / "predictions.csv"
    assert main(["predict", str(model_dir), str(saved), "--output", str(csv),
                 "--no-progress"]) == 0
    table = Table.read(csv, format="ascii.csv")
    assert np.array_equal(np.asarray(table["objID"], dtype=np.int64),
                          np.asarray(sample.catalog["objID"]))
    assert table.colnames[:4] == ["objID", "ra", "dec", "oh_p50_pred"]
    np.testing.assert_allclose(table["oh_p50_pred"], expected, rtol=1e-5)


def test_train_calibrates_error_bars_on_the_held_out_galaxies(folder, trained):
    model_dir, _ = trained
    model = SparseFeatureNet.load(model_dir)
    # sfnet train holds out --validation-fraction (as SparseFeatureNet.fit does) and
    # fits on the rest: the error bars are scaled on those held-out galaxies, not on
    # the training ones
    _, valid = load_galaxy_folder(folder, progress=False).select("metallicity").split(
        0.2, seed=1)
    assert model.uncertainty_["source"] == "validation"
    # half of them select the epoch, the other half calibrate (issue 22)
    u = model.uncertainty_
    assert u["n"] + u.get("n_epoch_selection", 0) == len(valid)


def test_predict_writes_error_bars_with_std(folder, trained, tmp_path):
    model_dir, _ = trained
    sample = load_galaxy_folder(folder, progress=False)
    _, std = SparseFeatureNet.load(model_dir).predict(sample, return_std=True)
    out = tmp_path / "predictions.fits"
    assert main(["predict", str(model_dir), str(folder), "--output", str(out), "--std",
                 "--no-progress"]) == 0
    table = QTable.read(out)
    assert table.colnames[:5] == ["objID", "ra", "dec", "oh_p50_pred", "oh_p50_std"]
    np.testing.assert_allclose(table["oh_p50_std"].value, std, rtol=1e-5)


def test_train_on_saved_sample_with_column_target(tmp_path, capsys):
    sample = make_mock_galaxies(40, image_size=32, seed=5, progress=False)
    saved = sample.save(tmp_path / "sample")
    model_dir = tmp_path / "model"
    assert main(["-v", "train", str(saved), "--output", str(model_dir), "--target",
                 "z,petroMag_r", "--validation-fraction", "0.25"] + TINY) == 0
    stdout, stderr = capsys.readouterr()
    assert "opening the saved sample" in stderr  # -v: INFO log messages
    assert "z" in stdout and "petroMag_r" in stdout and "(10 held-out" in stdout
    model = SparseFeatureNet.load(model_dir)
    assert model.target_names == ["z", "petroMag_r"]

    # Refuses to write a model into an unrelated non-empty directory.
    assert main(["train", str(saved), "--output", str(saved)] + TINY) == 1
    assert "not an sfnet model" in _one_error_line(capsys.readouterr().err)


def test_interpret_command(folder, trained, tmp_path, capsys):
    model_dir, _ = trained
    out = tmp_path / "report"
    assert main(["interpret", str(model_dir), str(folder), "--output", str(out),
                 "--max-features", "1", "--max-galaxies", "12", "--no-progress"]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    assert (out / "report.html").stat().st_size > 0
    assert list((out / "figures").glob("*.png"))


def test_demo_defaults_are_module_constants():
    from sfnet.cli import DEMO_DEFAULTS, build_parser

    args = build_parser().parse_args(["demo"])
    for key in ("n_galaxies", "image_size", "epochs", "k", "batch_size", "seed"):
        assert getattr(args, key) == DEMO_DEFAULTS[key]
    assert args.output == DEMO_DEFAULTS["output"]


def test_galaxy_sample_dir_detection_does_not_need_images_folder(tmp_path):
    # A saved sample is recognised by its manifest, a Zenodo folder by galaxies.csv.
    from sfnet.workflow import load_data

    sample = make_mock_galaxies(4, image_size=16, seed=0, progress=False)
    loaded = load_data(sample.save(tmp_path / "s"))
    assert isinstance(loaded, GalaxySample) and len(loaded) == 4


# ----------------------------------------------------------------------------- fetch
@pytest.fixture
def fake_sdss():
    from _fakeservers import FakeSDSS

    with FakeSDSS(n_rows=6) as server, \
            sfnet.conf.set_temp("skyserver_url", server.skyserver_url), \
            sfnet.conf.set_temp("hips2fits_url", server.hips2fits_url), \
            sfnet.conf.set_temp("legacysurvey_url", server.legacysurvey_url), \
            sfnet.conf.set_temp("timeout", 2.0), \
            sfnet.conf.set_temp("max_retries", 1):
        yield server


def test_fetch_writes_a_folder_that_train_reads(fake_sdss, tmp_path, capsys):
    out = tmp_path / "sdss"
    assert main(["fetch", "--output", str(out), "--n-galaxies", "4", "--cutout-size", "16",
                 "--max-workers", "2", "--no-progress"]) == 0
    assert "4 galaxies" in capsys.readouterr().out
    assert (out / "galaxies.csv").is_file()
    assert len(list((out / "images-sdss").glob("*.jpg"))) == 4
    from sfnet.workflow import load_data

    sample = load_data(out, progress=False)
    assert list(sample.catalog["objID"]) == [r["objID"] for r in fake_sdss.rows[:4]]
    assert fake_sdss.n_requests("legacysurvey") == 4  # the paper's service by default
    assert fake_sdss.n_requests("hips2fits") == 0


def test_fetch_paper_selection_and_region(fake_sdss, tmp_path, capsys):
    assert main(["fetch", "--output", str(tmp_path / "x"), "--n-galaxies", "7",
                 "--selection", "paper", "--target", "bpt_lines", "--print-sql"]) == 0
    sql = capsys.readouterr().out
    assert "JOIN Galaxy AS g ON g.objID = s.bestObjID" in sql and "g.z > 0.02" in sql
    assert "JOIN PhotoObjDR7 AS p7 ON p7.DR8ObjID = s.bestObjID" in sql
    assert "l.h_beta_flux > 3 * l.h_beta_flux_err" in sql
    assert fake_sdss.n_requests() == 0 and not (tmp_path / "x").exists()

    row = fake_sdss.rows[2]
    out = tmp_path / "cone"
    assert main(["fetch", "--output", str(out), "--n-galaxies", "10", "--selection", "paper",
                 "--region", repr(row["ra"]), repr(row["dec"]), "1.0", "--cutout-size", "16",
                 "--no-progress"]) == 0
    (req,) = fake_sdss.requests("skyserver")
    assert f"fGetNearbyObjEq({row['ra']!r}, {row['dec']!r}, 1.0)" in req["params"]["cmd"]
    from sfnet.workflow import load_data

    sample = load_data(out, progress=False)  # rows 1..3 lie within 1 arcmin of row 2
    assert list(sample.catalog["objID"]) == [r["objID"] for r in fake_sdss.rows[1:4]]
    assert "DR7ObjID" in sample.catalog.colnames

    assert main(["fetch", "--output", str(tmp_path / "y"), "--n-galaxies", "3",
                 "--region", "10", "0", "-5", "--no-progress"]) == 1
    assert "region" in _one_error_line(capsys.readouterr().err)
    assert main(["fetch", "--output", str(tmp_path / "y"), "--n-galaxies", "3",
                 "--region", "10", "95", "5", "--no-progress"]) == 2
    assert "--region" in capsys.readouterr().err
    assert main(["fetch", "--output", str(tmp_path / "y"), "--n-galaxies", "3",
                 "--selection", "papers"]) == 2
    assert not (tmp_path / "y").exists()


def test_fetch_service_error_is_one_line(fake_sdss, tmp_path, capsys):
    fake_sdss.skyserver_faults = ["html"]
    assert main(["fetch", "--output", str(tmp_path / "sdss"), "--n-galaxies", "4",
                 "--cutout-size", "16", "--no-progress"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "SkyServerError" in line


# ----------------------------------------------------------------------------- conventions
def _subparsers():
    from sfnet.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return parser, sub.choices


def test_train_defaults_are_the_estimators_signature(capsys):
    import inspect

    from sfnet.cli import TRAIN_PARAMS, _train_params, build_parser

    signature = {name: p.default
                 for name, p in inspect.signature(SparseFeatureNet).parameters.items()}
    args = build_parser().parse_args(["train", "data", "--output", "m"])
    for name in TRAIN_PARAMS:
        value = getattr(args, name)
        assert (None if name == "weights" and value == "none" else value) == signature[name], \
            name
    assert args.seed is signature["random_state"] is None
    # ... and what the command passes to the estimator is the estimator's defaults
    params = _train_params(args)
    defaults = SparseFeatureNet().get_params()
    for name, value in params.items():
        if name != "progress":
            assert value == defaults[name], name

    # --help shows the same values
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split()).split("options:", 1)[1]
    for flag, name in (("--k K", "k"), ("--epochs E", "epochs"), ("--batch-size B", "batch_size"),
                       ("--learning-rate LR", "learning_rate"),
                       ("--validation-fraction F", "validation_fraction"),
                       ("--keep-epoch {best,last}", "keep_epoch"),
                       ("--precision {auto,fp32,bf16}", "precision")):
        after = text.split(flag, 1)[1].split(" --", 1)[0]
        assert f"default: {signature[name]}" in after, (flag, after)


def test_train_recipe_and_paper_split_defaults():
    from sfnet.cli import _train_params, build_parser

    parse = build_parser().parse_args
    params = _train_params(parse(["train", "d", "-o", "m", "--recipe", "paper",
                                  "--epochs", "3", "--weights", "none"]))
    for key, value in sfnet.PAPER_RECIPE.items():
        if key not in ("epochs", "weights"):
            assert params[key] == value, key
    assert params["epochs"] == 3 and params["weights"] is None
    # --split paper: the paper's fraction, seed and last epoch unless given
    params = _train_params(parse(["train", "d", "-o", "m", "--split", "paper"]))
    assert (params["validation_fraction"], params["random_state"], params["keep_epoch"]) \
        == (0.2, 256, "last")
    params = _train_params(parse(["train", "d", "-o", "m", "--split", "paper", "--seed", "3"]))
    assert params["random_state"] == 3


def test_every_flag_has_help_and_every_number_has_bounds():
    _, commands = _subparsers()
    for name, sub in commands.items():
        for action in sub._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            assert action.help, (name, action.option_strings)
            is_value = action.nargs != 0 and action.choices is None
            if is_value and action.dest not in ("output", "data", "checkpoint_dir",
                                                "metrics", "json_deprecated"):
                # every value is converted and checked by argparse (a bound or a pattern)
                assert action.type is not None, (name, action.option_strings)


@pytest.mark.parametrize("argv", [
    ["benchmark", "--steps", "0"],
    ["benchmark", "--precision", "fp16"],
    ["benchmark", "--image-size", "4"],
    ["benchmark", "--output", "a.json", "--json", "b.json"],
    ["fetch", "--output", "x", "--n-galaxies", "3", "--timeout", "-1"],
    ["fetch", "--output", "x", "--n-galaxies", "3", "--rate-limit", "0"],
    ["train", "d", "--output", "m", "--device", "cu da"],
    ["train", "d", "--output", "m", "--validation-fraction", "1"],
    ["train", "d", "--output", "m", "--keep-epoch", "first"],
    ["train", "d", "--output", "m", "--split", "paper", "--keep-epoch", "best"],
    ["interpret", "m", "d", "--output", "r", "--seed", "-1"],
])
def test_bad_values_are_usage_errors(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--help" in line
    assert not any(tmp_path.iterdir())


def test_library_argument_names_are_reported_as_flags():
    from sfnet.cli import _message

    assert _message(ValueError("device='cuda:3' requested but only 1 CUDA device(s) "
                               "are visible")).startswith("--device 'cuda:3' requested")
    assert _message(ValueError("batch_size must be an integer >= 1, got 0")) == \
        "--batch-size must be an integer >= 1, got 0"
    assert "pass --overwrite" in _message(FileExistsError("x (pass overwrite=True to ...)"))
    # words that are also prose are left alone inside a sentence
    assert _message(ValueError("no galaxy passes the cuts of target 'x'")) == \
        "no galaxy passes the cuts of target 'x'"
    from sfnet._io import NotADirectoryPathError

    assert _message(NotADirectoryPathError("output_dir 'f' exists and is not a directory")) \
        == "--output 'f' exists and is not a directory"


def test_progress_bars_follow_the_flag_and_the_terminal(monkeypatch):
    from types import SimpleNamespace

    from sfnet.cli import _progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert _progress(SimpleNamespace(no_progress=False))
    assert not _progress(SimpleNamespace(no_progress=True))
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bars
    assert not _progress(SimpleNamespace(no_progress=False))


def test_no_bars_when_stderr_is_not_a_terminal(folder, trained, tmp_path, capsys):
    model_dir, _ = trained
    # no --no-progress: stderr (captured) is not a terminal, so no tqdm bar
    assert main(["predict", str(model_dir), str(folder), "--output",
                 str(tmp_path / "p.ecsv")]) == 0
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err, err


# ----------------------------------------------------------------------------- overwrite rule
def _foreign(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


@pytest.mark.parametrize("command", ["demo", "train", "interpret", "sweep", "fetch"])
def test_a_foreign_directory_is_refused_without_overwrite(command, tmp_path, capsys, folder):
    out = _foreign(tmp_path / "out")
    argv = {"demo": ["demo", "--n-galaxies", "20", "--image-size", "16"],
            "train": ["train", str(folder)] + TINY,
            "interpret": ["interpret", str(tmp_path / "model"), str(folder)],
            "sweep": ["sweep", "--k", "1", "--n-galaxies", "20", "--image-size", "16"],
            "fetch": ["fetch", "--n-galaxies", "3"]}[command]
    assert main(argv + ["--output", str(out), "--no-progress"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"--output {str(out)!r}" in line and "--overwrite" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # nothing written


@pytest.mark.parametrize("command", ["predict", "benchmark"])
def test_an_existing_file_is_refused_without_overwrite(command, tmp_path, capsys, folder):
    out = tmp_path / ("p.ecsv" if command == "predict" else "bench.json")
    out.write_text("mine")
    argv = {"predict": ["predict", str(tmp_path / "model"), str(folder)],
            "benchmark": ["benchmark", "--steps", "1"]}[command]
    assert main(argv + ["--output", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "already exists" in line and "--overwrite" in line
    assert out.read_text() == "mine" and sorted(tmp_path.iterdir()) == [out]


def test_predict_replaces_its_file_with_overwrite(folder, trained, tmp_path):
    model_dir, _ = trained
    out = tmp_path / "p.csv"
    out.write_text("old")
    assert main(["predict", str(model_dir), str(folder), "--output", str(out),
                 "--overwrite", "--no-progress"]) == 0
    assert Table.read(out, format="ascii.csv").colnames[0] == "objID"


def test_fetch_writes_into_a_foreign_directory_with_overwrite(fake_sdss, tmp_path):
    out = _foreign(tmp_path / "sdss")
    assert main(["fetch", "--output", str(out), "--n-galaxies", "3", "--cutout-size", "16",
                 "--no-progress", "--overwrite"]) == 0
    assert (out / "galaxies.csv").is_file() and (out / "notes.txt").is_file()


def test_benchmark_json_is_a_deprecated_alias_of_output(tmp_path, capsys, monkeypatch):
    import sfnet.benchmark

    monkeypatch.setattr(sfnet.benchmark, "run_benchmark", lambda **kw: {"steps": kw["steps"]})
    monkeypatch.setattr(sfnet.benchmark, "format_table", lambda result: "table")
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--steps", "2", "--json", str(out)]) == 0
    assert "deprecated" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"steps": 2}
    assert main(["benchmark", "--steps", "3", "--output", str(out)]) == 1  # exists
    assert main(["benchmark", "--steps", "3", "--output", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text()) == {"steps": 3}


# ----------------------------------------------------------------------------- train metrics
def test_train_writes_metrics_json_with_the_demo_keys(folder, trained):
    model_dir, stdout = trained
    metrics = json.loads((model_dir / "metrics.json").read_text())
    shared = {"rmse", "nmad", "bias", "r2", "n_train", "n_valid", "n_selected", "k", "epochs",
              "best_epoch", "batch_size", "image_size", "seed", "seconds", "versions",
              "device", "precision", "target", "target_column", "unit"}
    assert shared <= set(metrics)
    model = SparseFeatureNet.load(model_dir)
    selected = load_galaxy_folder(folder, progress=False).select("metallicity")
    _, valid = selected.split(0.2, seed=1)
    assert (metrics["n_valid"], metrics["n_train"]) == (len(valid), len(selected) - len(valid))
    assert metrics["split"] == "random" and metrics["seed"] == 1 == model.seed_
    assert metrics["rmse"] == pytest.approx(model.evaluate(valid)["oh_p50"]["rmse"], rel=1e-4)
    assert metrics["metrics"]["oh_p50"]["rmse"] == metrics["rmse"]
    assert f"{metrics['rmse']:.4f}" in stdout


def test_train_paper_split_and_metrics_on_stdout(folder, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", str(folder), "--output", str(out), "--split", "paper",
                 "--metrics", "-"] + TINY) == 0
    stdout, stderr = capsys.readouterr()
    printed = json.loads(stdout)  # stdout is the JSON only; the summary went to stderr
    assert "validation metrics" in stderr
    assert printed == json.loads((out / "metrics.json").read_text())
    assert printed["split"] == "paper" and printed["seed"] == 256
    assert printed["validation_fraction"] == 0.2 and printed["keep_epoch"] == "last"

    # held out: exactly the rows of GalaxySample.split(0.2, 256, method="paper")
    selected = load_galaxy_folder(folder, progress=False).select("metallicity")
    train, valid = selected.split(0.2, 256, method="paper")
    model = SparseFeatureNet.load(out)
    assert model.n_train_ == len(train) == printed["n_train"]
    assert printed["n_valid"] == len(valid) == model.uncertainty_["n"]
    assert printed["rmse"] == pytest.approx(model.evaluate(valid)["oh_p50"]["rmse"], rel=1e-4)
    # ... an independent re-implementation of fastai's RandomSplitter rule
    import torch

    torch.manual_seed(256)
    perm = torch.randperm(len(selected)).numpy()
    rows = np.sort(perm[:int(0.2 * len(selected))])
    assert np.array_equal(np.asarray(valid.catalog["objID"]),
                          np.asarray(selected.catalog["objID"])[rows])
