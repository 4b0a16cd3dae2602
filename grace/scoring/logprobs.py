"""Pure helpers: per-token log-probabilities -> option distributions (softmax, length-normalised, entropy).

An option's log-probability is the sum of its tokens' log-probabilities given the prompt (lm-eval's `acc`);
the length-normalised variant uses the per-token mean (lm-eval normalises by bytes; the token mean is the
common alternative and is what `probs_norm` holds). Entropy is in nats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from grace.records import OptionScores
from grace.scoring.errors import ScoringError


def logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if math.isinf(m):
        return m
    return m + math.log(sum(math.exp(v - m) for v in values))


def softmax(scores: Mapping[str, float]) -> dict[str, float]:
    """Probabilities over the keys of `scores` (log-space values), summing to 1."""
    if not scores:
        raise ValueError("softmax over no options")
    z = logsumexp(list(scores.values()))
    return {k: math.exp(v - z) for k, v in scores.items()}


def entropy(probs: Mapping[str, float]) -> float:
    """Shannon entropy in nats (0 log 0 = 0)."""
    return -sum(p * math.log(p) for p in probs.values() if p > 0)


def argmax(scores: Mapping[str, float]) -> str:
    """The key with the highest value; ties go to the first key (the study's option order)."""
    best = None
    for k, v in scores.items():
        if best is None or v > scores[best]:
            best = k
    if best is None:
        raise ValueError("argmax over no options")
    return best


def option_mass(logprobs: Mapping[str, float]) -> float:
    """Total probability of the options (each the joint probability of its tokens), before renormalising."""
    return sum(math.exp(v) for v in logprobs.values())


def check_token_logprobs(token_logprobs: Mapping[str, Sequence[float]], token_ids: Mapping[str, Sequence[int]]) -> None:
    """Every option has one finite log-probability per token, else ScoringError('no_logprobs')."""
    for opt, ids in token_ids.items():
        lps = token_logprobs.get(opt)
        if lps is None or len(lps) != len(ids):
            raise ScoringError("no_logprobs", f"option {opt!r}: got {0 if lps is None else len(lps)} "
                                              f"log-probabilities for {len(ids)} tokens")
        bad = [v for v in lps if v is None or not math.isfinite(v) or v > 1e-6]
        if bad:
            raise ScoringError("no_logprobs", f"option {opt!r}: invalid log-probabilities {bad}")


def score_options(prompt: str, options: Sequence[str], token_ids: Mapping[str, list[int]],
                  token_logprobs: Mapping[str, Sequence[float]], boundary_fallback: Sequence[str] = ()
                  ) -> OptionScores:
    """One question's OptionScores from each option's per-token log-probabilities."""
    check_token_logprobs(token_logprobs, token_ids)
    sums = {o: float(sum(token_logprobs[o])) for o in options}
    means = {o: sums[o] / len(token_ids[o]) for o in options}
    probs = softmax(sums)
    return OptionScores(
        prompt=prompt,
        options=list(options),
        token_ids={o: list(token_ids[o]) for o in options},
        token_logprobs={o: [float(v) for v in token_logprobs[o]] for o in options},
        logprobs=sums,
        probs=probs,
        probs_norm=softmax(means),
        entropy=entropy(probs),
        argmax=argmax(sums),
        argmax_norm=argmax(means),
        boundary_fallback=list(boundary_fallback),
        option_mass=option_mass(sums),
    )


def pool(scored: Sequence[OptionScores], options: Sequence[str]) -> OptionScores:
    """The mean of one question's scores under several orders of its options (CircularEval): per option the mean
    probability (and length-normalised probability, summed log-probability, option mass); entropy and argmax of
    the means (a tie goes to the first of `options`, the study's own order); prompt and token ids of the first."""
    if not scored:
        raise ValueError("pool of no scores")
    n = len(scored)
    if {frozenset(s.options) for s in scored} != {frozenset(options)}:
        raise ValueError(f"pool: the scores are not all over the options {list(options)}")

    def mean(of: str) -> dict[str, float]:
        return {o: sum(getattr(s, of)[o] for s in scored) / n for o in options}

    probs, norm = mean("probs"), mean("probs_norm")
    first = scored[0]
    masses = [s.option_mass for s in scored if s.option_mass is not None]
    return OptionScores(
        prompt=first.prompt,
        options=list(options),
        token_ids={o: list(first.token_ids[o]) for o in options},
        logprobs=mean("logprobs"),
        probs=probs,
        probs_norm=norm,
        entropy=entropy(probs),
        argmax=argmax(probs),
        argmax_norm=argmax(norm),
        boundary_fallback=sorted({o for s in scored for o in s.boundary_fallback}),
        option_mass=sum(masses) / n if len(masses) == n else None,
        pooled_over=n,
    )


def trie_nodes(option_ids: Mapping[str, Sequence[int]]) -> dict[tuple[int, ...], list[int]]:
    """Every proper prefix of the options' token sequences -> the sorted tokens that follow it.

    One next-token read per node gives every option's token log-probabilities: single-token options need
    only the root (one request per question); "It was X" / "It wasn't X" need 5 reads instead of 8.
    """
    nodes: dict[tuple[int, ...], set[int]] = {}
    for ids in option_ids.values():
        for i in range(len(ids)):
            nodes.setdefault(tuple(ids[:i]), set()).add(ids[i])
    return {prefix: sorted(children) for prefix, children in sorted(nodes.items(), key=lambda kv: len(kv[0]))}


def gather_from_nodes(option_ids: Mapping[str, Sequence[int]],
                      node_logprobs: Mapping[tuple[int, ...], Mapping[int, float]]) -> dict[str, list[float]]:
    """Each option's per-token log-probabilities, read off the per-node next-token reads."""
    out: dict[str, list[float]] = {}
    for opt, ids in option_ids.items():
        lps = []
        for i, tok in enumerate(ids):
            read = node_logprobs.get(tuple(ids[:i]), {})
            if tok not in read:
                raise ScoringError("no_logprobs", f"option {opt!r}: no log-probability for token {tok} "
                                                  f"after {i} option tokens")
            lps.append(read[tok])
        out[opt] = lps
    return out
