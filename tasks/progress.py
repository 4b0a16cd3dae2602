"""Live progress of a stage in the Prefect UI: a progress artifact (rows done / total, at most two updates a
second) and a log line every 10% with the rate and the time left (grace.progress does the bookkeeping)."""

from __future__ import annotations

from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from grace.progress import ProgressTracker
from tasks.artifacts import artifact_key


class ArtifactProgress:
    """A stage's progress callback (grace.progress.Progress) that shows itself in the Prefect UI."""

    def __init__(self, model: str, stage: str, total: int) -> None:
        self.label = f"{model} {stage}"
        self.tracker = ProgressTracker(total=total, label=self.label)
        self.logger = get_run_logger()
        artifact_id = create_progress_artifact(
            progress=0.0, key=artifact_key("grace", model, stage, "progress"),
            description=f"{self.label}: share of the {total:,} rows done")
        # Prefect's async_dispatch returns a coroutine only when called from async code; the stages are sync
        if not isinstance(artifact_id, UUID):
            raise TypeError(f"{self.label}: progress artifact created from async code ({artifact_id!r})")
        self.artifact_id: UUID = artifact_id

    def _publish(self) -> None:
        update_progress_artifact(self.artifact_id, progress=round(100 * self.tracker.fraction, 2),
                                 description=self.tracker.line())

    def __call__(self, n: int, *, resumed: bool = False) -> None:
        if resumed:
            self.tracker.skip(n)
            self._publish()
            self.logger.info("%s: %d of %d rows done before (resumed)", self.label, n, self.tracker.total)
            return
        publish, line = self.tracker.advance(n)
        if publish:
            self._publish()
        if line:
            self.logger.info(line)

    def finish(self) -> None:
        """Publish the final count (the last update may have been throttled away)."""
        self._publish()
