"""The tested versions (`versions.yml` at the project root, stated once) and the images that must follow them.

scripts/setup.sh installs the vLLM CPU build of VLLM_VERSION; the cluster must run the official image of the
same release (an older server silently ignores request fields Grace relies on, e.g. `logprob_token_ids`), and
the runner image the lab's CI builds carries RUNNER_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from grace.errors import ConfigError
from grace.paths import project_root

VLLM_IMAGE_REPO = "vllm/vllm-openai"  # the official OpenAI-compatible server image; tags are v<release>


@dataclass(frozen=True)
class Versions:
    vllm: str
    runner: str

    @property
    def vllm_image(self) -> str:
        return f"{VLLM_IMAGE_REPO}:v{self.vllm}"


def versions_path() -> Path:
    return project_root() / "versions.yml"


def load_versions(path: Path | None = None) -> Versions:
    p = path or versions_path()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        variables = data["variables"]
        return Versions(vllm=str(variables["VLLM_VERSION"]), runner=str(variables["RUNNER_VERSION"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise ConfigError(f"{p}: cannot read variables.VLLM_VERSION and RUNNER_VERSION ({type(e).__name__})") from None


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None without one; a digest reference has no tag either)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def image_drift(vllm_image: str, runner_image: str, versions: Versions | None = None) -> list[str]:
    """One line per image of the cluster config that is not the tested release (empty: both follow)."""
    v = versions or load_versions()
    out = []
    if vllm_image != v.vllm_image:
        out.append(f"images.vllm is {vllm_image!r}, but the tested vLLM is {v.vllm} ({versions_path().name}): "
                   f"use {v.vllm_image}")
    if image_tag(runner_image) != v.runner:
        out.append(f"images.runner is {runner_image!r}, but the runner image's version is {v.runner} "
                   f"({versions_path().name}): tag it :{v.runner}")
    return out
