"""Interpretation of a really trained (tiny) SparseFeatureNet: contributions, ablation,
localisation maps, every figure and the HTML report.

The model is a `SparseFeatureNet` with a registered 4-layer ResNet-shaped trunk
(stride 8, 32 features) trained for a few epochs on 32-px synthetic galaxies
whose colour tracks metallicity and whose size tracks stellar mass; it is
trained once per module.
"""

import io
from html.parser import HTMLParser

import numpy as np
import pytest
from astropy.table import Table

from sfnet import GalaxySample, SparseFeatureNet, interpret

BACKBONE = "interp_test_tiny"
SIZE = 32


def _register_tiny_backbone():
    import torch
    from torch import nn

    from sfnet.nn import BACKBONES, register_backbone

    if BACKBONE in BACKBONES:
        return

    def block(c_in, c_out, stride):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU())

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.maxpool = nn.Identity()
            self.layer1 = block(8, 8, 1)
            self.layer2 = block(8, 16, 2)
            self.layer3 = block(16, 16, 1)
            self.layer4 = block(16, 32, 2)
            self.fc = nn.Identity()

        def forward(self, x):  # pragma: no cover - the estimator calls the layers
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(x.mean((2, 3)), 1)

    register_backbone(BACKBONE, lambda weights=None: Tiny(), 32)


def _galaxies(n=240, size=SIZE, seed=0):
    """Blobs with MPA-JHU-like catalog columns: redder with metallicity, larger with mass."""
    rng = np.random.default_rng(seed)
    mass = rng.uniform(8.5, 11.5, n)
    sfr = 0.8 * (mass - 10) + rng.normal(0, 0.3, n)
    oh = 8.9 + 0.25 * np.tanh(mass - 10) + rng.normal(0, 0.05, n)
    agn = (mass > 10.7) & (rng.random(n) < 0.5)
    n2 = np.clip((oh - 8.9) / 0.57, -1.5, -0.1)
    o3 = 0.61 / (n2 - 0.05) + 1.05 + rng.normal(0, 0.1, n)
    n2[agn] = rng.uniform(-0.1, 0.3, agn.sum())
    o3[agn] = rng.uniform(0.2, 0.9, agn.sum())
    oh[agn] = -9999.0
    ha = 10 ** (sfr + 2.5)
    hb = ha / 2.86 / 10 ** rng.uniform(0, 0.2, n)
    cat = Table()
    cat["objID"] = np.arange(n, dtype=np.int64) + 1237648720693755918
    cat["ra"] = rng.uniform(0, 360, n)
    cat["dec"] = rng.uniform(-10, 60, n)
    cat["z"] = rng.uniform(0.02, 0.2, n)
    cat["lgm_tot_p50"] = mass
    cat["sfr_tot_p50"] = sfr
    cat["oh_p50"] = oh
    for name, f in (("h_alpha_flux", ha), ("h_beta_flux", hb),
                    ("nii_6584_flux", ha * 10 ** n2), ("oiii_5007_flux", hb * 10 ** o3)):
        cat[name] = f
        cat[name + "_err"] = f / rng.uniform(2, 40, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    shift = rng.uniform(-3, 3, (2, n))
    r = np.hypot(xx[None] - shift[0, :, None, None], yy[None] - shift[1, :, None, None])
    prof = np.exp(-r / (1 + 1.5 * (mass - 8.5))[:, None, None])
    red = np.where(oh > 0, np.clip((oh - 8.5) * 1.5, 0, 1), 1.0)[:, None, None]
    img = np.stack([prof * (0.4 + 0.6 * red), prof * 0.7, prof * (1 - 0.6 * red)], -1)
    img = img + rng.normal(0, 0.03, img.shape)
    return GalaxySample(np.clip(img * 255, 0, 255).astype(np.uint8), cat)


@pytest.fixture(scope="module")
def sample():
    return _galaxies()


@pytest.fixture(scope="module")
def model(sample):
    import torch

    _register_tiny_backbone()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return SparseFeatureNet(k=2, backbone=BACKBONE, epochs=8, batch_size=16,
                                learning_rate=1e-2, progress=False, device="cpu",
                                random_state=0).fit(sample.select("metallicity"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def acts(model, sample):
    return model.activations(sample)


@pytest.fixture(scope="module")
def top_feature(acts):
    return int(interpret.active_features(acts)[0])


def test_model_is_sparse_and_learned(model, sample, acts):
    assert acts.shape == (len(sample), model.n_features)
    assert np.count_nonzero(acts, axis=1).max() <= model.k
    sel = sample.select("metallicity")
    rmse = model.evaluate(sel)["oh_p50"]["rmse"]
    assert rmse < 0.7 * np.std(sel.catalog["oh_p50"])


def test_contributions_sum_to_model_predictions(model, sample, acts):
    t = interpret.contributions(model, acts, ids=sample.catalog["objID"])
    pred = model.predict(sample)
    total = t["bias_oh_p50"] + t["contribution_oh_p50"].sum(axis=1)
    np.testing.assert_allclose(total, pred, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(t["prediction_oh_p50"], total)
    assert t["feature"].shape[1] <= model.k
    assert t["objID"][0] == sample.catalog["objID"][0]


def test_ablation_all_features_kept_equals_model_rmse(model, sample):
    sel = sample.select("metallicity")
    res = interpret.ablation(model, sel, top_n=(1, 2, 5))
    full = model.evaluate(sel)["oh_p50"]["rmse"]
    assert res.full_rmse["oh_p50"] == pytest.approx(full, rel=1e-5)
    assert res.top_n["rmse"][-1] == pytest.approx(full, rel=1e-5)
    assert res.top_n["n_kept"][-1] == len(interpret.active_features(model.activations(sel)))
    # the most important single feature matters: zeroing it hurts
    assert res.per_feature["delta_rmse"].max() > 0


def test_feature_stats_on_model(model, sample, acts):
    t = interpret.feature_stats(acts)
    assert len(t) == model.n_features
    assert t.meta["max_active_per_galaxy"] <= model.k
    assert t.meta["n_dead"] + t.meta["n_active_features"] == model.n_features
    assert np.all(np.diff(np.asarray(t["n_active"])) <= 0)
    # the O(N k) sparse form of the estimator gives the same table
    sparse = model.activations(sample[:50], sparse=True)
    t_sparse = interpret.feature_stats(sparse, n_features=model.n_features)
    t_dense = interpret.feature_stats(acts[:50])
    np.testing.assert_array_equal(t_sparse["n_active"], t_dense["n_active"])
    np.testing.assert_allclose(t_sparse["max_activation"], t_dense["max_activation"])


def test_localization_maps_shape_and_mean(model, sample, top_feature):
    sub = sample[:6]
    maps = interpret.localization_maps(model, sub, top_feature)
    assert maps.shape == (6, SIZE, SIZE)
    assert maps.dtype == np.float32
    pooled = model.pooled_features(sub)[:, top_feature]
    # 32 px input, stride-8 trunk: 4x4 map, integer upsampling preserves the mean
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), pooled, rtol=1e-4, atol=1e-5)
    raw = model.feature_maps(sub, [top_feature])
    assert raw.shape[2:] == (4, 4) and raw.shape[2:] != maps.shape[1:]
    # an image array works as well as a sample; other sizes on request
    maps2 = interpret.localization_maps(model, sub.images, top_feature, size=20)
    assert maps2.shape == (6, 20, 20)
    np.testing.assert_allclose(maps2.mean(axis=(1, 2)), pooled, rtol=0.05, atol=1e-3)


def test_localization_maps_validation(model, sample):
    with pytest.raises(ValueError, match="feature"):
        interpret.localization_maps(model, sample[:2], model.n_features)
    with pytest.raises(TypeError, match="feature"):
        interpret.localization_maps(model, sample[:2], 1.5)
    with pytest.raises(TypeError, match="model"):
        interpret.localization_maps(object(), sample[:2], 0)


# ------------------------------------------------------------------------ figures

def _png_ok(fig):
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(io.BytesIO(data))
    assert img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.02          # not a blank canvas
    return img


FIGURES = {
    "bpt_density": lambda m, s, a, f: interpret.plot_bpt(s),
    "bpt_feature": lambda m, s, a, f: interpret.plot_bpt(s, a, f),
    "bpt_feature_no_examples": lambda m, s, a, f: interpret.plot_bpt(s, a, f,
                                                                     examples=False),
    "bpt_predicted": lambda m, s, a, f: interpret.plot_bpt(
        np.column_stack([np.log10(s.catalog[c]) for c in (
            "nii_6584_flux", "h_alpha_flux", "oiii_5007_flux", "h_beta_flux")])),
    "max_activating": lambda m, s, a, f: interpret.plot_max_activating(s, a, f, n=9),
    "activation_vs": lambda m, s, a, f: interpret.plot_activation_vs(
        s, a, f, "metallicity", model=m),
    "activation_vs_bpt_ratio": lambda m, s, a, f: interpret.plot_activation_vs(
        s, a, f, "log_nii_ha"),
    "feature_correlations": lambda m, s, a, f: interpret.plot_feature_correlations(a),
    "property_correlations": lambda m, s, a, f: interpret.plot_property_correlations(
        s, a, model=m),
    "predictions": lambda m, s, a, f: interpret.plot_predictions(
        s.catalog["oh_p50"][s.catalog["oh_p50"] > 0],
        m.predict(s)[np.asarray(s.catalog["oh_p50"]) > 0], target=m.target_),
    "localization": lambda m, s, a, f: interpret.plot_localization(m, s, f, n=4,
                                                                   activations=a),
    "feature_density": lambda m, s, a, f: interpret.plot_feature_density(a),
    "history": lambda m, s, a, f: interpret.plot_history(m.history_),
    "ablation": lambda m, s, a, f: interpret.plot_ablation(
        interpret.ablation(m, s.select("metallicity"))),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_renders(name, model, sample, acts, top_feature):
    from matplotlib.figure import Figure

    fig = FIGURES[name](model, sample, acts, top_feature)
    assert isinstance(fig, Figure)
    _png_ok(fig)


def test_plots_draw_into_a_given_ax(model, sample, acts, top_feature):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    assert interpret.plot_bpt(sample, acts, top_feature, ax=ax1) is fig
    assert interpret.plot_activation_vs(sample, acts, top_feature, "mass", ax=ax2) is fig
    assert ax1.get_xlabel().startswith(r"$\log([{\rm N")
    assert ax2.get_xlabel() == interpret.PROPERTIES["mass"].label
    _png_ok(fig)


def test_plot_predictions_multi_target_and_labels():
    rng = np.random.default_rng(0)
    y = rng.normal(1.5, 0.4, (300, 4))
    p = y + rng.normal(0, 0.1, y.shape)
    fig = interpret.plot_predictions(y, p, target="bpt_lines")
    axes = fig.get_axes()
    assert len(axes) == 8
    assert "Predicted" in axes[0].get_ylabel() and "N" in axes[0].get_ylabel()
    assert "RMSE" in axes[0].texts[0].get_text()
    _png_ok(fig)
    with pytest.raises(ValueError, match="shape"):
        interpret.plot_predictions(y, p[:, :2])


def test_plot_inputs_are_validated(sample, acts, model):
    with pytest.raises(ValueError, match="feature"):
        interpret.plot_max_activating(sample, acts, acts.shape[1])
    with pytest.raises(ValueError, match="rows"):
        interpret.plot_activation_vs(sample, acts[:10], 0, "metallicity")
    with pytest.raises(ValueError, match="nonexistent_column"):
        interpret.plot_activation_vs(sample, acts, 0, "nonexistent_column")
    with pytest.raises(ValueError, match="feature needs activations"):
        interpret.plot_bpt(sample, feature=0)


def test_inactive_feature_figures_say_so(model, sample, acts):
    dead = interpret.dead_features(acts)
    if dead.size == 0:
        pytest.skip("every feature fired")
    fig = interpret.plot_max_activating(sample, acts, int(dead[0]))
    texts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    assert any("never active" in t for t in texts)
    fig = interpret.plot_localization(model, sample, int(dead[0]), activations=acts)
    texts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    assert any("never active" in t for t in texts)


# ------------------------------------------------------------------------ report

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src, self.href, self.ids, self.tags = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.src.append(attrs["src"])
        if tag == "a" and "href" in attrs:
            self.href.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])


@pytest.fixture(scope="module")
def report(model, sample, acts, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = interpret.write_report(model, sample, out, activations=acts, max_features=2,
                                  n_examples=4, n_localization=3, dpi=50)
    return out, path


def test_report_links_resolve(report, model):
    out, path = report
    assert path == out / "report.html"
    text = path.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert "script" not in parser.tags and "<script" not in text.lower()
    assert len(parser.src) >= 8
    for src in parser.src:
        assert not src.startswith(("http:", "https:", "//", "/", "data:")), src
        f = out / src
        assert f.is_file(), src
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for href in parser.href:
        if href.startswith("#"):
            assert href[1:] in parser.ids, href
        elif not href.startswith("https://doi.org/"):
            assert (out / href).is_file(), href
    # the model card and one section per shown feature, in frequency order
    assert f"k = {model.k}" in text
    assert BACKBONE in text
    sections = [i for i in parser.ids if i.startswith("feature-")]
    assert len(sections) == 2


def test_report_feature_sections_follow_frequency(report, acts):
    out, path = report
    text = path.read_text(encoding="utf-8")
    first, second = interpret.active_features(acts)[:2]
    assert text.index(f'id="feature-{first}"') < text.index(f'id="feature-{second}"')
    table = Table.read(out / "features.csv", format="ascii.csv")
    assert list(table["feature"][:2]) == [first, second]
    assert "spearman_metallicity" in table.colnames
    assert "weight_oh_p50" in table.colnames


def test_report_says_which_correlation_normalisation(report):
    _, path = report
    text = path.read_text(encoding="utf-8")
    assert interpret.report.CORRELATION_NORMALIZE is None
    assert "used as they are (normalize=None)" in text
    assert 'feature_correlation_matrix(normalize=&#34;l2&#34;)' in text


def test_report_validates_before_writing(model, sample, acts, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="rows"):
        interpret.write_report(model, sample, out, activations=acts[:5])
    with pytest.raises(ValueError, match="max_features"):
        interpret.write_report(model, sample, out, activations=acts, max_features=-1)
    with pytest.raises(TypeError, match="sample"):
        interpret.write_report(model, sample.catalog, out, activations=acts)
    assert not out.exists()


def test_report_without_catalog_properties(model, sample, acts, tmp_path):
    """A catalog with only objIDs (no truth, no lines): the report still renders,
    with the galaxy gallery instead of the BPT figure and no performance plots."""
    bare = GalaxySample(sample.images[:80], Table({"objID": sample.catalog["objID"][:80]}))
    path = interpret.write_report(model, bare, tmp_path, activations=acts[:80],
                                  max_features=1, n_examples=4, n_localization=0, dpi=40)
    text = path.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert all((tmp_path / src).is_file() for src in parser.src)
    assert "no truth to compare with" in text
    assert not (tmp_path / "figures" / "bpt.png").exists()
    assert any(src.endswith("_top.png") for src in parser.src)
    assert not any("localization" in src for src in parser.src)


def test_report_files_are_readable_by_others(report):
    import stat

    out, path = report
    for f in [path, out / "features.csv", *sorted((out / "figures").glob("*.png"))]:
        assert f.stat().st_mode & stat.S_IROTH, f


def test_report_escapes_everything_it_shows(model, sample, acts, tmp_path):
    """The title, a target column name, metric names and values are shown as text:
    a name like ``<script>`` is escaped, never markup."""
    import copy

    from sfnet.targets import get_target

    evil = '<script>alert("x")</script>'
    cat = sample.catalog[:80].copy()
    cat[evil] = cat["oh_p50"]
    evil_sample = GalaxySample(sample.images[:80], cat)
    evil_model = copy.copy(model)            # the module's model stays as it is
    evil_model.target_ = get_target([evil])
    evil_model.target_names_ = [evil]
    path = interpret.write_report(
        evil_model, evil_sample, tmp_path, activations=acts[:80], max_features=1,
        n_examples=0, n_localization=0, dpi=30, title=f"Report {evil}",
        metrics={evil: {"rmse": 0.1}, "note": evil})
    text = path.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert "script" not in parser.tags
    assert "<script" not in text.lower()
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
    assert f"<title>Report {escaped}</title>" in text
    assert f"<h1>Report {escaped}</h1>" in text
    # the target name in the model card, the weight column, the metrics and head tables
    assert text.count(escaped) >= 6
    assert f"<th>w ({escaped})</th>" in text
    assert model.target_names == ["oh_p50"]


def test_report_template_is_package_data():
    """The page is rendered from jinja2 templates shipped inside sfnet.interpret."""
    from importlib import resources

    templates = resources.files("sfnet.interpret") / "templates"
    for name in ("report.html.j2", "sections.html.j2", "report.css"):
        assert (templates / name).is_file(), name


def test_report_shows_calibrated_error_bars_and_stability(report, model, sample):
    out, path = report
    text = path.read_text(encoding="utf-8")
    assert 'id="trust"' in text and (out / "figures" / "calibration.png").is_file()
    mean, std = model.predict(sample, return_std=True)
    truth = model.target_.truth(sample.catalog)[:, 0]
    ok = np.isfinite(truth)
    covered = np.mean(np.abs(truth[ok] - mean[ok]) <= std[ok])
    assert f"<td>{100 * covered:.1f}%</td>" in text
    # coverage by subgroup: at least by the predicted sigma (the catalog may lack the rest)
    assert "Coverage by subgroup" in text
    assert (out / "figures" / "coverage_by_oh_p50_predicted_sigma.png").is_file()
    by_sigma = interpret.coverage_by(truth[ok], mean[ok], std[ok], by=std[ok], bins=5)
    worst = by_sigma[int(np.argmax(np.abs(by_sigma["coverage_68"] - interpret.ONE_SIGMA)))]
    assert f"<td>{100 * worst['coverage_68']:.1f}% (" in text
    assert f"<td>{worst['std_scale']:.2f}</td>" in text
    table = interpret.activation_stability(model, sample[:500])
    assert f"{100 * np.mean(table['same_set_dihedral']):.1f}% of galaxies" in text


def test_plot_predictions_draws_error_bars():
    from matplotlib.collections import LineCollection

    rng = np.random.default_rng(1)
    y = rng.normal(8.9, 0.2, 50)
    p = y + rng.normal(0, 0.05, 50)
    with_bars = interpret.plot_predictions(y, p, y_std=np.full(50, 0.05))
    without = interpret.plot_predictions(y, p)
    n_bars = sum(isinstance(c, LineCollection) for c in with_bars.axes[0].collections)
    assert n_bars == 1
    assert not any(isinstance(c, LineCollection) for c in without.axes[0].collections)
    with pytest.raises(ValueError, match="y_std"):
        interpret.plot_predictions(y, p, y_std=np.ones(49))


def test_report_ground_truth_section_on_mock_galaxies(model, tmp_path):
    """On mock galaxies (mock_* columns) the report tests the features against the latents,
    intervenes on one latent and, given another fit, matches the features (here the model
    itself: a perfect match)."""
    from sfnet.datasets import make_mock_galaxies

    mock = make_mock_galaxies(150, image_size=SIZE, seed=5, progress=False)
    path = interpret.write_report(model, mock, tmp_path, max_features=2, n_examples=2,
                                  n_localization=0, n_stability=0, other_models=[model],
                                  n_interventions=12, intervention_latents=["inclination"],
                                  dpi=40)
    text = path.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert "ground-truth" in parser.ids and 'href="#ground-truth"' in text
    section = text[text.index('id="ground-truth"'):]
    section = section[:section.index("</p>", section.index("Seed agreement"))
                      + 2000]
    assert "Disentanglement" in section and "Informativeness" in section
    recovery = interpret.latent_recovery(model, mock, features=interpret.active_features(
        model.activations(mock))[:2])
    for feature, latent in zip(recovery["feature"], recovery["latent"]):
        assert f"<td>{feature}</td><td>" in section and latent in section
    assert "prediction (oh_p50)" in section and "inclination" in section
    assert "12 mock galaxies" in section
    assert "100.0%" in section                # the model matched with itself
    assert "needs galaxies whose true" not in text


def test_report_ground_truth_section_says_what_it_needs(report):
    _, path = report
    text = path.read_text(encoding="utf-8")
    assert 'id="ground-truth"' in text
    assert "needs galaxies whose true" in text and "mock_*" in text
    assert "other_models=[...]" in text


def test_report_ground_truth_inputs_are_checked(model, sample, acts, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(TypeError, match="other_models"):
        interpret.write_report(model, sample, out, activations=acts, other_models=[object()])
    with pytest.raises(ValueError, match="intervention_latents"):
        interpret.write_report(model, sample, out, activations=acts,
                               intervention_latents=["not_a_latent"])
    with pytest.raises(ValueError, match="n_interventions"):
        interpret.write_report(model, sample, out, activations=acts, n_interventions=-1)
    assert not out.exists()
