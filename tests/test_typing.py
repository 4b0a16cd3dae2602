"""The type check's own rules (mypy itself runs in scripts/test.sh): every `# type: ignore` in the checked code
names its error code and says why on the same line, and the checked folders are the ones the test command means."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("grace", "flows", "tasks", "benchmarks")
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
WITH_REASON = re.compile(r"^\[[a-z0-9-]+(,\s*[a-z0-9-]+)*\]\s+#\s*\S.{4,}")


def ignores_without_reason(text: str) -> list[str]:
    """The lines whose `# type: ignore` lacks `[code]` or a `# reason` after it."""
    bad = []
    for n, line in enumerate(text.splitlines(), 1):
        m = IGNORE.search(line)
        if m and not WITH_REASON.match(m.group("rest").strip()):
            bad.append(f"{n}: {line.strip()}")
    return bad


def test_the_rule_tells_a_bare_ignore_from_an_explained_one() -> None:
    assert ignores_without_reason("x = f()  # type: ignore") == ["1: x = f()  # type: ignore"]
    assert ignores_without_reason("x = f()  # type: ignore[arg-type]") != []
    assert ignores_without_reason("x = f()  # type: ignore[arg-type]  # ok") != []  # too short to be a reason
    assert ignores_without_reason("x = f()  # type: ignore[arg-type, union-attr]  # the library's stub is wrong") == []


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line}" for folder in CHECKED for p in sorted((ROOT / folder).rglob("*.py"))
           for line in ignores_without_reason(p.read_text(encoding="utf-8"))]
    assert not bad, "a `# type: ignore` needs [code] and `# why` on its line:\n" + "\n".join(bad)


def test_mypy_checks_the_folders_the_test_command_means() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert set(conf["files"]) == set(CHECKED)
    assert conf["check_untyped_defs"] and conf["warn_unused_ignores"]
    assert "ignore_missing_imports" not in conf  # only per module, in [[tool.mypy.overrides]]
    assert ".venv/bin/mypy" in (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
