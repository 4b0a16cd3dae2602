"""Position bias: do a model's choices follow where an option is listed more than which option it is?

Counterbalanced orders (grace.studies.orders) put every option in every position about equally often, so a model
that chooses by content spreads its choices evenly over the positions, and one that chooses by position spreads
them evenly over the options. Per model, study, experiment and permutable list (the Exp 2 question and the
extracted field of the list's name; prompt variants pooled):

- **by position**: the share of choices (Exp 1: the extracted answer's place in the order its prompt listed the
  options) or of probability mass (Exp 2: each scored order's probabilities, by the place each option was listed
  at; a question scored under every rotation counts each rotation) at positions 1..n;
- **by option**: the same shares by option;
- **position TV**, **option TV**: each set of shares' total-variation distance from uniform (0: even; 1 - 1/n:
  everything on one position / one option);
- **p**: a permutation test: the listed orders shuffled across the observations (1,000 times, seeded) give how
  often the choices would be spread over the positions at least as unevenly if the order shown did not matter.

**Flag**: position TV > option TV and p < 0.05, that is the listed position explains the choices more than the
options do, beyond chance. Not testable when every observation had the same order (a fixed-order run: position
and option are then one and the same).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from grace.records import variant_key
from grace.report.load import StudyData

PERMUTATIONS = 1000
ALPHA = 0.05
SEED = 2026
USABLE = ("ok", "partial")  # extracted statuses whose answer counts as a choice


@dataclass
class Observations:
    """Per observation: its weights over the options (study order) and the option index at each position."""

    options: tuple[str, ...]
    weights: list[np.ndarray] = field(default_factory=list)
    orders: list[list[int]] = field(default_factory=list)
    records: int = 0  # records (responses, or trials x variants) the observations come from

    def add(self, order: list[str], weights: np.ndarray) -> bool:
        if sorted(order) != sorted(self.options):
            return False
        self.orders.append([self.options.index(o) for o in order])
        self.weights.append(weights)
        return True


@dataclass
class PositionBias:
    model: str
    study: str
    experiment: str
    question: str
    options: list[str]
    n: int  # observations: Exp 1 responses with a choice; Exp 2 scored orders
    records: int
    by_position: list[float]
    by_option: dict[str, float]
    position_tv: float
    option_tv: float
    top_position: int  # 1-based
    p_value: float | None
    flagged: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def detail(self) -> str:
        shares = ", ".join(f"{100 * s:.0f}%" for s in self.by_position)
        p = "not testable" if self.p_value is None else f"p = {self.p_value:.3g}"
        verdict = "choices follow the listed position more than the options" if self.flagged else "no flag"
        return (f"{self.question}: {verdict} (by position {shares}; position TV {self.position_tv:.2f} vs option "
                f"TV {self.option_tv:.2f}; {p}; {self.n} observations){'; ' + self.note if self.note else ''}")


def tv_from_uniform(shares: np.ndarray) -> float:
    """Total-variation distance of `shares` (summing to 1) from the uniform distribution over as many cells."""
    return float(0.5 * np.abs(shares - 1.0 / len(shares)).sum())


def _by_position(weights: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Mean over observations of the weight of the option at each position: (..., n)."""
    return np.take_along_axis(weights, orders, axis=-1).mean(axis=-2)


def measure(obs: Observations, *, permutations: int = PERMUTATIONS, seed: int = SEED,
            alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, float, float, float | None, str]:
    """by position, by option, position TV, option TV, permutation p (None: not testable) and a note."""
    w = np.stack(obs.weights)
    o = np.asarray(obs.orders, dtype=int)
    w = w / w.sum(axis=1, keepdims=True)
    by_option = w.mean(axis=0)
    by_position = _by_position(w, o)
    pos_tv, opt_tv = tv_from_uniform(by_position), tv_from_uniform(by_option)
    if len({tuple(x) for x in o}) < 2:
        return by_position, by_option, pos_tv, opt_tv, None, "one listed order only: position and option confounded"
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    chunk = max(1, min(permutations, 2_000_000 // max(1, w.size)))
    while done < permutations:
        k = min(chunk, permutations - done)
        perms = np.stack([o[rng.permutation(len(o))] for _ in range(k)])  # (k, N, n)
        null = _by_position(np.broadcast_to(w, perms.shape), perms)  # (k, n)
        hits += int((0.5 * np.abs(null - 1.0 / w.shape[1]).sum(axis=1) >= pos_tv - 1e-12).sum())
        done += k
    return by_position, by_option, pos_tv, opt_tv, (hits + 1) / (permutations + 1), ""


def observations(data: StudyData, experiment: str, name: str, options: tuple[str, ...]) -> Observations:
    """The observations of one list in one experiment of a model's stage (see the module's docstring)."""
    obs = Observations(options)
    if experiment == "exp1":
        exp1 = data.exp1
        for rec in data.extracted.values():
            chosen = rec.fields.get(name)
            source = exp1.get(variant_key(f"{rec.trial_id}#{rec.replicate}", rec.prompt_variant))
            if rec.status not in USABLE or chosen not in options or source is None or name not in source.option_order:
                continue
            weights = np.zeros(len(options))
            weights[options.index(str(chosen))] = 1.0
            obs.records += obs.add(source.option_order[name], weights)
    else:
        for r2 in data.exp2.values():
            if r2.status != "ok":
                continue
            scored = r2.rotations.get(name) or ([r2.questions[name]] if name in r2.questions else [])
            added = [obs.add(s.options, np.array([s.probs.get(o, 0.0) for o in options])) for s in scored]
            obs.records += any(added)
    return obs


def position_bias(data: StudyData, **kw: Any) -> list[PositionBias]:
    """Every permutable list of the stage's study, in each experiment that has observations of it."""
    study = data.study
    out = []
    for experiment in ("exp1", "exp2"):
        for name, options in study.permutable.items():
            obs = observations(data, experiment, name, tuple(options))
            if not obs.weights:
                continue
            by_pos, by_opt, pos_tv, opt_tv, p, note = measure(obs, **kw)
            flagged = p is not None and pos_tv > opt_tv and p < kw.get("alpha", ALPHA)
            out.append(PositionBias(
                model=data.model, study=study.name, experiment=experiment, question=name, options=list(options),
                n=len(obs.weights), records=obs.records, by_position=[round(float(x), 4) for x in by_pos],
                by_option={o: round(float(x), 4) for o, x in zip(options, by_opt, strict=True)},
                position_tv=round(pos_tv, 4), option_tv=round(opt_tv, 4), top_position=int(np.argmax(by_pos)) + 1,
                p_value=None if p is None else round(p, 4), flagged=flagged, note=note))
    return out


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report's position-bias section: one list item per model, study, experiment and list (a list, not a
    table: the shares by position are long text, and one of Prefect's two UIs never wraps a table cell)."""
    if not rows:
        return ["_No permutable option list was answered: nothing to measure._"]
    out = []
    for r in rows:
        shares = " / ".join(f"{100 * s:.0f}%" for s in r["by_position"])
        top = max(r["by_option"], key=r["by_option"].get)
        p = "—" if r["p_value"] is None else f"{r['p_value']:.3g}"
        flag = "✗ **FLAG**: follows position" if r["flagged"] else f"✓ {r['note'] or 'no flag'}"
        out.append(f"- **{r['model']} / {r['study']} {r['experiment']}**, list `{r['question']}` (n {r['n']}): {flag}; "
                   f"position TV {r['position_tv']:.2f} vs option TV {r['option_tv']:.2f}, p {p}; share by listed "
                   f"position (1, 2, ...) {shares}; top option {top} ({100 * r['by_option'][top]:.0f}%)")
    return out
