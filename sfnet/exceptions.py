"""Exceptions and warnings raised by sfnet."""

import sklearn.exceptions

__all__ = ["NotFittedError", "ImageReadError", "SkyServerError", "SfnetWarning",
           "DataDroppedWarning"]


class NotFittedError(sklearn.exceptions.NotFittedError):
    """Raised when a model is used before :meth:`~sfnet.SparseFeatureNet.fit`.

    Subclasses scikit-learn's `sklearn.exceptions.NotFittedError`, so
    ``except sklearn.exceptions.NotFittedError`` catches it, and through it
    both `ValueError` and `AttributeError`.
    """


class ImageReadError(OSError):
    """An image file could not be read or decoded.

    Parameters
    ----------
    path : str or path-like
        The offending file.
    objid : int, optional
        The galaxy's SDSS ``objID``.
    reason : str, optional
        What went wrong.
    """

    def __init__(self, path, objid=None, reason=""):
        self.path = str(path)
        self.objid = objid
        self.reason = str(reason)
        who = f" (objID {objid})" if objid is not None else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"cannot read image {self.path}{who}{why}")


class SfnetWarning(UserWarning):
    """Base class for warnings issued by sfnet."""


class DataDroppedWarning(SfnetWarning):
    """Rows were dropped from a sample (missing images, failed quality cuts)."""


class SkyServerError(RuntimeError):
    """SkyServer answered with something other than the expected table.

    Raised for an HTML error page (for example an SQL error or an overloaded
    server), an empty or garbled body, a table lacking expected columns, an
    identifier that is not an exact 64-bit integer, or a query that still
    fails after all retries.
    """
