"""The study registry: a new study plugs in by adding a `Study` subclass here."""

from __future__ import annotations

from grace.errors import ConfigError
from grace.studies.base import Messages, Question, Study, Trial, load_csv
from grace.studies.study1 import Study1
from grace.studies.study2 import Study2

STUDIES: dict[str, Study] = {s.name: s for s in (Study1(), Study2())}


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]
    except KeyError:
        raise ConfigError(f"unknown study {name!r} (known: {', '.join(STUDIES)})") from None


__all__ = ["STUDIES", "Messages", "Question", "Study", "Trial", "get_study", "load_csv"]
