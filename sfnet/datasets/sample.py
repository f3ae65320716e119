"""`GalaxySample`: galaxy image cutouts aligned row by row with a catalog.

A sample holds an ``(N, H, W, 3)`` ``uint8`` image array -- in memory or a
`numpy.memmap` -- and an `astropy.table.Table` with one row per image and at
least the 64-bit SDSS ``objID``.  A `pandas.DataFrame` is accepted as the
catalog too (converted to a Table, with units for the columns sfnet knows), and
`GalaxySample.to_pandas` hands the catalog back as a DataFrame.  Samples are
saved as a directory::

    sample/
        catalog.ecsv    the catalog (units, meta and int64 objIDs kept exactly)
        images.npy      the images, one .npy array (memory-mapped on load)
        sample.json     format version, N, image shape and dtype

so a 250,000-galaxy sample (~19 GB of 160 px RGB) never has to fit in RAM.

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

import json
import logging
import os
import shutil
import struct
import sys
import uuid
from pathlib import Path

import numpy as np

from ..targets import get_target

__all__ = ["GalaxySample"]

# pytest-doctestplus: these examples need the optional pandas.
__doctest_requires__ = {("GalaxySample", "GalaxySample.to_pandas"): ["pandas"]}

log = logging.getLogger(__name__)

#: Version of the on-disk layout written by `GalaxySample.save`.
FORMAT_VERSION = 1
_FORMAT_NAME = "sfnet.GalaxySample"
_CATALOG_FILE = "catalog.ecsv"
_IMAGES_FILE = "images.npy"
_MANIFEST_FILE = "sample.json"
#: Bytes of image data copied per chunk when streaming images to disk.
_CHUNK_BYTES = 64 * 2**20


class GalaxySample:
    """Galaxy images aligned row by row with an astropy catalog.

    Parameters
    ----------
    images : array-like, shape (N, H, W, 3), dtype uint8
        RGB cutouts, channels last.  A `numpy.ndarray` (including a
        `numpy.memmap`) is used as is, never copied; anything else goes
        through `numpy.asarray`.
    catalog : `~astropy.table.Table`, `~astropy.table.QTable` or `pandas.DataFrame`
        One row per image with at least an integer ``objID`` column (unique;
        64-bit SDSS identifiers are kept exactly; strings of digits, as read
        by ``pandas.read_csv(..., dtype=str)``, are converted exactly).  The
        sample keeps a shallow copy of a table (new columns added to the
        sample's catalog do not appear in yours; the data are shared).  A
        DataFrame is converted with `astropy.table.Table.from_pandas` (a named
        index, e.g. after ``set_index("objID")``, becomes a column; missing
        values become masked entries), and the columns sfnet knows (see
        `sfnet.catalog.COLUMNS`) get their units and descriptions with
        `sfnet.catalog.add_units`; units recorded by `to_pandas` in
        ``DataFrame.attrs["units"]`` are restored first.

    Raises
    ------
    TypeError
        If ``images`` is not ``uint8`` or ``catalog`` is not a Table or
        DataFrame.
    ValueError
        If ``images`` is not ``(N, H, W, 3)``, the lengths differ, or
        ``objID`` is missing, masked, not integer or not unique.

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

    def __init__(self, images, catalog):
        images = _check_images(images)
        catalog = _check_catalog(catalog)
        if len(catalog) != images.shape[0]:
            raise ValueError(
                f"images has {images.shape[0]} rows but catalog has {len(catalog)}; "
                "they must be aligned row by row")
        self._base = images
        self._index = None
        self._cache = None
        self._catalog = catalog

    @classmethod
    def _from_parts(cls, base, index, catalog):
        """A sample from already validated parts (no checks, no copies)."""
        self = cls.__new__(cls)
        self._base = base
        self._index = index
        self._cache = None
        self._catalog = catalog
        return self

    # ------------------------------------------------------------------ basics
    def __len__(self):
        return len(self._catalog)

    @property
    def catalog(self):
        """`~astropy.table.Table`: the catalog, one row per image."""
        return self._catalog

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
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            raise ImportError("GalaxySample.to_pandas needs pandas; install it with "
                              "'pip install sfnet[pandas]' or 'pip install pandas'") from exc
        catalog = self._catalog
        multidim = [name for name in catalog.colnames
                    if getattr(catalog[name], "ndim", 1) > 1]
        if multidim:
            raise ValueError(f"cannot convert the catalog to pandas: column(s) {multidim} "
                             "are multidimensional; remove or flatten them first")
        if index is True:
            index = None  # astropy: the primary key, if any
        elif index is not False and index not in catalog.colnames:
            raise ValueError(f"index must be False, True or a column name; "
                             f"{index!r} is not in the catalog")
        units = {name: catalog[name].unit.to_string() for name in catalog.colnames
                 if getattr(catalog[name], "unit", None) is not None}
        try:
            df = catalog.to_pandas(index=index)
        except ValueError as exc:
            raise ValueError(f"cannot convert the catalog to pandas: {exc}") from exc
        df.attrs["units"] = units
        return df

    @property
    def images(self):
        """`numpy.ndarray`, shape (N, H, W, 3), uint8: the images.

        A `numpy.memmap` for a loaded sample and for slices of it.  For a lazy
        subset of a memory-mapped sample (see the module notes) the first access
        reads the subset into memory; use `read_images` to read batches instead.
        """
        if self._index is None:
            return self._base
        if self._cache is None:
            self._cache = self._read_rows(self._index)
        return self._cache

    @property
    def image_shape(self):
        """tuple: ``(H, W, 3)``, the shape of one image."""
        return tuple(self._base.shape[1:])

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
        ref = _memmap_reference(self._base)
        if ref is None:
            return (_rebuild, (self.images, None, self._catalog))
        rows = ref[-1]
        if self._index is not None:
            rows = np.arange(rows[0], rows[0] + rows[1] * rows[2], rows[1])[self._index]
        return (_reopen, ref[:-1] + (rows, self._catalog))

    # ---------------------------------------------------------------- indexing
    def _positions(self, key):
        """Normalise an index into a slice or a 1-D intp array of unique rows."""
        n = len(self)
        if isinstance(key, slice):
            return slice(*key.indices(n))
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("a sample cannot be indexed with a single bool; "
                            "use a boolean mask of length len(sample)")
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for a sample of {n}")
            i %= n
            return slice(i, i + 1)
        if isinstance(key, (str, tuple)):
            raise TypeError(
                f"a sample is indexed by rows (slice, boolean mask or integer "
                f"indices), not {key!r}; use sample.catalog[...] for columns")
        if np.ma.isMaskedArray(key):
            key = np.ma.filled(key, False if key.dtype == bool else -n - 1)
        arr = np.asarray(key)
        if arr.ndim != 1:
            raise IndexError(f"row index must be one-dimensional, got shape {arr.shape}")
        if arr.dtype == bool:
            if arr.shape[0] != n:
                raise IndexError(f"boolean mask has length {arr.shape[0]} but the "
                                 f"sample has {n} rows")
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.empty(0, dtype=np.intp)
        if arr.dtype.kind not in "iu":
            raise IndexError(f"row index must be integers or booleans, got dtype "
                             f"{arr.dtype}")
        if arr.min() < -n or arr.max() >= n:
            raise IndexError(f"row index out of range for a sample of {n}")
        arr = np.where(arr < 0, arr + n, arr).astype(np.intp)
        if np.unique(arr).size != arr.size:
            raise ValueError("row index repeats rows; a sample's objIDs must stay "
                             "unique (index sample.images directly to resample)")
        return arr

    def __getitem__(self, key):
        pos = self._positions(key)
        catalog = self._catalog[pos]
        if self._index is None:
            base, index = self._base, pos
        else:
            base, index = self._base, self._index[pos]
        if isinstance(index, np.ndarray):
            run = _as_run(index)
            if run is not None:
                index = run
        if isinstance(index, slice):
            return self._from_parts(base[index], None, catalog)
        if self.is_memmap:
            return self._from_parts(base, index, catalog)
        return self._from_parts(base[index], None, catalog)

    def _read_rows(self, rows):
        """Rows (absolute positions in the base array) as an in-memory array.

        Reads in ascending order (friendly to memory-mapped files) and returns
        the rows in the requested order.
        """
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size > 1 and np.any(rows[1:] < rows[:-1]):
            order = np.argsort(rows, kind="stable")
            out = np.empty((rows.size,) + self.image_shape, dtype=self._base.dtype)
            out[order] = self._base[rows[order]]
            return out
        return np.asarray(self._base[rows])

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
        numpy.ndarray, shape (n, H, W, 3), uint8
            A copy in memory, in the requested order.

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
        if index is None:
            index = slice(None)
        if isinstance(index, slice):
            rows = np.arange(n)[index]
        else:
            rows = np.asarray(index)
            if rows.dtype == bool:
                if rows.shape != (n,):
                    raise IndexError(f"boolean mask has shape {rows.shape}, expected ({n},)")
                rows = np.flatnonzero(rows)
            elif rows.size == 0:
                rows = rows.astype(np.intp)
            elif rows.dtype.kind not in "iu":
                raise IndexError(f"index must be integers or booleans, got {rows.dtype}")
            rows = rows.reshape(-1)
            if rows.size and (rows.min() < -n or rows.max() >= n):
                raise IndexError(f"index out of range for a sample of {n}")
            rows = np.where(rows < 0, rows + n, rows)
        if self._cache is not None:
            return self._cache[rows]
        if self._index is not None:
            rows = self._index[rows]
        return self._read_rows(rows)

    def image_store(self):
        """The array holding this sample's images and the rows of it in use.

        For code that streams batches itself (a data loader): ``array[rows[i]]``
        is image ``i`` of this sample, and ``array`` is never a copy -- for a
        lazy subset of a memory-mapped sample it is the whole memory-mapped file.

        Returns
        -------
        array : numpy.ndarray or numpy.memmap, shape (M, H, W, 3)
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
        # imported here: only this method needs them
        import torch

        from .._validation import check_choice

        if isinstance(fraction, (bool, np.bool_)) or not isinstance(
                fraction, (int, float, np.integer, np.floating)):
            raise TypeError(f"fraction must be a number in (0, 1), got {fraction!r}")
        fraction = float(fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
        check_choice(method, "method", ("random", "paper"))
        n = len(self)
        if method == "paper":
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"seed must be an int with method='paper', got {seed!r}")
            if seed < 0:
                raise ValueError(f"seed must be non-negative with method='paper', got {seed}")
            generator = torch.Generator().manual_seed(int(seed))
            perm = torch.randperm(n, generator=generator).numpy()
            n_valid = int(fraction * n)
        else:
            perm = np.random.default_rng(seed).permutation(n)
            n_valid = round(fraction * n)
        valid = np.sort(perm[:n_valid])
        train = np.sort(perm[n_valid:])
        return self[train], self[valid]

    # ------------------------------------------------------------------- I/O
    def save(self, path, overwrite=False):
        """Write the sample to a directory (catalog.ecsv, images.npy, sample.json).

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
            anything else.

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
        path = Path(path)
        _check_target_dir(path, overwrite)

        def fill(tmp):
            _write_catalog(tmp / _CATALOG_FILE, self._catalog)
            with open(tmp / _IMAGES_FILE, "wb") as fh:
                writer = _NpyWriter(fh, len(self), self.image_shape, self._base.dtype)
                per_chunk = max(1, _CHUNK_BYTES // max(1, writer.item_bytes))
                for start in range(0, len(self), per_chunk):
                    writer.write(self.read_images(slice(start, start + per_chunk)))
                writer.close()
                fh.flush()
                os.fsync(fh.fileno())
            _write_manifest(tmp, len(self), self.image_shape, self._base.dtype,
                            self._catalog)

        _build_dir(path, fill, replace=True)
        return path

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
        from astropy.table import QTable, Table

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no saved GalaxySample directory at {path}")
        manifest = _read_manifest(path)
        for name in (_CATALOG_FILE, _IMAGES_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"saved sample {path} has no {name} "
                                        f"(missing file {path / name})")
        table_cls = QTable if manifest.get("table_class") == "QTable" else Table
        catalog = table_cls.read(path / _CATALOG_FILE, format="ascii.ecsv")
        try:
            images = np.load(path / _IMAGES_FILE, mmap_mode="r" if mmap else None,
                             allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"cannot read {path / _IMAGES_FILE}: {exc}") from exc
        expected = (int(manifest["n"]),) + tuple(int(s) for s in manifest["image_shape"])
        if images.shape != expected:
            raise ValueError(f"{path / _IMAGES_FILE} has shape {images.shape} but "
                             f"{path / _MANIFEST_FILE} says {expected}")
        if len(catalog) != images.shape[0]:
            raise ValueError(f"{path / _CATALOG_FILE} has {len(catalog)} rows but "
                             f"{path / _IMAGES_FILE} has {images.shape[0]} images")
        return cls(images, catalog)


# ---------------------------------------------------------------------------
# validation helpers
def _check_images(images):
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, 3), got shape {images.shape}")
    if images.shape[-1] != 3:
        hint = (" (channels first? use np.moveaxis(images, 1, -1))"
                if images.shape[1] == 3 else "")
        raise ValueError(f"images must have 3 colour channels last, shape (N, H, W, 3); "
                         f"got shape {images.shape}{hint}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must have dtype uint8, got {images.dtype}")
    return images


def _is_dataframe(obj):
    # pandas is optional: an object can only be a DataFrame if pandas is imported.
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _table_from_pandas(df):
    """A `~astropy.table.Table` from a DataFrame, with units where they are known."""
    from astropy import units as u
    from astropy.table import Table

    from ..catalog import add_units

    names = list(df.columns) + [n for n in df.index.names if n is not None]
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"catalog (a DataFrame) must have string column names; got {bad!r}")
    # A named index (``df.set_index("objID")``) is data; a default RangeIndex is not.
    keep_index = any(n is not None for n in df.index.names)
    try:
        table = Table.from_pandas(df, index=keep_index)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"catalog (a DataFrame) cannot be converted to an astropy "
                        f"Table: {exc}") from exc
    units = df.attrs.get("units") if isinstance(df.attrs, dict) else None
    for name, unit in (units or {}).items():
        if name in table.colnames and table[name].dtype.kind in "fiuc":
            try:
                table[name].unit = u.Unit(unit)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"catalog (a DataFrame) records unit {unit!r} for column "
                                 f"{name!r}, which astropy cannot parse: {exc}") from exc
    return add_units(table, descriptions=True)


def _exact_int64(data):
    """Strings of digits or Python ints as exact int64, or None if they are not."""
    if data.dtype.kind not in "OUS":
        return None
    if data.dtype.kind == "O" and not all(
            isinstance(v, (int, np.integer, str)) and not isinstance(v, bool)
            for v in data):
        return None  # floats among them would be truncated silently
    try:
        return data.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        return None


def _check_catalog(catalog):
    from astropy.table import Table

    if _is_dataframe(catalog):
        catalog = _table_from_pandas(catalog)
    elif isinstance(catalog, Table):
        catalog = catalog.copy(copy_data=False)
    else:
        raise TypeError(f"catalog must be an astropy Table or QTable (or a pandas "
                        f"DataFrame), got {type(catalog).__name__}")
    if "objID" not in catalog.colnames:
        raise ValueError(f"catalog must have an 'objID' column; it has {catalog.colnames}")
    col = catalog["objID"]
    if getattr(col, "mask", None) is not None and np.any(col.mask):
        raise ValueError(f"catalog column 'objID' has {int(np.sum(col.mask))} masked value(s)")
    data = np.asarray(col)
    if data.ndim != 1:
        raise ValueError(f"catalog column 'objID' must be one-dimensional, got shape "
                         f"{data.shape}")
    if data.dtype.kind in "OUS":
        exact = _exact_int64(data)
        if exact is None:
            raise TypeError(f"catalog column 'objID' must be integer (or strings of "
                            f"digits), got dtype {data.dtype} with other values")
        catalog.replace_column("objID", exact)
        col, data = catalog["objID"], exact
    if data.dtype.kind not in "iu":
        raise TypeError(f"catalog column 'objID' must be integer (64-bit SDSS ids "
                        f"lose digits as float), got dtype {data.dtype}")
    if data.dtype != np.int64:
        if data.dtype == np.uint64 and data.size and data.max() > np.iinfo(np.int64).max:
            raise ValueError("catalog column 'objID' has values beyond the int64 range")
        catalog.replace_column("objID", col.astype(np.int64))
        data = np.asarray(catalog["objID"])
    if data.size > 1:
        s = np.sort(data)
        dup = np.unique(s[1:][s[1:] == s[:-1]])
        if dup.size:
            shown = ", ".join(str(int(d)) for d in dup[:5])
            raise ValueError(f"catalog column 'objID' has {dup.size} duplicated "
                             f"value(s), e.g. {shown}")
    return catalog


def _rebuild(images, index, catalog):
    return GalaxySample._from_parts(images, index, catalog)


def _reopen(filename, offset, shape, dtype, rows, catalog):
    """Unpickle a memory-mapped sample: map the file again, read-only."""
    mm = np.memmap(filename, mode="r", dtype=np.dtype(dtype), shape=tuple(shape),
                   offset=offset)
    if isinstance(rows, tuple):
        start, step, n = rows
        rows = np.arange(start, start + step * n, step) if step < 0 else \
            slice(start, start + step * n, step)
    if isinstance(rows, np.ndarray):
        run = _as_run(rows)
        rows = rows if run is None else run
    if isinstance(rows, slice):
        return GalaxySample._from_parts(mm[rows], None, catalog)
    return GalaxySample._from_parts(mm, rows, catalog)


def _memmap_reference(arr):
    """``(filename, offset, shape, dtype, (start, step, n))`` locating the rows of a
    memmap (or a row slice of one) in its file, or None if that is not possible."""
    import mmap

    if not isinstance(arr, np.memmap):
        return None
    root = arr
    while isinstance(root.base, np.memmap):
        root = root.base
    if (not isinstance(root.base, mmap.mmap) or not root.filename
            or root.mode not in ("r", "r+") or arr.shape[1:] != root.shape[1:]
            or arr.strides[1:] != root.strides[1:] or root.shape[0] == 0):
        return None
    s0 = root.strides[0]
    delta = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if s0 <= 0 or delta % s0 or arr.strides[0] % s0:
        return None
    step = arr.strides[0] // s0 if arr.shape[0] > 1 else 1
    return (str(root.filename), int(root.offset), tuple(root.shape), root.dtype.str,
            (delta // s0, step, arr.shape[0]))


def read_file_rows(arr, rows):
    """Rows of a file-backed memmap read with positioned reads, not through the map.

    Reading through a `numpy.memmap` maps every page it touches into the
    process, where it counts as resident memory until the kernel reclaims it:
    an epoch over a large sample would show a resident set as large as the
    file.  Reading the same bytes with ``preadv`` goes through the page cache
    only, so the memory of a streamed epoch stays that of a few batches,
    whatever the size of the sample.  Runs of consecutive rows are read with
    one call each.

    Parameters
    ----------
    arr : numpy.memmap
        A C-ordered memmap, or a row slice of one.
    rows : array of int
        Rows of ``arr`` in any order (ascending order reads fastest).

    Returns
    -------
    numpy.ndarray or None
        A new writable array ``arr[rows]``, or None when ``arr`` is not a
        file-backed C-ordered memmap or the platform lacks ``os.preadv``
        (then index ``arr`` instead).
    """
    if not hasattr(os, "preadv"):
        return None
    ref = _memmap_reference(arr)
    if ref is None or not arr[:1].flags.c_contiguous:
        return None
    filename, offset, shape, dtype, (start, step, n) = ref
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"rows out of range for {n} images")
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    out = np.empty((rows.size,) + tuple(arr.shape[1:]), dtype=arr.dtype)
    if rows.size == 0:
        return out
    file_rows = start + rows * step
    buf = memoryview(out.reshape(rows.size, -1).view(np.uint8)).cast("B")
    # split wherever the next file row is not the one right after
    breaks = np.flatnonzero(np.diff(file_rows) != 1) + 1
    fd = os.open(filename, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, rows.size]):
            pos = offset + int(file_rows[a]) * row_bytes
            view = buf[int(a) * row_bytes:int(b) * row_bytes]
            while len(view):
                got = os.preadv(fd, [view], pos)
                if got <= 0:
                    raise OSError(f"{filename} ended before row {int(file_rows[a])} "
                                  "(was the file truncated?)")
                view, pos = view[got:], pos + got
    finally:
        os.close(fd)
    return out


def _as_run(index):
    """``slice(a, b)`` if ``index`` is the ascending run ``a, a+1, ..., b-1``."""
    if index.size == 0:
        return slice(0, 0)
    a = int(index[0])
    if int(index[-1]) - a + 1 == index.size and np.all(np.diff(index) == 1):
        return slice(a, a + index.size)
    return None


# ---------------------------------------------------------------------------
# on-disk helpers (shared with sfnet.datasets.folder)
class _NpyWriter:
    """Stream rows into a version-1.0 ``.npy`` file opened for writing.

    The header is written for ``n_max`` rows and padded; `close` rewrites it in
    place with the number of rows actually written (never more than ``n_max``),
    padded to the same length, so a writer that drops rows needs no second
    pass over the data.
    """

    def __init__(self, fh, n_max, item_shape, dtype):
        self._fh = fh
        self._start = fh.tell()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.dtype = np.dtype(dtype)
        self.item_bytes = int(np.prod(self.item_shape, dtype=np.int64)) * self.dtype.itemsize
        self.n_max = int(n_max)
        self.n = 0
        header = self._header(self.n_max)
        self._header_len = len(header)
        fh.write(header)

    def _header(self, n, total=None):
        from numpy.lib import format as npformat

        d = (f"{{'descr': {npformat.dtype_to_descr(self.dtype)!r}, 'fortran_order': False, "
             f"'shape': {(n,) + self.item_shape!r}, }}")
        if total is None:
            total = -(-(10 + len(d) + 1) // 64) * 64
        body = d + " " * (total - 10 - len(d) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")

    def write(self, rows):
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.item_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match {self.item_shape}")
        if self.n + rows.shape[0] > self.n_max:
            raise ValueError("more rows than the header allows")
        self._fh.write(memoryview(rows.reshape(-1)).cast("B"))
        self.n += rows.shape[0]

    def close(self):
        """Fix the header to the number of rows written."""
        if self.n != self.n_max:
            end = self._fh.tell()
            self._fh.seek(self._start)
            self._fh.write(self._header(self.n, total=self._header_len))
            self._fh.seek(end)


def _write_catalog(path, catalog):
    catalog.write(path, format="ascii.ecsv", overwrite=True)


def _write_manifest(directory, n, image_shape, dtype, catalog, extra=None):
    from astropy.table import QTable

    manifest = {
        "format": _FORMAT_NAME,
        "version": FORMAT_VERSION,
        "n": int(n),
        "image_shape": [int(s) for s in image_shape],
        "dtype": str(np.dtype(dtype)),
        "catalog": _CATALOG_FILE,
        "images": _IMAGES_FILE,
        "table_class": "QTable" if isinstance(catalog, QTable) else "Table",
    }
    if extra:
        manifest.update(extra)
    with open(Path(directory) / _MANIFEST_FILE, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


def _read_manifest(path):
    file = Path(path) / _MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(f"saved sample {path} has no {_MANIFEST_FILE} "
                                f"(missing file {file})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
        raise ValueError(f"{file} does not describe a saved GalaxySample")
    if int(manifest.get("version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{file} has format version {manifest['version']}; this sfnet "
                         f"reads up to version {FORMAT_VERSION} (upgrade sfnet)")
    for key in ("n", "image_shape"):
        if key not in manifest:
            raise ValueError(f"{file} lacks the {key!r} entry")
    return manifest


def _is_sample_dir(path):
    try:
        _read_manifest(path)
    except (OSError, ValueError):
        return False
    return True


def _check_target_dir(path, overwrite):
    """Refuse to write over anything but an empty dir or (with overwrite) a sample."""
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    if not any(path.iterdir()):
        return
    if _is_sample_dir(path):
        if not overwrite:
            raise FileExistsError(f"a saved sample already exists at {path}; "
                                  "pass overwrite=True to replace it")
        return
    raise FileExistsError(f"{path} is a non-empty directory that is not a saved "
                          "sample; refusing to replace it")


def _build_dir(path, fill, replace):
    """Create directory ``path`` atomically: ``fill(tmp)`` then rename.

    If ``path`` already exists it is replaced when ``replace`` is true (the
    caller has checked it may be), otherwise it is left alone and ``False`` is
    returned (someone else built it first).  Returns ``True`` when our directory
    is now at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        fill(tmp)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        try:
            os.rename(tmp, path)
            return True
        except OSError:
            if not path.exists():
                raise
            if not replace:
                shutil.rmtree(tmp)
                return False
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
