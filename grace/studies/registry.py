"""The study registry: every study by its name, for the edges that are given names.

Only the edges ask it: the command line (`--study S`), the flow's parameter checks (`studies=[...]`) and the
discovery of which studies a run folder holds; they hand the stages the `Study` objects. A built-in study is a
package of grace/studies/ whose `STUDY` is imported on first use. A study of one's own is known by its name
in every process that can import it when its package declares an entry point in the group `grace.studies`
(`[project.entry-points."grace.studies"] colours = "my_package.colours:STUDY"` in its pyproject.toml; the
worker's flow-run process then knows it too); `register_study(MyStudy(...))` adds one to this process only.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points

from grace.errors import ConfigError
from grace.studies.base import Study

BUILTIN = ("grace.studies.study1", "grace.studies.study2")  # packages, each with its `STUDY`
ENTRY_POINTS = "grace.studies"  # the entry-point group of the studies other packages provide


def _installed() -> list[Study]:
    """The studies that installed packages declare in the entry-point group, in name order."""
    out = []
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        try:
            study = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in is named, whatever its error
            raise ConfigError(f"study plug-in {ep.name!r} ({ep.value}) does not load: {type(e).__name__}: {e}") from e
        if not isinstance(study, Study):
            raise ConfigError(f"study plug-in {ep.name!r} ({ep.value}) is not a Study but {type(study).__name__}")
        if study.name != ep.name:
            raise ConfigError(f"study plug-in {ep.name!r} ({ep.value}) names its study {study.name!r}")
        out.append(study)
    return out


class Registry(Mapping[str, Study]):
    """Studies by name: the built-in ones first, in BUILTIN's order, then those of the entry points, then those
    registered, in their order."""

    def __init__(self, builtin: tuple[str, ...]) -> None:
        self._builtin = builtin
        self._studies: dict[str, Study] | None = None

    def _all(self) -> dict[str, Study]:
        if self._studies is None:
            studies: dict[str, Study] = {}
            for study in [*(importlib.import_module(m).STUDY for m in self._builtin), *_installed()]:
                if study.name in studies:
                    raise ConfigError(f"two studies are named {study.name!r}")
                studies[study.name] = study
            self._studies = studies
        return self._studies

    def __getitem__(self, name: str) -> Study:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def register(self, study: Study) -> Study:
        if study.name in self._all():
            raise ConfigError(f"study {study.name!r} is already registered")
        self._all()[study.name] = study
        return study

    def unregister(self, name: str) -> None:
        if name not in self._all():
            raise ConfigError(f"unknown study {name!r}")
        del self._all()[name]


STUDIES = Registry(BUILTIN)


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]
    except KeyError:
        raise ConfigError(f"unknown study {name!r} (known: {', '.join(STUDIES)})") from None


def get_studies(names: list[str]) -> list[Study]:
    """The studies of these names, in this order (a ConfigError names the first unknown one)."""
    return [get_study(n) for n in names]


def register_study(study: Study) -> Study:
    """Add a study to this process's registry (its name must be new); returned, for `STUDY = register_study(...)`."""
    return STUDIES.register(study)


def unregister_study(name: str) -> None:
    STUDIES.unregister(name)


def described() -> str:
    """The registered studies with what each is, for argparse help texts (a "%" doubled)."""
    text = "; ".join(f"{name}: {s.description}" if s.description else name for name, s in STUDIES.items())
    return text.replace("%", "%%")


__all__ = ["BUILTIN", "ENTRY_POINTS", "STUDIES", "Registry", "described", "get_studies", "get_study",
           "register_study", "unregister_study"]
