"""The studies: what every study provides (`Study`, base.py) and the built-in ones (study1/, study2/).

Nothing here looks a study up by its name: the registry (grace.studies.registry) does, and only the edges ask
it (the command line, the flow's parameter checks, the discovery of which studies a run folder holds). The
stages receive the `Study` object.
"""

from grace.studies.base import Messages, Question, Study, Trial, load_csv

__all__ = ["Messages", "Question", "Study", "Trial", "load_csv"]
