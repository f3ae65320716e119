"""Declarative parameter constraints (scikit-learn style) for sfnet's estimators.

Private module.  An estimator lists, per parameter, the constraints its value
must meet (``_parameter_constraints``); `validate` checks them in that order
and returns the *resolved* values (a device string becomes a `torch.device`, a
target name a `~sfnet.targets.Target`, ...).  A constraint is a callable
``constraint(name, value, resolved) -> value``: it raises `ValueError` or
`TypeError` naming the parameter, and may read parameters resolved before it
(``resolved``) for checks across parameters.
"""

import math

import numpy as np

__all__ = ["Integer", "Real", "OneOf", "AtMost", "Resolve", "validate"]


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


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Integer:
    """An integer (Python or NumPy, not bool) ``>= minimum``, or None if ``allow_none``."""

    def __init__(self, minimum, *, allow_none=False):
        self.minimum, self.allow_none = minimum, allow_none

    def __call__(self, name, value, resolved):
        if value is None and self.allow_none:
            return value
        if not _is_int(value) or value < self.minimum:
            raise ValueError(f"{name} must be an integer >= {self.minimum}, got {value!r}")
        return value


class Real:
    """A finite int or float (not bool) in ``[low, high)``; ``low`` excluded if ``open_low``.

    ``wording`` describes the range in the error message (default ``"in [low, high)"``).
    """

    def __init__(self, low, high=math.inf, *, open_low=False, wording=None):
        self.low, self.high, self.open_low = low, high, open_low
        self.wording = wording or f"in [{low}, {high})"

    def __call__(self, name, value, resolved):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and self.low <= value < self.high
              and not (self.open_low and value == self.low))
        if not ok:
            raise ValueError(f"{name} must be {self.wording}, got {value!r}")
        return value


class OneOf:
    """One of ``choices`` (any container, read when checked, so a registry may grow).

    ``message`` is formatted with ``name``, ``value`` and ``choices`` (sorted when
    the choices are strings).
    """

    def __init__(self, choices, message="{name} must be one of {choices}, got {value!r}"):
        self.choices, self.message = choices, message

    def __call__(self, name, value, resolved):
        if value not in self.choices:
            choices = self.choices
            if all(isinstance(c, str) for c in choices):
                choices = sorted(choices)
            raise ValueError(self.message.format(name=name, value=value, choices=choices))
        return value


class AtMost:
    """Not larger than parameter ``other`` (checked only when both are set)."""

    def __init__(self, other):
        self.other = other

    def __call__(self, name, value, resolved):
        other = resolved[self.other]
        if other and value and value > other:
            raise ValueError(f"{name}={value} exceeds {self.other}={other}")
        return value


class Resolve:
    """The value converted by ``function(value, resolved)``, which raises on bad values."""

    def __init__(self, function):
        self.function = function

    def __call__(self, name, value, resolved):
        return self.function(value, resolved)
