"""Known findings: suite tests that this repository's own backends fail today, and why.

Each entry names a real bug the strengthened suite exposed in a backend of this
repository (written up in the project's notes with its owner). While it stands,
the test is marked as an expected failure *for that backend only* (non-strict:
a fixed backend shows XPASS, and the entry should then be deleted). A third-party
backend is never matched: the keys are this repository's backend names.
"""

from __future__ import annotations

import attrs

__all__ = ["FINDINGS", "Finding", "finding_for"]


@attrs.frozen
class Finding:
    """One bug: its label, the backends it is in (a ``Backend.name``, or the dotted path of
    the plugin's class or a base class of it), the tests it fails."""

    label: str
    text: str
    backends: tuple[str, ...]
    tests: tuple[str, ...]
    run: bool = True
    """False: skip rather than run and expect failure (a failing model shrinks for minutes)."""


FINDINGS: tuple[Finding, ...] = ()
"""None today: every backend of this repository keeps every promise the suite checks."""


def finding_for(backend: str, plugin: object, test: str) -> Finding | None:
    """The finding that test ``Class::name`` is known to fail for ``backend`` (its name)
    over ``plugin`` (its plugin object)."""
    names = {backend, *(f"{c.__module__}.{c.__qualname__}" for c in type(plugin).__mro__)}
    for finding in FINDINGS:
        if test in finding.tests and names.intersection(finding.backends):
            return finding
    return None
