"""What can go wrong with saved state, as values callers can tell apart."""

from __future__ import annotations


class CorruptState(Exception):
    """A snapshot or blob is damaged or incomplete; an older snapshot may still be good."""


class IncompatibleState(Exception):
    """The state was written by another moto or state format; reading it would give garbage."""
