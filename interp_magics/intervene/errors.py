"""What an intervention raises and warns about."""

from __future__ import annotations

from ..core.errors import CaptureError


class InterventionError(CaptureError):
    """An edit that cannot be applied: unknown site, wrong shape or dtype, a head or unit out of
    range, a bad edit line. Raised before any hook is installed whenever the model alone can
    tell; the message says what to fix."""


class NothingEditedWarning(UserWarning):
    """The model ran inside an intervention, but some edit never touched an activation (its
    positions never occurred, or ``during`` excluded every forward that ran)."""
