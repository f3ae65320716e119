"""Accuracy against sparsity: one SFNet per k, as ``sfnet sweep`` runs it.

The top-k constraint makes an SFNet interpretable (at most k features per
galaxy) at some cost in accuracy.  `run_k_sweep` measures that cost: it trains
one network per k on the same training galaxies, scores each on the same
held-out galaxies and counts the features each one uses.  ``k = 512`` (the
number of pooled ResNet-18 features) is the dense network, so its row is the
accuracy an unconstrained network reaches with the same recipe.  The
reference lines -- mean predictor, photometric baselines (`sfnet.baselines`)
and, on the mock, the floor (``oracle_rmse``) -- are computed once on the same
split and stored in the table's ``meta``.  The steps (select, split, score,
baselines, floor) are those of `sfnet.workflow`, shared with ``sfnet train``
and ``sfnet demo``.

With ``seeds`` > 1 every k is trained with that many network seeds (the same
split), the accuracy columns are means over the seeds, and the table gains an
interpretability axis measured on the held-out galaxies:

* ``disentanglement``, ``completeness``, ``informativeness`` -- the DCI-style
  scores of `sfnet.interpret.latent_recovery` against the mock's known
  latents (``mock_*`` columns; NaN on data without them), computed on the
  `TOP_FEATURES` features with the largest activation mass of each fit, so
  that a dense and a sparse network are compared on the same number of
  features; means over the seeds (computed with one seed too);
* ``seed_match`` -- the seed-reproducibility score: the mean over seed pairs
  of `sfnet.interpret.match_features`'s ``matched_fraction`` (the share of
  activation mass whose feature has a partner with activation correlation
  >= 0.5 in the other fit; all features that fire take part); NaN with one
  seed.
"""

import time

import numpy as np

from ._io import check_output_dir
from .workflow import load_data, reference_scores, score_model, select_and_split

__all__ = ["run_k_sweep", "run_sweep", "write_sweep", "SWEEP_COLUMNS", "DEFAULT_KS",
           "INTERPRETABILITY_COLUMNS", "TOP_FEATURES", "interpretability", "top_by_mass"]

#: Columns of the table `run_k_sweep` returns, in order.
SWEEP_COLUMNS = ("k", "rmse", "nmad", "bias", "r2", "n_active", "n_frequent",
                 "max_active_per_galaxy", "seconds", "rmse_std", "disentanglement",
                 "completeness", "informativeness", "seed_match")
#: The interpretability columns of the table (NaN where they cannot be measured).
INTERPRETABILITY_COLUMNS = ("disentanglement", "completeness", "informativeness",
                            "seed_match")
#: The k values of ``sfnet sweep`` when none are given (512: dense).
DEFAULT_KS = (1, 2, 4, 8, 512)
#: Features (largest activation mass first) scored by `latent_recovery` per fit.
TOP_FEATURES = 12
#: Correlation above which two seeds' features count as the same (`match_features`).
MATCH_THRESHOLD = 0.5
#: A feature is "frequent" when it is active in more than this fraction of galaxies.
FREQUENT_FRACTION = 0.01


def _check_ks(ks):
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = [ks]
    try:
        ks = list(ks)
    except TypeError:
        raise TypeError(f"ks must be a list of integers, got {ks!r}") from None
    if not ks:
        raise ValueError("ks must hold at least one k")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"ks must hold integers, got {k!r}")
        if k < 1:
            raise ValueError(f"ks must hold integers >= 1, got {k}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks has duplicates: {ks}")
    return sorted(int(k) for k in ks)


def _fit_and_score(model, split):
    """Fit ``model`` on the training galaxies; its `Scores` on the held-out ones and seconds."""
    t0 = time.perf_counter()
    model.fit(split.train)
    scores = score_model(model, split.valid, split.truth)
    return scores, time.perf_counter() - t0


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _sweep_row(k, models, split, top_features=TOP_FEATURES):
    """Fit every seed's model of one k; its row of the sweep table.

    Accuracy columns are means over the seeds (``rmse_std``: their standard
    deviation); the feature counts are those of the first seed's fit.
    """
    fitted = [_fit_and_score(model, split) for model in models]
    per_seed = [list(scores.metrics.values()) for scores, _ in fitted]

    def mean_of(name):
        return [float(np.mean([m[name] for m in metrics])) for metrics in per_seed]

    rmse = mean_of("rmse")
    acts = fitted[0][0].activations
    on = acts != 0
    per_feature = on.sum(axis=0)
    row = {
        "k": k,
        "rmse": float(np.mean(rmse)),
        "nmad": float(np.mean(mean_of("nmad"))),
        "bias": float(np.mean(mean_of("bias"))),
        "r2": float(np.mean(mean_of("r2"))),
        "n_active": int(np.count_nonzero(per_feature)),
        "n_frequent": int(np.count_nonzero(per_feature > FREQUENT_FRACTION * len(acts))),
        "max_active_per_galaxy": int(on.sum(axis=1).max()) if len(acts) else 0,
        "seconds": round(sum(seconds for _, seconds in fitted), 3),
        "rmse_std": float(np.std(rmse, ddof=1)) if len(rmse) > 1 else float("nan"),
    }
    row.update(interpretability([np.asarray(s.activations) for s, _ in fitted], split.valid,
                                top_features=top_features))
    return row


def top_by_mass(acts, n):
    """The (at most) ``n`` features with the largest summed activation, largest first."""
    mass = np.asarray(acts, dtype=np.float64).sum(axis=0)
    order = np.argsort(-mass, kind="stable")
    return order[mass[order] > 0][:n]


def interpretability(activations, sample, *, top_features=TOP_FEATURES,
                     threshold=MATCH_THRESHOLD):
    """The interpretability columns for the fits of one k (one activation array per seed).

    Parameters
    ----------
    activations : list of array-like, shape (N, n_features)
        Each seed's activations on the same held-out galaxies ``sample``.
    sample : `~sfnet.datasets.GalaxySample`
        Those galaxies; the DCI scores need its ``mock_*`` columns.
    top_features : int, optional
        Features (largest activation mass first) scored per fit.
    threshold : float, optional
        Correlation at which `match_features` counts two features as matched.

    Returns
    -------
    dict
        `INTERPRETABILITY_COLUMNS` -> float: the DCI scores averaged over the
        seeds (NaN without ``mock_*`` columns or when no fit could be scored)
        and ``seed_match``, the mean ``matched_fraction`` over seed pairs (NaN
        with one seed).
    """
    from .interpret import LATENT_PREFIX, latent_recovery, match_features

    out = dict.fromkeys(INTERPRETABILITY_COLUMNS, float("nan"))
    catalog = getattr(sample, "catalog", None)
    has_latents = catalog is not None and any(c.startswith(LATENT_PREFIX)
                                              for c in catalog.colnames)
    if has_latents:
        scores = {name: [] for name in ("disentanglement", "completeness", "informativeness")}
        for acts in activations:
            top = top_by_mass(acts, top_features)
            if top.size == 0:
                continue
            try:
                meta = latent_recovery(None, sample, activations=acts, features=top,
                                       regressor="gbm", seed=0).meta
            except ValueError:       # too few galaxies or nothing varies: not measurable
                continue
            for name, values in scores.items():
                values.append(meta[name])
        for name, values in scores.items():
            finite = [v for v in values if v is not None and np.isfinite(v)]
            if finite:
                out[name] = float(np.mean(finite))
    matched = []
    for i in range(len(activations)):
        for j in range(i + 1, len(activations)):
            try:
                matched.append(match_features(activations[i], activations[j],
                                              threshold=threshold).meta["matched_fraction"])
            except ValueError:       # a fit with no active feature
                continue
    if matched:
        out["seed_match"] = float(np.mean(matched))
    return out


def _sweep_table(rows, tgt):
    """The rows as a `~astropy.table.Table` with units and column descriptions."""
    from astropy.table import Table

    table = Table(rows=[[r[c] for c in SWEEP_COLUMNS] for r in rows], names=SWEEP_COLUMNS)
    unit = tgt.units[0] if len(set(tgt.units)) == 1 and tgt.units[0] else None
    for c in ("rmse", "nmad", "bias"):
        if unit:
            table[c].unit = unit
    table["seconds"].unit = "s"
    table["rmse"].description = "RMSE on the held-out galaxies (mean over seeds)"
    table["nmad"].description = "NMAD (1.4826 x median absolute deviation) on the held-out galaxies"
    table["n_active"].description = ("features active in at least one held-out galaxy "
                                     "(first seed)")
    table["n_frequent"].description = (f"features active in more than "
                                       f"{FREQUENT_FRACTION:.0%} of the held-out galaxies")
    table["max_active_per_galaxy"].description = "most features active in one galaxy (<= k)"
    table["seconds"].description = "training + evaluation time (all seeds)"
    table["rmse_std"].description = "standard deviation of the RMSE over the seeds"
    for c in ("disentanglement", "completeness", "informativeness"):
        table[c].description = (f"DCI {c} (latent_recovery) of the top {TOP_FEATURES} "
                                "features by activation mass, mean over seeds")
    table["seed_match"].description = ("mean matched_fraction (match_features) over seed "
                                       "pairs")
    return table


def _image_size(sample):
    if hasattr(sample, "image_shape"):
        return int(sample.image_shape[0])
    return int(np.shape(sample.images)[1])


def run_k_sweep(sample, ks=DEFAULT_KS, *, target="metallicity", epochs=12, batch_size=64,
                validation_fraction=0.2, seed=0, seeds=1, top_features=TOP_FEATURES,
                device="auto", precision="auto", output=None, progress=True, say=None,
                **params):
    """Train one `~sfnet.SparseFeatureNet` per k and compare them on held-out galaxies.

    Parameters
    ----------
    sample : `~sfnet.datasets.GalaxySample`
        The galaxies; those passing the target's cuts are split into training
        and held-out galaxies (``validation_fraction``, seeded by ``seed``).
    ks : sequence of int, optional
        The k values (each >= 1; ``k = n_features``, 512 for ResNet-18, is dense).
    target : str or list of str, optional
        As in `~sfnet.SparseFeatureNet`.
    epochs, batch_size, seed, device, precision, **params
        Passed to every `~sfnet.SparseFeatureNet` (the same recipe for each k).
    validation_fraction : float, optional
        Held-out fraction (0 < f < 1).
    seeds : int, optional
        Networks trained per k, with ``random_state`` ``seed``, ``seed + 1``,
        ...  (the split stays that of ``seed``).  With 2 or more the table
        has ``rmse_std`` and the seed-reproducibility score ``seed_match``.
    top_features : int, optional
        Features (largest activation mass first) of each fit scored by
        `sfnet.interpret.latent_recovery` for the DCI columns.
    output : path-like, optional
        If given, write ``sweep.ecsv`` (the table) and ``k_sweep.png``
        (`sfnet.interpret.plot_k_sweep`) there; checked before any training.
    progress : bool, optional
        Progress bars while training.
    say : callable, optional
        Called with one line of text before each stage.

    Returns
    -------
    `~astropy.table.Table`
        One row per k with `SWEEP_COLUMNS`: held-out ``rmse``, ``nmad``, ``bias``
        and ``r2`` (averaged over the target's columns for a multi-column target,
        then over the seeds) and ``rmse_std`` over the seeds (NaN with one);
        ``n_active``, the features active in at least one held-out galaxy;
        ``n_frequent``, those active in more than 1 % of them;
        ``max_active_per_galaxy`` (at most k) -- these three of the first
        seed's fit; ``seconds`` of training and evaluation (all seeds); the
        `INTERPRETABILITY_COLUMNS` ``disentanglement``, ``completeness``,
        ``informativeness`` (DCI-style scores in [0, 1] of the ``top_features``
        features with the most activation mass against the ``mock_*`` latents
        of the held-out galaxies, mean over seeds; NaN without ``mock_*``
        columns) and ``seed_match`` (mean ``matched_fraction`` of
        `sfnet.interpret.match_features` over seed pairs, in [0, 1]; NaN with
        one seed).  ``meta`` holds the reference RMSEs on the same held-out
        galaxies (``mean_rmse``, ``photometric_gbm_rmse``,
        ``photometric_linear_rmse``, ``oracle_rmse`` -- NaN where unknown),
        ``target``, ``target_std``, ``n_train``, ``n_valid``, ``epochs``,
        ``image_size``, ``seeds``, ``top_features``, ``match_threshold`` and
        ``seconds`` (the whole sweep).

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.sweep import run_k_sweep
    >>> s = make_mock_galaxies(300, image_size=32, seed=0, progress=False)
    >>> t = run_k_sweep(s, [1, 512], epochs=1, progress=False)   # doctest: +SKIP
    >>> list(t["k"])                                              # doctest: +SKIP
    [1, 512]
    """
    from . import SparseFeatureNet

    say = say or (lambda text: None)
    ks = _check_ks(ks)
    seeds = _check_count(seeds, "seeds")
    top_features = _check_count(top_features, "top_features")
    if isinstance(validation_fraction, bool) or \
            not (isinstance(validation_fraction, (float, int)) and 0 < validation_fraction < 1):
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    if output is not None:
        output = check_output_dir(output)
    models = {k: [SparseFeatureNet(k=k, target=target, epochs=epochs, batch_size=batch_size,
                                   validation_fraction=0.0, device=device,
                                   precision=precision, random_state=seed + i,
                                   progress=progress, **params) for i in range(seeds)]
              for k in ks}
    for model in models.values():      # every parameter is checked before any training
        model[0].validate_params()
    t_all = time.perf_counter()
    split = select_and_split(sample, target, validation_fraction, seed, min_selected=10,
                             hint="the sweep needs at least 10")
    say(f"{len(split.train)} training and {len(split.valid)} held-out galaxies; "
        "baselines first")
    refs = reference_scores(split, sample, seed=seed)

    rows = []
    for k, model in models.items():
        say(f"k={k}: training {seeds} seed(s) for {epochs} epoch(s)")
        rows.append(_sweep_row(k, model, split, top_features))
        say(f"k={k}: RMSE {rows[-1]['rmse']:.4f}, {rows[-1]['n_active']} features active, "
            f"seed match {rows[-1]['seed_match']:.2f}")

    table = _sweep_table(rows, split.target)
    table.meta.update({
        "target": split.target.name,
        "target_std": float(np.mean(split.truth.std(axis=0))),
        "n_train": len(split.train), "n_valid": len(split.valid), "epochs": int(epochs),
        "batch_size": int(batch_size), "seed": int(seed),
        "image_size": _image_size(sample),
        "n_features": int(models[ks[0]][0].n_features),
        "seeds": int(seeds), "top_features": int(top_features),
        "match_threshold": MATCH_THRESHOLD,
        "seconds": round(time.perf_counter() - t_all, 3),
        **_reference_meta(refs),
    })
    if output is not None:
        write_sweep(table, output)
    return table


def _reference_meta(refs):
    """The baselines and the floor as the sweep table's ``meta`` entries."""
    meta = {"mean_rmse": refs.mean_rmse}
    for model in ("gbm", "linear"):
        meta[f"photometric_{model}_rmse"] = getattr(refs, f"photometric_{model}_rmse")
        note = refs.notes.get(f"photometric_{model}_note")
        if note is not None:
            meta[f"photometric_{model}_note"] = note
    meta["oracle_rmse"] = refs.floor.best
    return meta


def run_sweep(data=None, ks=DEFAULT_KS, *, output="sfnet-sweep", n_galaxies=8000,
              image_size=64, seed=0, overwrite=False, progress=True, say=None, **kwargs):
    """Open DATA (or generate mock galaxies), run `run_k_sweep` and write its files.

    The pipeline of ``sfnet sweep``: ``output`` is checked before any work.

    Parameters
    ----------
    data : path-like, `~sfnet.GalaxySample` or None, optional
        DATA (`sfnet.workflow.load_data`), a sample, or None for
        ``n_galaxies`` mock galaxies of ``image_size`` px generated with ``seed``.
    ks : sequence of int, optional
        As in `run_k_sweep`.
    output : path-like, optional
        Directory for ``sweep.ecsv`` and ``k_sweep.png``: new, empty or an
        earlier sweep (``sweep.ecsv``); any directory with ``overwrite``.
    n_galaxies, image_size : int, optional
        The mock (without ``data``).
    seed : int, optional
        Seed of the mock, the split and the networks.
    overwrite : bool, optional
        Write into a non-empty ``output`` that is not a sweep.
    progress, say, **kwargs
        As in `run_k_sweep`.

    Returns
    -------
    `~astropy.table.Table`
        The table of `run_k_sweep`.
    """
    output = check_output_dir(output, marker="sweep.ecsv", what="an sfnet sweep",
                              overwrite=overwrite)
    say = say or (lambda text: None)
    if data is None:
        from .datasets import make_mock_galaxies

        say(f"generating {n_galaxies} mock galaxies ({image_size}x{image_size} px, "
            f"seed {seed})")
        sample = make_mock_galaxies(n_galaxies, image_size=image_size, seed=seed,
                                    progress=progress)
    elif hasattr(data, "catalog"):
        sample = data
    else:
        sample = load_data(data, progress=progress)
    return run_k_sweep(sample, ks, seed=seed, output=output, progress=progress, say=say,
                       **kwargs)


def write_sweep(table, output):
    """Write ``sweep.ecsv`` and ``k_sweep.png`` into the directory ``output``; return both paths."""
    from ._io import atomic_path
    from .interpret import plot_k_sweep

    output = check_output_dir(output)
    output.mkdir(parents=True, exist_ok=True)
    ecsv = output / "sweep.ecsv"
    with atomic_path(ecsv, suffix=".ecsv") as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    png = output / "k_sweep.png"
    fig = plot_k_sweep(table)
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return ecsv, png
