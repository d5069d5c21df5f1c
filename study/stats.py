"""The study's numbers: mean ± std over pretraining seeds, the rule that tells a difference between two
rows from noise, and the original's three claims judged by it. Pure functions on plain numbers, so the
tests check them on hand-made values.

The rule (stated in every report): rows A and B differ only if their mean eval losses differ by more
than the sum of their sample standard deviations over seeds (ddof=1), i.e. the mean ± std bars do not
overlap. Eval loss is the natural-log MLM cross-entropy, so a loss difference is a log perplexity ratio.
With one seed there is no spread and nothing is resolved.
"""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np

RULE = ("A difference between two rows counts only if their mean eval losses differ by more than the sum "
        "of the two rows' standard deviations over pretraining seeds (sample std, ddof=1): the mean ± std "
        "bars do not overlap. With one seed a row has no spread and no difference is resolved.")


class Summary(NamedTuple):
    """One row over its pretraining seeds."""
    n: int
    loss_mean: float
    loss_std: float  # nan with one seed
    ppl_mean: float  # the mean of each seed's perplexity (not exp of the mean loss)
    ppl_std: float


def summarize(losses: Sequence[float]) -> Summary:
    """Mean ± sample std of the eval losses and of the perplexities exp(loss) over seeds."""
    if len(losses) == 0:
        raise ValueError("summarize needs at least one eval loss.")
    loss = np.asarray(losses, dtype=np.float64)
    ppl = np.exp(loss)
    std = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else math.nan)
    return Summary(len(loss), float(loss.mean()), std(loss), float(ppl.mean()), std(ppl))


class Comparison(NamedTuple):
    diff: float  # mean loss of B minus mean loss of A: > 0 when A is lower (better)
    spread: float  # std of A + std of B; nan when either has one seed
    outcome: str  # 'A lower', 'B lower' or 'within spread'


def compare(a: Summary, b: Summary) -> Comparison:
    """A against B by the rule above."""
    diff = b.loss_mean - a.loss_mean
    spread = a.loss_std + b.loss_std
    if math.isnan(spread) or abs(diff) <= spread:
        return Comparison(diff, spread, "within spread")
    return Comparison(diff, spread, "A lower" if diff > 0 else "B lower")


class Claim(NamedTuple):
    number: int
    text: str
    row: str  # the row the claim is about
    against: str  # the row it is compared with
    kind: str  # 'beats': row's loss lower than against's; 'approaches': not higher beyond the spread


# The original's claims, on the study's row keys. Claim 3 is judged for each sparse row with distillation.
CLAIMS = (
    Claim(1, "Distillation helps the sparse model", "static_kd", "static", "beats"),
    Claim(2, "RigL beats static sparsity with distillation and one-cycle", "rigl_kd", "static_kd", "beats"),
    Claim(3, "The sparse models approach the dense model of the same length", "rigl_kd", "dense_short",
          "approaches"),
    Claim(3, "The sparse models approach the dense model of the same length", "static_kd", "dense_short",
          "approaches"),
)


class Verdict(NamedTuple):
    claim: Claim
    verdict: str  # 'supported', 'not supported', 'contradicted', 'not resolved', 'not tested'
    comparison: Comparison | None


def judge(claim: Claim, summaries: Mapping[str, Summary]) -> Verdict:
    """'beats': supported when the row is lower by more than the spread, contradicted when it is higher by
    more than the spread, else not resolved. 'approaches' (a non-inferiority claim): supported when the
    row is lower or within the spread of the other, not supported when it is higher by more than the
    spread. A one-seed row resolves nothing; a missing row means the claim is not tested."""
    if claim.row not in summaries or claim.against not in summaries:
        return Verdict(claim, "not tested", None)
    c = compare(summaries[claim.row], summaries[claim.against])
    if math.isnan(c.spread):
        return Verdict(claim, "not resolved", c)
    if claim.kind == "beats":
        verdict = {"A lower": "supported", "B lower": "contradicted", "within spread": "not resolved"}[c.outcome]
    elif claim.kind == "approaches":
        verdict = "not supported" if c.outcome == "B lower" else "supported"
    else:
        raise ValueError(f"unknown claim kind {claim.kind!r}; use 'beats' or 'approaches'.")
    return Verdict(claim, verdict, c)


def pm(mean: float, std: float, decimals: int) -> str:
    """'5.432 ± 0.012', or just the mean when there is no spread (one seed)."""
    return f"{mean:.{decimals}f}" + ("" if math.isnan(std) else f" ± {std:.{decimals}f}")


def summary_table(rows: Sequence[tuple[str, str, Summary, Sequence[float]]]) -> str:
    """Markdown: | row | key | seeds | eval loss | perplexity | per-seed eval loss |, from
    (label, key, summary, per-seed losses) tuples."""
    lines = ["| row | key | seeds | eval loss (mean ± std) | perplexity (mean ± std) | eval loss per seed |",
             "|---|---|---|---|---|---|"]
    for label, key, s, losses in rows:
        lines.append(f"| {label} | `{key}` | {s.n} | {pm(s.loss_mean, s.loss_std, 3)} | "
                     f"{pm(s.ppl_mean, s.ppl_std, 1)} | {', '.join(f'{v:.3f}' for v in losses)} |")
    return "\n".join(lines) + "\n"


def _comparison_text(c: Comparison) -> str:
    spread = "no spread (one seed)" if math.isnan(c.spread) else f"spread {c.spread:.3f}"
    return f"difference {c.diff:+.3f} nats, {spread}"


def claims_section(summaries: Mapping[str, Summary], labels: Mapping[str, str], scale: str) -> str:
    """The claims in plain words, one line per comparison: verdict, the two means ± std and the rule."""
    lines = [f"Rule: {RULE}", ""]
    for v in (judge(c, summaries) for c in CLAIMS):
        c = v.claim
        head = f"- **Claim {c.number}: {c.text}** — {labels.get(c.row, c.row)} vs {labels.get(c.against, c.against)}"
        if v.comparison is None:
            missing = [k for k in (c.row, c.against) if k not in summaries]
            lines.append(f"{head}: **not tested** at {scale} scale (no row {', '.join(missing)}).")
            continue
        a, b = summaries[c.row], summaries[c.against]
        lines.append(f"{head}: **{v.verdict}** at {scale} scale. Eval loss {pm(a.loss_mean, a.loss_std, 3)} "
                     f"vs {pm(b.loss_mean, b.loss_std, 3)} (perplexity {pm(a.ppl_mean, a.ppl_std, 1)} vs "
                     f"{pm(b.ppl_mean, b.ppl_std, 1)}; {_comparison_text(v.comparison)}; n = {a.n}, {b.n}).")
    return "\n".join(lines) + "\n"


def versus(a: Summary, b: Summary) -> str:
    """A against B in a table cell: '-0.052 (spread 0.031): lower' — A's mean loss minus B's."""
    c = compare(a, b)
    outcome = {"A lower": "lower", "B lower": "higher", "within spread": "within spread"}[c.outcome]
    spread = "no spread" if math.isnan(c.spread) else f"spread {c.spread:.3f}"
    return f"{-c.diff:+.3f} ({spread}): {outcome}"
