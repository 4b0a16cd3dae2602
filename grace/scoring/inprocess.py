"""The in-process path: a transformers forward pass over prompt(+option prefix) rows, batched, float32 on CPU.

Used by a Kubernetes Job that loads the model itself, and as the cross-check of the server path. It reads
the same option trie as the server path with the same token ids, but one row covers a whole trie branch:
the logits at each position after the prompt are the next-token reads of that branch's nodes. Single-token
options need one row per question (the prompt alone); Study 2's 8 utterances need 2 ("It was", "It wasn't").
Rows are sorted by length and batched with right padding; only the logits at the read positions are
computed (`logits_to_keep`), so memory stays small whatever the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace.errors import ConfigError
from grace.scoring.errors import ScoringError
from grace.scoring.logprobs import gather_from_nodes, trie_nodes
from grace.scoring.tokenize import EncodedQuestion

Reads = dict[tuple[int, ...], dict[int, float]]  # trie node -> next-token log-probabilities of its children


@dataclass(frozen=True)
class Row:
    question: int  # index into the questions being scored
    prefix: tuple[int, ...]  # a maximal node of the option trie: the row reads every node along it
    ids: tuple[int, ...]  # prompt ids + prefix
    start: int  # number of prompt tokens


def rows_for(i: int, q: EncodedQuestion) -> list[Row]:
    """The fewest rows whose positions read every trie node: single-token options need the prompt alone."""
    nodes = list(trie_nodes(q.option_ids))
    maximal = [p for p in nodes if not any(len(o) > len(p) and o[: len(p)] == p for o in nodes)]
    return [Row(i, p, (*q.prompt_ids, *p), len(q.prompt_ids)) for p in maximal]


class InProcessScorer:
    """A causal LM loaded once; `score` gives per-option token log-probabilities for encoded questions."""

    def __init__(self, model_path: str | Path, *, dtype: str = "float32", batch_size: int = 16,
                 device: str = "cpu", max_len: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        try:
            self.model: Any = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=getattr(torch, dtype))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load the model from {model_path}: {str(e).splitlines()[0]}") from None
        self.model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_len = max_len or int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or None
        self.forward_passes = 0
        self.rows = 0  # token sequences run

    def check_fits(self, q: EncodedQuestion) -> None:
        if self.max_len is not None and q.max_len > self.max_len:
            raise ScoringError("context_overflow", f"question {q.name!r}: {q.max_len} tokens exceed the model's "
                                                   f"context of {self.max_len}")

    def score(self, questions: list[EncodedQuestion]) -> list[dict[str, list[float]]]:
        """Per question, each option's per-token log-probabilities (from float32 logits)."""
        for q in questions:
            self.check_fits(q)
        rows = sorted((r for i, q in enumerate(questions) for r in rows_for(i, q)), key=lambda r: len(r.ids))
        self.rows += len(rows)
        reads: list[Reads] = [{} for _ in questions]
        for b in range(0, len(rows), self.batch_size):
            batch = rows[b:b + self.batch_size]
            for row, got in zip(batch, self._forward(batch, questions), strict=True):
                reads[row.question].update(got)
        return [gather_from_nodes(q.option_ids, r) for q, r in zip(questions, reads, strict=True)]

    def _forward(self, batch: list[Row], questions: list[EncodedQuestion]) -> list[Reads]:
        torch = self.torch
        width = max(len(r.ids) for r in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            ids[i, : len(r.ids)] = torch.tensor(r.ids)
            mask[i, : len(r.ids)] = 1
        # Position start-1+k holds the next-token distribution after the prompt and prefix[:k].
        keep = sorted({r.start - 1 + k for r in batch for k in range(len(r.prefix) + 1)})
        where = {p: j for j, p in enumerate(keep)}
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                logits_to_keep=torch.tensor(keep, device=self.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
        self.forward_passes += 1
        out = []
        for i, r in enumerate(batch):
            children = trie_nodes(questions[r.question].option_ids)
            got = {}
            for k in range(len(r.prefix) + 1):
                node = r.prefix[:k]
                row = logp[i, where[r.start - 1 + k]]
                got[node] = {t: float(row[t]) for t in children[node]}
            out.append(got)
        return out
