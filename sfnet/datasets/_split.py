"""The split rules: sfnet's random split and the paper's (fastai's) split.

Private module.  `split_positions` is shared by `GalaxySample.split` and
`SparseFeatureNet.fit`, so a sample split by hand and the validation split
that ``fit`` draws from the same seed hold out the same rows;
`paper_split_positions` reproduces the split of the paper's released models.
"""

import numpy as np

__all__ = ["SPLIT_METHODS", "split_positions", "paper_split_positions"]

#: The names `GalaxySample.split` accepts for its ``method``.
SPLIT_METHODS = ("random", "paper")


def split_positions(n, fraction, seed, *, min_valid=0):
    """Sorted ``(training, validation)`` positions of ``n`` rows.

    ``round(fraction * n)`` rows (at least ``min_valid`` when ``fraction > 0``)
    are validation: the first ones of ``numpy.random.default_rng(seed).permutation(n)``.

    Parameters
    ----------
    n : int
        Number of rows.
    fraction : float
        Fraction of the rows held out, in [0, 1).
    seed : int, `numpy.random.Generator` or None
        Seed of the permutation; the same seed gives the same split.
    min_valid : int
        Smallest validation count for a positive ``fraction``.

    Returns
    -------
    train, valid : ndarray
        Disjoint sorted integer positions covering ``range(n)``.

    Examples
    --------
    >>> train, valid = split_positions(10, 0.2, seed=0)
    >>> len(train), len(valid), sorted(set(train) | set(valid)) == list(range(10))
    (8, 2, True)
    """
    n_valid = int(round(fraction * n))
    if fraction > 0:
        n_valid = max(n_valid, min_valid)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


def paper_split_positions(n, fraction, seed):
    """Sorted ``(training, validation)`` positions of fastai's ``RandomSplitter``.

    fastai's ``RandomSplitter(valid_pct=fraction, seed=seed)`` (the paper:
    0.2, 256) seeds torch with ``seed``, draws ``torch.randperm(n)`` and holds
    out its first ``int(fraction * n)`` positions.  The permutation is drawn
    here from a private `torch.Generator` seeded the same way, which gives the
    same permutation without touching torch's global random state.

    Parameters
    ----------
    n : int
        Number of rows (those that pass the target's cuts, in catalog order).
    fraction : float
        Fraction held out, in (0, 1).
    seed : int
        Non-negative integer seed.

    Returns
    -------
    train, valid : ndarray
        Disjoint sorted integer positions covering ``range(n)``.

    Examples
    --------
    >>> train, valid = paper_split_positions(10, 0.2, seed=256)
    >>> len(train), len(valid)
    (8, 2)
    """
    import torch

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int with method='paper', got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative with method='paper', got {seed}")
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator).numpy()
    n_valid = int(fraction * n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
