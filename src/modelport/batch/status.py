"""The states of a batch job and of its mini-batches, as stored in the database.

Job statuses are Azure ML's names. ``NotResponding`` is computed (an unfinished job whose runner
is gone), never stored. This module imports nothing heavy, so the CLI reads statuses without the
database stack.
"""

from __future__ import annotations

from modelport.core.enums import StrEnum


class JobStatus(StrEnum):
    NOT_STARTED = "NotStarted"  # recorded, runner not started yet
    PREPARING = "Preparing"  # a runner claimed it
    RUNNING = "Running"  # the engine scores mini-batches
    FINALIZING = "Finalizing"  # joining the output parts
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCEL_REQUESTED = "CancelRequested"  # the runner stops at its next heartbeat
    CANCELED = "Canceled"
    NOT_RESPONDING = "NotResponding"  # unfinished, its runner gone: `job resume` continues it

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


class MiniBatchStatus(StrEnum):
    PENDING = "pending"  # to score (again, when a runner died halfway through it)
    DONE = "done"  # its output part is on disk
    FAILED = "failed"  # finished with failed items
