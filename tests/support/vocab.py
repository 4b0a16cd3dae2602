"""Real vocabularies for tests: a transformers tokenizer built from quicktok's vocabulary (grace.scoring.vocab)
once, saved in a folder and loaded from there afterwards."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from grace.scoring.vocab import hf_tokenizer

STAMP = ".grace-vocab"  # what a saved tokenizer was built from


def saved_tokenizer(name: str, folder: Path, chat_template: str | None = None, **special: str) -> Any:
    """`hf_tokenizer` saved in `folder` once (building one takes tens of seconds) and loaded from there."""
    import quicktok
    from transformers import AutoTokenizer

    folder = Path(folder)
    stamp = hashlib.sha256(repr((name, chat_template, sorted(special.items()), quicktok.__version__)).encode())
    if not (folder / "tokenizer.json").is_file() or _read(folder / STAMP) != stamp.hexdigest():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        hf_tokenizer(name, chat_template, **special).save_pretrained(tmp)
        (tmp / STAMP).write_text(stamp.hexdigest())
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
