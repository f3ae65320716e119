"""Declarative parameter constraints (scikit-learn style) for sfnet's estimators.

Private module.  An estimator lists, per parameter, the constraints its value
must meet (``_parameter_constraints``); `validate` checks them in that order
and returns the *resolved* values (a device string becomes a `torch.device`, a
target name a `~sfnet.targets.Target`, ...).  A constraint is a callable
``constraint(name, value, resolved) -> value``: it raises `ValueError` or
`TypeError` naming the parameter (through the shared checks of
`sfnet._validation`), and may read the parameters resolved before it
(``resolved``) for checks across parameters.
"""

import difflib

import numpy as np

from ._validation import check_choice, check_float, check_int

__all__ = ["Integer", "Real", "Choice", "RandomState", "Resolve", "validate", "closest",
           "StrictSetParams"]


class StrictSetParams:
    """Mixin (before scikit-learn's ``BaseEstimator``): `set_params` refuses unknown
    names with a `ValueError` that lists the valid ones."""

    def set_params(self, **params):
        """Set parameters (scikit-learn convention); unknown names raise `ValueError`."""
        valid = self._get_param_names()
        for key in params:
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; "
                                 f"valid parameters: {valid}")
        return super().set_params(**params)


def validate(constraints, params):
    """Check ``params`` against ``constraints`` in order; return the resolved values.

    Parameters
    ----------
    constraints : dict
        Parameter name -> list of constraints (an empty list: anything goes).
    params : dict
        Parameter name -> value; every key of ``constraints`` must be present.

    Returns
    -------
    dict
        Parameter name -> resolved value, in the order of ``constraints``.
    """
    resolved = {}
    for name, checks in constraints.items():
        value = params[name]
        for check in checks:
            value = check(name, value, resolved)
        resolved[name] = value
    return resolved


class Integer:
    """An integer (NumPy integers included) ``>= minimum``, or None if ``allow_none``.

    Bools, floats and strings are a `ValueError`, other objects a `TypeError`.
    """

    def __init__(self, minimum, *, allow_none=False):
        self.minimum, self.allow_none = minimum, allow_none

    def __call__(self, name, value, resolved):
        if value is None and self.allow_none:
            return None
        return check_int(value, name, self.minimum, text_is_value_error=True)


class Real:
    """A finite real number ``>= minimum`` (``> minimum`` if ``strict_min``), ``< below``."""

    def __init__(self, minimum, *, strict_min=False, below=None):
        self.minimum, self.strict_min, self.below = minimum, strict_min, below

    def __call__(self, name, value, resolved):
        value = check_float(value, name, minimum=self.minimum, strict_min=self.strict_min,
                            text_is_value_error=True)
        if self.below is not None and not value < self.below:
            raise ValueError(f"{name} must be < {self.below}, got {value}")
        return value


class Choice:
    """One of ``choices`` (read when checked, so a registry such as a dict may grow).

    ``message``, if given, replaces the standard one; it is formatted with
    ``name``, ``value`` and ``choices`` (sorted).  A misspelt string gets the
    closest choice suggested (``did you mean 'adamw'?``, see `closest`).
    """

    def __init__(self, choices, message=None):
        self.choices, self.message = choices, message

    def __call__(self, name, value, resolved):
        try:
            return check_choice(value, name, self.choices)
        except ValueError as exc:
            text = str(exc) if self.message is None else self.message.format(
                name=name, value=value, choices=sorted(self.choices, key=str))
            guess = closest(value, self.choices)
            if guess is not None:
                text += f"; did you mean {guess!r}?"
            raise ValueError(text) from None


def closest(value, choices):
    """The string choice most like the string ``value`` (`difflib`), or None if none is close."""
    if not isinstance(value, str):
        return None
    words = [c for c in choices if isinstance(c, str)]
    match = difflib.get_close_matches(value, words, n=1, cutoff=0.6)
    if not match:  # case slips ("ResNet18") are close too
        lower = {w.lower(): w for w in words}
        match = difflib.get_close_matches(value.lower(), list(lower), n=1, cutoff=0.6)
        match = [lower[m] for m in match]
    return match[0] if match else None


class RandomState:
    """A seed as scikit-learn's ``random_state``: None, an integer >= 0, or a NumPy generator.

    The value is kept as given (a `numpy.random.Generator` or
    `numpy.random.RandomState` draws the seed when the estimator needs one);
    anything else is a `ValueError` (text, floats, bools) or `TypeError`.
    """

    def __call__(self, name, value, resolved):
        if value is None or isinstance(value, (np.random.Generator, np.random.RandomState)):
            return value
        try:
            return check_int(value, name, 0, text_is_value_error=True)
        except TypeError:
            raise TypeError(f"{name} must be None, an integer >= 0 or a "
                            f"numpy.random.Generator, got {value!r}") from None


class Resolve:
    """The value converted by ``function(value, resolved)``, which raises on bad values."""

    def __init__(self, function):
        self.function = function

    def __call__(self, name, value, resolved):
        return self.function(value, resolved)
