"""The conformance suite's test classes, collected beside an author's conftest."""

from __future__ import annotations

from conveyor.testing.suite_ack import TestAck, TestResumeAbandoned
from conveyor.testing.suite_backend import TestBackend
from conveyor.testing.suite_sink import TestPush, TestPushWeak

__all__ = [
    "TestAck",
    "TestBackend",
    "TestPush",
    "TestPushWeak",
    "TestResumeAbandoned",
]
