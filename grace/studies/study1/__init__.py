"""Study 1, knowledge attribution (Goodman & Stuhlmüller 2013), as one plug-in.

- study.py: columns, validation, prompts and options (`Study1`);
- rules.py, prose.py, extraction.py: reading the replies (schema, rules, the LLM's task and grounding);
- report.py, plots.py: agreement, checks and plots of the data-quality report;
- human.py, results.py, compare.py: the published findings and knowledgeability, and the comparison with them.
"""

from grace.studies.study1.compare import Study1Comparison
from grace.studies.study1.extraction import Study1Extraction
from grace.studies.study1.report import Study1Report
from grace.studies.study1.study import CONDITIONS, KNOWLEDGE, STATES, Knowledge, State, Study1

STUDY = Study1(extraction=Study1Extraction(), report=Study1Report(), comparison=Study1Comparison())

__all__ = ["CONDITIONS", "KNOWLEDGE", "STATES", "STUDY", "Knowledge", "State", "Study1"]
