"""The random split rule shared by `GalaxySample.split` and `SparseFeatureNet.fit`.

Private module; one function, so a sample split by hand and the validation
split that ``fit`` draws from the same seed hold out the same rows.
"""

import numpy as np

__all__ = ["split_positions"]


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
