"""`GalaxySample`: galaxy image cutouts aligned row by row with a catalog.

A sample holds an ``(N, H, W, C)`` image array -- ``uint8`` (0--255, e.g. RGB
JPEGs, C = 3) or float (e.g. FITS fluxes), any number of channels C >= 1, in
memory or a `numpy.memmap` -- and an `astropy.table.Table` with one row per
image and a unique ID column: the 64-bit SDSS ``objID`` by default, or any
column named by ``id_column`` holding integers or strings.  A `pandas.DataFrame` is accepted as the
catalog too (converted to a Table, with units for the columns sfnet knows), and
`GalaxySample.to_pandas` hands the catalog back as a DataFrame.  Samples are
saved as a directory::

    sample/
        catalog.ecsv    the catalog (units, meta and int64 objIDs kept exactly)
        images.npy      the images, one .npy array (memory-mapped on load)
        sample.json     format version, N, image shape, dtype and the ID column

so a 250,000-galaxy sample (~19 GB of 160 px RGB) never has to fit in RAM.
That format, the catalog conversions (pandas, exact ``int64`` objIDs) and the
row reads live in the private storage module `sfnet.datasets._store`; this
module is the container.

Memory model
------------
Slicing a sample (``sample[10:20]``) slices the image array, so a slice of a
memory-mapped sample is still memory-mapped.  Boolean masks and index arrays
(``sample[mask]``, `GalaxySample.select`, `GalaxySample.split`) on a
memory-mapped sample are *lazy*: the new sample remembers which rows of the
file it uses and reads nothing until asked.  `GalaxySample.read_images` reads
one batch of such a sample (a copy in memory, O(batch) memory), and
`GalaxySample.save` streams it to disk in chunks; only the `GalaxySample.images`
attribute of a lazy subset materialises the whole subset in memory (once, on
first access).  On an in-memory sample, masks and index arrays copy the
selected images immediately, like numpy fancy indexing.  Pickling a
memory-mapped sample stores a reference to its file (mapped again, read-only,
when unpickled), not its pixels, so worker processes share the file.
"""

import logging

import numpy as np

from .._validation import check_choice
from ..targets import get_target
from ._split import SPLIT_METHODS, paper_split_positions, split_positions
from ._store import (DEFAULT_ID_COLUMN, as_catalog, as_run, catalog_to_pandas,
                     check_id_column, memmap_reference, normalize_rows, open_reference,
                     read_rows, read_sample_dir, write_sample_dir)

__all__ = ["GalaxySample"]

# pytest-doctestplus: these examples need the optional pandas.
__doctest_requires__ = {("GalaxySample", "GalaxySample.to_pandas"): ["pandas"]}

log = logging.getLogger(__name__)


class GalaxySample:
    """Galaxy images aligned row by row with an astropy catalog.

    Parameters
    ----------
    images : array-like, shape (N, H, W, C), dtype uint8 or float
        Cutouts, channels last: ``uint8`` (0--255; RGB JPEGs have C = 3) or a
        float dtype (fluxes, e.g. from FITS; NaN is allowed here but the
        folder loader reports and drops such images), any C >= 1.  A
        `numpy.ndarray` (including a `numpy.memmap`) is used as is, never
        copied; anything else goes through `numpy.asarray`.
    catalog : `~astropy.table.Table`, `~astropy.table.QTable` or `pandas.DataFrame`
        One row per image with a unique ID column (``id_column``).  The
        default ``objID`` must be integer (64-bit SDSS identifiers are kept
        exactly; strings of digits, as read by
        ``pandas.read_csv(..., dtype=str)``, are converted exactly).  The
        sample keeps a shallow copy of a table (new columns added to the
        sample's catalog do not appear in yours; the data are shared).  A
        DataFrame is converted with `astropy.table.Table.from_pandas` (a named
        index, e.g. after ``set_index("objID")``, becomes a column; missing
        values become masked entries), and the columns sfnet knows (see
        `sfnet.catalog.COLUMNS`) get their units and descriptions with
        `sfnet.catalog.add_units`; units recorded by `to_pandas` in
        ``DataFrame.attrs["units"]`` are restored first.
    id_column : str
        The ID column (default ``"objID"``).  Any other column may hold
        integers (kept as ``int64``) or strings (kept as strings, e.g. a DESI
        ``TARGETID`` read as text or a galaxy name); IDs never go through
        float.  Downstream code (`~sfnet.SparseFeatureNet.predict_table`, the
        folder writer, `save`) reads it from `id_column`.

    Raises
    ------
    TypeError
        If ``images`` is neither ``uint8`` nor float, ``catalog`` is not a
        Table or DataFrame, or the IDs are float (or ``objID`` not integer).
    ValueError
        If ``images`` is not ``(N, H, W, C)``, the lengths differ, or the ID
        column is missing, masked or not unique.

    Notes
    -----
    Indexing with an integer returns a sample of length 1 (like
    ``sample[i:i+1]``); slices, boolean masks and integer index arrays return
    samples too.  Index arrays must not repeat rows (objIDs stay unique).
    See the module documentation for which selections stay memory-mapped.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from sfnet import GalaxySample
    >>> images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    >>> catalog = Table({"objID": [1237648720693755918 + i for i in range(4)],
    ...                  "ra": [10., 20., 30., 40.], "dec": [0., 1., 2., 3.]})
    >>> sample = GalaxySample(images, catalog)
    >>> len(sample), sample.image_shape
    (4, (8, 8, 3))
    >>> sample[1:3].catalog["objID"].tolist()
    [1237648720693755919, 1237648720693755920]
    >>> train, valid = sample.split(0.25, seed=0)
    >>> len(train), len(valid)
    (3, 1)

    A `pandas.DataFrame` works as the catalog; `catalog` is always an astropy
    table, with units on the columns sfnet knows:

    >>> import pandas as pd
    >>> df = pd.DataFrame({"objID": [1237648720693755918, 1237648720693755919],
    ...                    "ra": [150.1, 150.2], "dec": [2.2, 2.3]})
    >>> s = GalaxySample(np.zeros((2, 8, 8, 3), np.uint8), df)
    >>> s.catalog["ra"].unit
    Unit("deg")
    >>> s.to_pandas()["objID"].dtype
    dtype('int64')
    """

    def __init__(self, images, catalog, id_column=DEFAULT_ID_COLUMN):
        images = _check_images(images)
        id_column = check_id_column(id_column)
        catalog = as_catalog(catalog, id_column)
        if len(catalog) != images.shape[0]:
            raise ValueError(
                f"images has {images.shape[0]} rows but catalog has {len(catalog)}; "
                "they must be aligned row by row")
        self._base = images
        self._index = None
        self._cache = None
        self._catalog = catalog
        self._id_column = id_column

    @classmethod
    def _from_parts(cls, base, index, catalog, id_column=DEFAULT_ID_COLUMN):
        """A sample from already validated parts (no checks, no copies)."""
        self = cls.__new__(cls)
        self._base = base
        self._index = index
        self._cache = None
        self._catalog = catalog
        self._id_column = id_column
        return self

    # ------------------------------------------------------------------ basics
    def __len__(self):
        return len(self._catalog)

    @property
    def catalog(self):
        """`~astropy.table.Table`: the catalog, one row per image."""
        return self._catalog

    @property
    def id_column(self):
        """str: the name of the catalog's unique ID column (``"objID"`` by default)."""
        return self._id_column

    @property
    def ids(self):
        """`numpy.ndarray`: the IDs (``int64`` or strings), one per image, in order."""
        return np.asarray(self._catalog[self._id_column])

    def to_pandas(self, index=False):
        """The catalog as a `pandas.DataFrame`, one row per image, in order.

        ``objID`` stays an exact ``int64``; masked integers become pandas'
        nullable ``Int64``; Quantity columns (of a `~astropy.table.QTable`)
        become plain numbers.  pandas has no units, so the unit of every column
        that has one is recorded in ``DataFrame.attrs["units"]`` (name -> unit
        string), which `GalaxySample` reads back when given the DataFrame.

        Parameters
        ----------
        index : bool or str
            ``False`` (default): a plain ``RangeIndex``, so row ``i`` of the
            DataFrame is image ``i``.  A column name (e.g. ``"objID"``): that
            column becomes the index.  ``True``: the table's primary key, if
            it has one.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install "sfnet[pandas]"``).
        ValueError
            If the catalog has columns pandas cannot hold (multidimensional
            columns, or mixin columns such as `~astropy.coordinates.SkyCoord`
            that astropy cannot convert); the message names them.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from sfnet import GalaxySample
        >>> s = GalaxySample(np.zeros((2, 4, 4, 3), np.uint8),
        ...                  Table({"objID": [2**62 + 1, 2**62 + 2], "ra": [1.0, 2.0]}))
        >>> s.catalog["ra"].unit = "deg"
        >>> df = s.to_pandas()
        >>> df["objID"].tolist(), df.attrs["units"]
        ([4611686018427387905, 4611686018427387906], {'ra': 'deg'})
        """
        return catalog_to_pandas(self._catalog, index)

    @property
    def images(self):
        """`numpy.ndarray`, shape (N, H, W, C), uint8 or float: the images.

        A `numpy.memmap` for a loaded sample and for slices of it.  For a lazy
        subset of a memory-mapped sample (see the module notes) the first access
        reads the subset into memory; use `read_images` to read batches instead.
        """
        if self._index is None:
            return self._base
        if self._cache is None:
            self._cache = read_rows(self._base, self._index)
        return self._cache

    @property
    def shape(self):
        """tuple: ``(N,)``; a sample is a sequence of galaxies (``sample[rows, ...]`` works too),
        so scikit-learn's cross-validation splits it like an array."""
        return (len(self),)

    @property
    def image_shape(self):
        """tuple: ``(H, W, C)``, the shape of one image."""
        return tuple(self._base.shape[1:])

    @property
    def n_channels(self):
        """int: C, the number of channels (bands) of each image."""
        return int(self._base.shape[-1])

    @property
    def is_memmap(self):
        """bool: whether the images are read from a memory-mapped file."""
        return isinstance(self._base, np.memmap)

    @property
    def coords(self):
        """`~astropy.coordinates.SkyCoord`: ICRS positions from ``ra`` and ``dec``.

        Columns with units are converted; columns without units are taken to be
        in degrees (the SkyServer convention).
        """
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        missing = [c for c in ("ra", "dec") if c not in self._catalog.colnames]
        if missing:
            raise ValueError(f"catalog needs columns 'ra' and 'dec' for coords; "
                             f"missing {missing}")

        def angle(name):
            col = self._catalog[name]
            if isinstance(col, u.Quantity):
                return col
            data = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
            return u.Quantity(data, col.unit if col.unit is not None else u.deg)

        return SkyCoord(ra=angle("ra"), dec=angle("dec"), frame="icrs")

    def __repr__(self):
        h, w, c = self.image_shape
        where = "memory-mapped" if self.is_memmap else "in memory"
        if self._index is not None and self._cache is None:
            where += ", lazy subset"
        names = self._catalog.colnames
        cols = ", ".join(names[:8]) + (f", ... ({len(names)} columns)"
                                       if len(names) > 8 else "")
        return (f"<GalaxySample: {len(self)} galaxies, images {h}x{w}x{c} "
                f"{self._base.dtype} ({where}); columns: {cols}>")

    def __reduce__(self):
        # Pickle a memory-mapped sample by reference to its file (so DataLoader
        # workers started with spawn/forkserver do not copy the images);
        # anything else pickles its images.
        ref = memmap_reference(self._base)
        if ref is None:
            return (_rebuild, (self.images, None, self._catalog, self._id_column))
        rows = ref[-1]
        if self._index is not None:
            rows = np.arange(rows[0], rows[0] + rows[1] * rows[2], rows[1])[self._index]
        return (_reopen, ref[:-1] + (rows, self._catalog, self._id_column))

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]  # sample[rows, ...], as numpy (and scikit-learn) index arrays
        pos = normalize_rows(key, len(self))
        catalog = self._catalog[pos]
        if self._index is None:
            base, index = self._base, pos
        else:
            base, index = self._base, self._index[pos]
        if isinstance(index, np.ndarray):
            run = as_run(index)
            if run is not None:
                index = run
        idc = self._id_column
        if isinstance(index, slice):
            return self._from_parts(base[index], None, catalog, idc)
        if self.is_memmap:
            return self._from_parts(base, index, catalog, idc)
        return self._from_parts(base[index], None, catalog, idc)

    def read_images(self, index=None):
        """Read some images of this sample into memory.

        Unlike ``sample.images[index]`` this never materialises a lazy subset of
        a memory-mapped sample: only the requested rows are read, so a training
        or prediction loop over ``read_images(batch)`` uses memory independent of
        ``len(sample)``.

        Parameters
        ----------
        index : slice, boolean mask or integer array, optional
            Rows of this sample (repeats allowed); all rows if omitted.

        Returns
        -------
        numpy.ndarray, shape (n, H, W, C)
            A copy in memory, in the requested order (the sample's dtype).

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from sfnet import GalaxySample
        >>> images = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
        >>> s = GalaxySample(images, Table({"objID": [1, 2, 3]}))
        >>> s.read_images([2, 0])[:, 0, 0, 0]
        array([24,  0], dtype=uint8)
        """
        n = len(self)
        rows = normalize_rows(slice(None) if index is None else index, n, unique=False)
        if isinstance(rows, slice):
            rows = np.arange(n)[rows]
        if self._cache is not None:
            return self._cache[rows]
        if self._index is not None:
            rows = self._index[rows]
        return read_rows(self._base, rows)

    def image_store(self):
        """The array holding this sample's images and the rows of it in use.

        For code that streams batches itself (a data loader): ``array[rows[i]]``
        is image ``i`` of this sample, and ``array`` is never a copy -- for a
        lazy subset of a memory-mapped sample it is the whole memory-mapped file.

        Returns
        -------
        array : numpy.ndarray or numpy.memmap, shape (M, H, W, C)
        rows : numpy.ndarray of int64, shape (N,)

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from sfnet import GalaxySample
        >>> s = GalaxySample(np.zeros((4, 2, 2, 3), np.uint8), Table({"objID": [1, 2, 3, 4]}))
        >>> array, rows = s.image_store()
        >>> array is s.images, rows.tolist()
        (True, [0, 1, 2, 3])
        """
        if self._index is None:
            return self._base, np.arange(self._base.shape[0], dtype=np.int64)
        return self._base, np.asarray(self._index, dtype=np.int64)

    # ------------------------------------------------------------ selections
    def select(self, target):
        """Keep the rows that pass a target's quality cuts.

        Parameters
        ----------
        target : str or list of str
            ``"metallicity"``, ``"bpt_lines"`` or catalog column names (see
            `sfnet.targets.get_target`).

        Returns
        -------
        GalaxySample
            The rows passing the cuts, with the target's derived columns (the
            ``log_*`` line fluxes for ``"bpt_lines"``) added to the catalog.
            The number kept is logged (logger ``sfnet.datasets.sample``).

        Raises
        ------
        ValueError
            If the catalog lacks a column the target needs.
        """
        tgt = get_target(target)
        catalog = tgt.prepare(self._catalog)
        keep = np.asarray(tgt.mask(catalog), dtype=bool)
        log.info("select(%r): kept %d of %d galaxies", tgt.name, int(keep.sum()), len(self))
        sub = self[keep]
        if catalog is not self._catalog:
            sub._catalog = catalog[keep]
        return sub

    def split(self, fraction=0.2, seed=0, method="random"):
        """Split into a training and a validation sample at random.

        Parameters
        ----------
        fraction : float
            Fraction of rows in the validation sample, strictly between 0 and 1.
        seed : int, `numpy.random.Generator` or None
            Seed of the shuffle; the same seed gives the same split.  With
            ``method="paper"`` it must be a non-negative int.
        method : {"random", "paper"}
            ``"random"`` (default): a NumPy permutation
            (``numpy.random.default_rng(seed)``); the validation sample gets
            ``round(fraction * len(self))`` rows.

            ``"paper"``: the split of the paper's fastai pipeline,
            ``RandomSplitter(valid_pct=fraction, seed=seed)``: a PyTorch
            permutation ``torch.randperm(n)`` drawn after seeding with ``seed``;
            its first ``int(fraction * n)`` entries are the validation rows, the
            rest the training rows.  Applied to the paper's table after
            ``select(target)`` (the rows passing the target's cuts, in file
            order), ``split(0.2, seed=256, method="paper")`` gives the
            validation galaxies of the released checkpoints.  Unlike fastai,
            which re-seeds PyTorch's global generator (and leaves it so), sfnet
            draws from a private `torch.Generator` seeded the same way -- the
            same permutation (checked by the tests) without touching the
            global random state.

        Returns
        -------
        train, valid : GalaxySample
            Disjoint samples covering all rows, each in the original row order
            (so memory-mapped images are read sequentially).  fastai lists
            its indices in permutation order; the sets of rows are the same.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from sfnet import GalaxySample
        >>> s = GalaxySample(np.zeros((10, 4, 4, 3), np.uint8),
        ...                  Table({"objID": np.arange(10)}))
        >>> train, valid = s.split(0.2, seed=256, method="paper")
        >>> len(train), len(valid)
        (8, 2)
        """
        if isinstance(fraction, (bool, np.bool_)) or not isinstance(
                fraction, (int, float, np.integer, np.floating)):
            raise TypeError(f"fraction must be a number in (0, 1), got {fraction!r}")
        fraction = float(fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
        check_choice(method, "method", SPLIT_METHODS)
        if method == "paper":
            train, valid = paper_split_positions(len(self), fraction, seed)
        else:
            train, valid = split_positions(len(self), fraction, seed)
        return self[train], self[valid]

    # ------------------------------------------------------------------- I/O
    def save(self, path, overwrite=False):
        """Write the sample to a directory (catalog.ecsv, images.npy, sample.json).

        ``sample.json`` records the ID column, so `load` restores
        `id_column`; string IDs are kept as strings by the ECSV catalog.

        The directory is written beside its final place and renamed into it,
        so readers never see a half-written sample; the images are streamed in
        chunks, so a memory-mapped sample never has to fit in memory.

        Parameters
        ----------
        path : str or path-like
            Directory to create.  An existing empty directory is fine.
        overwrite : bool
            Replace an existing saved sample at ``path``.  A non-empty directory
            that is not a saved sample is never replaced.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        FileExistsError
            If ``path`` holds a saved sample and ``overwrite`` is false, or holds
            anything else; if ``path`` is a file, the error is also a
            `NotADirectoryError` (and a `ValueError`).

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from astropy.table import Table
        >>> from sfnet import GalaxySample
        >>> s = GalaxySample(np.ones((2, 4, 4, 3), np.uint8),
        ...                  Table({"objID": [2**62 + 1, 2**62 + 2]}))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     s2 = GalaxySample.load(s.save(f"{tmp}/s"))
        ...     print(s2.is_memmap, s2.catalog["objID"][1] == 2**62 + 2)
        True True
        """
        return write_sample_dir(path, self._catalog, len(self), self.image_shape,
                                self._base.dtype, self.read_images, overwrite,
                                id_column=self._id_column)

    @classmethod
    def load(cls, path, mmap=True):
        """Read a sample written by `save`.

        Parameters
        ----------
        path : str or path-like
            The directory.
        mmap : bool
            Memory-map ``images.npy`` read-only (default) instead of reading it.

        Returns
        -------
        GalaxySample

        Raises
        ------
        FileNotFoundError
            If the directory or one of its files is missing (named).
        ValueError
            If the files disagree (lengths, shapes) or the format is unknown.
        """
        images, catalog, id_column = read_sample_dir(path, mmap, with_id_column=True)
        return cls(images, catalog, id_column=id_column)


# ---------------------------------------------------------------------------
# construction and unpickling
def _check_images(images):
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got shape {images.shape}")
    n, h, w, c = images.shape
    if h <= 5 and h < c and w == c:  # (N, C, H, W) with square images
        raise ValueError(f"images must have channels last, shape (N, H, W, C); got shape "
                         f"{images.shape} (channels first? use np.moveaxis(images, 1, -1))")
    if c < 1:
        raise ValueError(f"images must have at least one channel, got shape {images.shape}")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise TypeError(f"images must have dtype uint8 (0-255) or a float dtype, "
                        f"got {images.dtype}")
    return images


def _rebuild(images, index, catalog, id_column=DEFAULT_ID_COLUMN):
    return GalaxySample._from_parts(images, index, catalog, id_column)


def _reopen(filename, offset, shape, dtype, rows, catalog, id_column=DEFAULT_ID_COLUMN):
    """Unpickle a memory-mapped sample: map the file again, read-only."""
    base, index = open_reference(filename, offset, shape, dtype, rows)
    return GalaxySample._from_parts(base, index, catalog, id_column)
