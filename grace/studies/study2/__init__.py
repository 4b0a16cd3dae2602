"""Study 2, politeness judgments (Yoon, Tessler, Goodman & Frank 2020), as one plug-in.

- study.py, goals.py: columns, validation (the Goal read by meaning), prompts and options (`Study2`);
- rules.py, extraction.py: reading the replies (schema, rules, the LLM's task and grounding);
- report.py, plots.py: agreement and plots of the data-quality report;
- human.py, results.py, compare.py: the human utterance distributions, and the comparison with them.
"""

from grace.studies.study2.compare import Study2Comparison
from grace.studies.study2.extraction import Study2Extraction
from grace.studies.study2.report import Study2Report
from grace.studies.study2.study import (
    GOALS,
    LABELS,
    QUALITIES,
    STATES,
    UTTERANCES,
    Quality,
    Study2,
    Utterance,
    goal_label,
    state_label,
    state_sentence,
)

STUDY = Study2(extraction=Study2Extraction(), report=Study2Report(), comparison=Study2Comparison())

__all__ = ["GOALS", "LABELS", "QUALITIES", "STATES", "STUDY", "UTTERANCES", "Quality", "Study2", "Utterance",
           "goal_label", "state_label", "state_sentence"]
