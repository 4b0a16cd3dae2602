"""The study registry: every study is one plug-in, a `Study` with its parts, and the rest of Grace asks it.

A built-in study is a package here (`grace/studies/study1/`: its columns and prompts, extraction, report, human
comparison) whose `STUDY` this registry imports on first use; a study of one's own plugs in at run time with
`register_study(MyStudy(...))`, and `grace query/score/extract/report/compare` then know it by its name. The
built-in packages are imported on first use rather than here because their parts build on the stages'
helpers, and the stages ask this registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from grace.errors import ConfigError
from grace.studies.base import AS_WRITTEN, MAIN, Layout, Messages, PromptVariant, Question, Study, Trial, load_csv

BUILTIN = ("grace.studies.study1", "grace.studies.study2")  # packages, each with its `STUDY`


class Registry(Mapping[str, Study]):
    """Studies by name: the built-in ones first, in BUILTIN's order, then those registered, in their order."""

    def __init__(self, builtin: tuple[str, ...]) -> None:
        self._builtin = builtin
        self._studies: dict[str, Study] | None = None

    def _all(self) -> dict[str, Study]:
        if self._studies is None:
            studies = [importlib.import_module(module).STUDY for module in self._builtin]
            self._studies = {s.name: s for s in studies}
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


def register_study(study: Study) -> Study:
    """Add a study to the registry (its name must be new); returned, for `STUDY = register_study(...)`."""
    return STUDIES.register(study)


def unregister_study(name: str) -> None:
    STUDIES.unregister(name)


def described() -> str:
    """The registered studies with what each is, for argparse help texts (a "%" doubled)."""
    text = "; ".join(f"{name}: {s.description}" if s.description else name for name, s in STUDIES.items())
    return text.replace("%", "%%")


__all__ = ["AS_WRITTEN", "MAIN", "STUDIES", "Layout", "Messages", "PromptVariant", "Question", "Study", "Trial",
           "described", "get_study", "load_csv", "register_study", "unregister_study"]
