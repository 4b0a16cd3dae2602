"""The prefetch step on the cluster: a CPU-only Job fills the model-cache PVC before any GPU is requested.

`KubernetesPrefetch.run()` creates the model's prefetch Job (grace.manifests.build.prefetch_job: the runner
image, the Hugging Face token from its Secret, the model-cache PVC, `grace prefetch`), waits until the Job is
Complete or Failed, reads the result from its pod's termination message (the marker: the commit and the
files' sizes; on failure the log's tail) and deletes the Job. A pod that cannot start (image not pulled, not
schedulable, the Secret's key missing) ends the wait early with its reason. Nothing here asks for a GPU: a
failed prefetch stops its model before its Deployment exists.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from grace.config import ModelConfig
from grace.manifests.build import prefetch_job, prefetch_job_name
from grace.manifests.settings import ClusterSettings
from grace.serving.kubernetes import FATAL_WAITING, api_client_from_env, api_error
from grace.serving.prefetch import PrefetchError, PrefetchMarker, parse_termination_message

log = logging.getLogger(__name__)


class KubernetesPrefetch:
    """One model's prefetch Job, from creation to its result."""

    def __init__(self, model: ModelConfig, *, settings: ClusterSettings, run_id: str, revision: str | None = None,
                 api_client: client.ApiClient | None = None, poll_s: float | None = None,
                 timeout_s: float | None = None) -> None:
        self.model = model
        self.settings = settings
        self.namespace = settings.namespace
        self.name = prefetch_job_name(settings, model, run_id)
        self.body = prefetch_job(model, settings, run_id, revision)
        self._api_client = api_client
        self.poll_s = poll_s if poll_s is not None else settings.prefetch.poll_s
        # the Job's own deadline ends a stuck download; this bounds the wait if the cluster never says so
        self.timeout_s = timeout_s if timeout_s is not None else settings.prefetch.deadline_s + 600

    @property
    def api(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = api_client_from_env()
        return self._api_client

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def run(self) -> PrefetchMarker:
        """Create the Job, wait for its end, return the marker its pod reported; the Job is deleted after."""
        try:
            self._create()
            return self._wait()
        except ApiException as e:
            raise PrefetchError(f"{self.model.name}: prefetch Job {self.name}: {api_error(e)}") from None
        finally:
            self._delete(raise_errors=False)

    def _create(self) -> None:
        body = client.V1Job.model_validate(self.body)
        try:
            self.batch.create_namespaced_job(self.namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise
            self._delete()  # left by an earlier attempt of this run: its result is not this one's
            self._gone()
            self.batch.create_namespaced_job(self.namespace, body)

    def _gone(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.batch.read_namespaced_job(self.name, self.namespace)
            except ApiException as e:
                if e.status == 404:
                    return
                raise
            time.sleep(self.poll_s)

    def _pods(self) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={self.name}").items
        return sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0)

    def _message(self) -> str:
        """The termination message of the Job's latest finished container."""
        for pod in reversed(self._pods()):
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                term = cs.state.terminated if cs.state else None
                if term is not None:
                    return (term.message or "").strip()
        return ""

    def _stuck(self) -> str | None:
        for pod in self._pods():
            for c in (pod.status.conditions or []) if pod.status else []:
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                    return f"pod {pod.metadata.name} Unschedulable: {c.message}"
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                waiting = cs.state.waiting if cs.state else None
                if waiting is not None and waiting.reason in FATAL_WAITING - {"CrashLoopBackOff"}:
                    return f"pod {pod.metadata.name} {waiting.reason}: {waiting.message}"
        return None

    def _wait(self) -> PrefetchMarker:
        deadline = time.monotonic() + self.timeout_s
        while True:
            job = self.batch.read_namespaced_job(self.name, self.namespace)
            for c in (job.status.conditions or []) if job.status else []:
                if c.status != "True":
                    continue
                if c.type == "Complete":
                    return parse_termination_message(self._message())
                if c.type == "Failed":
                    said = self._message()
                    raise PrefetchError(f"{self.model.name}: prefetch Job {self.name} failed ({c.reason}: "
                                        f"{c.message})" + (f": {said.splitlines()[-1]}" if said else ""))
            stuck = self._stuck()
            if stuck:
                raise PrefetchError(f"{self.model.name}: prefetch Job {self.name} cannot run: {stuck}")
            if time.monotonic() >= deadline:
                raise PrefetchError(f"{self.model.name}: prefetch Job {self.name} not finished after "
                                    f"{self.timeout_s:.0f} s")
            time.sleep(self.poll_s)

    def _delete(self, raise_errors: bool = True) -> None:
        try:
            self.batch.delete_namespaced_job(self.name, self.namespace, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                msg = f"{self.model.name}: deleting prefetch Job {self.name}: {api_error(e)}"
                if raise_errors:
                    raise PrefetchError(msg) from None
                log.warning("%s (its TTL removes it)", msg)
