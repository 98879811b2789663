"""The conformance suite's test classes, collected beside an author's conftest."""

from __future__ import annotations

from conveyor.testing import model as _model
from conveyor.testing.suite_ack import TestAck, TestResumeAbandoned
from conveyor.testing.suite_backend import TestBackend
from conveyor.testing.suite_expose import (
    TestListAllTasks,
    TestListQueues,
    TestListTasks,
    TestListWorkers,
    TestMetrics,
)
from conveyor.testing.suite_manage import (
    TestFetchById,
    TestRegisterWorker,
    TestReschedule,
    TestResumeById,
    TestUpdate,
    TestVacuum,
)
from conveyor.testing.suite_migrate import TestMigrate
from conveyor.testing.suite_order import TestOrder
from conveyor.testing.suite_shared import TestGetQueue, TestMakeShared, TestReopen
from conveyor.testing.suite_sink import TestPush, TestPushWeak
from conveyor.testing.suite_wait import TestCheckStatus, TestWaitFor
from conveyor.testing.suite_worker import TestWorkerUse

__all__ = [
    "TestAck",
    "TestBackend",
    "TestCheckStatus",
    "TestFetchById",
    "TestGetQueue",
    "TestListAllTasks",
    "TestListQueues",
    "TestListTasks",
    "TestListWorkers",
    "TestMakeShared",
    "TestMetrics",
    "TestMigrate",
    "TestModel",
    "TestOrder",
    "TestPush",
    "TestPushWeak",
    "TestRegisterWorker",
    "TestReopen",
    "TestReschedule",
    "TestResumeAbandoned",
    "TestResumeById",
    "TestUpdate",
    "TestVacuum",
    "TestWaitFor",
    "TestWorkerUse",
]

# Bound last so it is collected last: the slowest part, and the hardest failure to read.
TestModel = _model.TestModel
