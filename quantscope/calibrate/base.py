"""The calibrator protocol and the registry of calibrators by name.

A calibrator (scikit-learn style) stores its constructor arguments, learns from data with
``update(x)`` (streaming: call it once per batch, memory stays bounded), combines with another
calibrator's state with ``merge(other)`` (so calibration can be split across workers), and hands
back :class:`quantscope.QParams` with ``qparams()``. Learned attributes end in ``_``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..core.spec import QParams, QuantSpec, as_spec


class NotFittedError(ValueError, AttributeError):
    """A calibrator was asked for parameters before it saw any data."""


@runtime_checkable
class Calibrator(Protocol):
    spec: QuantSpec

    @property
    def is_fitted(self) -> bool: ...

    def update(self, x: Any) -> Calibrator: ...

    def merge(self, other: Calibrator) -> Calibrator: ...

    def qparams(self) -> QParams: ...


CALIBRATORS: dict[str, type] = {}


def register_calibrator(name: str, cls: type) -> None:
    """Make ``cls`` available as ``calibrator=name`` (``cls(spec)`` must build an unfitted calibrator)."""
    if not isinstance(name, str) or not name:
        raise ValueError("calibrator name must be a non-empty string")
    CALIBRATORS[name] = cls


def resolve_calibrator(calibrator: Any, spec: QuantSpec) -> Calibrator:
    """A calibrator object for ``calibrator`` (None -> 'minmax', a registered name, or an object)."""
    spec = as_spec(spec)
    if calibrator is None:
        calibrator = "minmax"
    if isinstance(calibrator, str):
        if calibrator not in CALIBRATORS:
            raise ValueError(f"unknown calibrator {calibrator!r}; known: {sorted(CALIBRATORS)}")
        return CALIBRATORS[calibrator](spec)
    if not isinstance(calibrator, Calibrator):
        raise TypeError(f"calibrator must be a name ({sorted(CALIBRATORS)}) or an object with update/merge/"
                        f"qparams, got {type(calibrator).__name__}")
    if as_spec(calibrator.spec) != spec:
        raise ValueError(f"the calibrator was built for spec {calibrator.spec} but is used with {spec}; "
                         f"build it with the same spec")
    return calibrator
