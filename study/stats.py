"""The study's numbers: mean ± std and a 95% interval per row over pretraining seeds, and each comparison
judged on the paired per-seed differences. Pure functions on plain numbers, so the tests check them
against scipy and float64 numpy on hand-made values.

Rows share their seeds (seed s of every row has the same data order, dropout and initial masks), so a
comparison of row A with row B is made on d_s = loss_A(s) - loss_B(s): the mean difference, its 95% t
interval, the two-sided paired t-test (scipy.stats.ttest_rel) and a 95% percentile bootstrap interval
over seeds (10,000 resamples, a fixed generator seed, so the same numbers give the same interval). The
verdict follows the t interval: entirely below 0 (A lower) "supported", entirely above 0 "contradicted",
else "not separated at N seeds". Eval loss is the natural-log MLM cross-entropy, so a loss difference is
a log perplexity ratio.
"""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import scipy.stats

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

RULE = ("Each comparison is made on the paired per-seed differences of the final eval loss (rows share "
        "their pretraining seeds): mean difference, 95% t interval, two-sided paired t-test "
        "(scipy.stats.ttest_rel) and a 95% percentile bootstrap interval over seeds (10,000 resamples, "
        "fixed seed). The verdict follows the t interval: below 0 \"supported\", above 0 \"contradicted\", "
        "containing 0 \"not separated at N seeds\". With one seed nothing is separated.")


class Summary(NamedTuple):
    """One row over its pretraining seeds."""
    n: int
    loss_mean: float
    loss_std: float  # sample std (ddof=1); nan with one seed
    ppl_mean: float  # the mean of each seed's perplexity (not exp of the mean loss)
    ppl_std: float
    loss_low: float  # 95% t interval of the mean eval loss; nan with one seed
    loss_high: float


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """mean ± t_{(1+level)/2, n-1} x std / sqrt(n); (nan, nan) with fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return math.nan, math.nan
    half = scipy.stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def summarize(losses: Sequence[float]) -> Summary:
    """Mean ± sample std of the eval losses and of the perplexities exp(loss), and the loss's 95% interval."""
    if len(losses) == 0:
        raise ValueError("summarize needs at least one eval loss.")
    loss = np.asarray(losses, dtype=np.float64)
    ppl = np.exp(loss)
    std = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else math.nan)
    return Summary(len(loss), float(loss.mean()), std(loss), float(ppl.mean()), std(ppl), *t_interval(loss))


class Paired(NamedTuple):
    """Row A against row B on the seeds they share."""
    n: int
    diff: float  # mean of loss_A(s) - loss_B(s): < 0 when A is lower (better)
    low: float  # 95% t interval of the mean difference (nan with one seed)
    high: float
    boot_low: float  # 95% percentile bootstrap interval of the mean difference
    boot_high: float
    p: float  # two-sided paired t-test; nan when every difference is the same (e.g. all 0) or one seed


def bootstrap_interval(differences: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean: BOOTSTRAP_RESAMPLES resamples of the seeds with
    replacement, from numpy's default generator seeded with BOOTSTRAP_SEED."""
    d = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP_RESAMPLES, len(d)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """A against B, seed by seed (a[s] and b[s] are the same seed's eval losses)."""
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"a paired comparison needs the same seeds on both rows, got {len(a)} and {len(b)} losses.")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    p = math.nan
    if len(d) > 1 and np.ptp(d) > 0:
        p = float(scipy.stats.ttest_rel(np.asarray(a, np.float64), np.asarray(b, np.float64)).pvalue)
    return Paired(len(d), float(d.mean()), *t_interval(d), *bootstrap_interval(d), p)


def verdict(c: Paired) -> str:
    """The claim "A is lower than B", by the t interval of the mean difference."""
    if not math.isnan(c.high) and c.high < 0:
        return "supported"
    if not math.isnan(c.low) and c.low > 0:
        return "contradicted"
    return f"not separated at {c.n} seed{'s' * (c.n != 1)}"


class Claim(NamedTuple):
    number: int
    text: str
    row: str  # the row the claim is about: "row's loss is lower than against's"
    against: str  # the row it is compared with
    optional: bool = False  # left out silently when a row is missing (a control the study may not have run)


# The original's claims, on the study's row keys. Claim 3 is judged for each sparse row with distillation,
# against the dense run of the same length (the original's bert_100k, its own schedule) and against a
# dense run with the sparse rows' one-cycle and distillation (a fair dense baseline, when the study has it).
CLAIMS = (
    Claim(1, "Distillation helps the sparse model", "static_kd", "static"),
    Claim(2, "RigL beats static sparsity with distillation and one-cycle", "rigl_kd", "static_kd"),
    Claim(3, "The sparse models approach the dense model of the same length", "rigl_kd", "dense_short"),
    Claim(3, "The sparse models approach the dense model of the same length", "static_kd", "dense_short"),
    Claim(3, "The sparse models approach the dense model of the same length", "rigl_kd", "dense_onecycle_kd", True),
    Claim(3, "The sparse models approach the dense model of the same length", "static_kd", "dense_onecycle_kd",
          True),
)

# Comparisons that separate causes (the controls of configs/study_tiny.py), judged like the claims.
CONTROLS = (
    Claim(0, "RigL's machinery alone changes nothing (null control)", "rigl_null", "static_kd"),
    Claim(0, "RigL beats static with one-cycle's peak at 10% of the run", "rigl_kd_pct10", "static_kd_pct10"),
    Claim(0, "A late first update costs less with few updates than with many", "rigl_n3", "rigl_late_many"),
    Claim(0, "A first update after one-cycle's peak beats one before it", "rigl_late_many", "rigl_kd"),
    Claim(0, "Distillation helps the dense model (one-cycle)", "dense_onecycle_kd", "dense_onecycle"),
    Claim(0, "RigL beats gradual magnitude pruning to the same count", "rigl_kd", "gmp_kd"),
    Claim(0, "Static sparsity beats gradual magnitude pruning to the same count", "static_kd", "gmp_kd"),
)


def pm(mean: float, std: float, decimals: int) -> str:
    """'5.432 ± 0.012', or just the mean when there is no spread (one seed)."""
    return f"{mean:.{decimals}f}" + ("" if math.isnan(std) else f" ± {std:.{decimals}f}")


def interval(low: float, high: float, decimals: int = 3, signed: bool = False) -> str:
    """'[5.401, 5.463]', or '' with one seed."""
    if math.isnan(low):
        return ""
    f = f"{{:{'+' if signed else ''}.{decimals}f}}"
    return f"[{f.format(low)}, {f.format(high)}]"


def summary_table(rows: Sequence[tuple[str, str, Summary, Sequence[float]]]) -> str:
    """Markdown: | row | key | seeds | eval loss | 95% interval | perplexity | per-seed eval loss |, from
    (label, key, summary, per-seed losses) tuples."""
    lines = ["| row | key | seeds | eval loss (mean ± std) | 95% interval of the mean | perplexity (mean ± std) | "
             "eval loss per seed |", "|---|---|---|---|---|---|---|"]
    for label, key, s, losses in rows:
        lines.append(f"| {label} | `{key}` | {s.n} | {pm(s.loss_mean, s.loss_std, 3)} | "
                     f"{interval(s.loss_low, s.loss_high)} | {pm(s.ppl_mean, s.ppl_std, 1)} | "
                     f"{', '.join(f'{v:.3f}' for v in losses)} |")
    return "\n".join(lines) + "\n"


def paired_text(c: Paired) -> str:
    """'difference -0.151 nats, 95% t interval [-0.254, -0.048], bootstrap [-0.190, -0.110], paired t-test
    p = 0.012, n = 3'."""
    p = "p not defined (no spread of the differences)" if math.isnan(c.p) else f"paired t-test p = {c.p:.3g}"
    t = interval(c.low, c.high, signed=True) or "none (one seed)"
    return (f"difference {c.diff:+.3f} nats, 95% t interval {t}, bootstrap "
            f"{interval(c.boot_low, c.boot_high, signed=True) or 'none'}, {p}, n = {c.n}")


def cell(c: Paired) -> str:
    """A comparison in a table cell: '-0.151 [-0.254, -0.048], p 0.012: supported'."""
    p = "" if math.isnan(c.p) else f", p {c.p:.2g}"
    return f"{c.diff:+.3f} {interval(c.low, c.high, signed=True)}{p}: {verdict(c)}".replace("  ", " ")


def claims_section(losses: Mapping[str, Sequence[float]], labels: Mapping[str, str], horizon: str,
                   claims: Sequence[Claim] = CLAIMS, numbered: bool = True) -> str:
    """The claims in plain words, one line per comparison: verdict at the horizon, the two means ± std, the
    paired statistics. `losses`: each row's per-seed eval losses (seed order); a comparison with a row not in
    it is named as not tested (numbered claims that are not optional) or left out."""
    lines = [f"Rule: {RULE}", ""]
    for c in claims:
        title = f"Claim {c.number}: {c.text}" if numbered else c.text
        head = f"- **{title}** — {labels.get(c.row, c.row)} vs {labels.get(c.against, c.against)}"
        missing = [k for k in (c.row, c.against) if k not in losses]
        if missing:
            if numbered and not c.optional:
                lines.append(f"{head}: **not tested** at {horizon} (no row {', '.join(missing)}).")
            continue
        n = min(len(losses[c.row]), len(losses[c.against]))
        a, b = losses[c.row][:n], losses[c.against][:n]
        sa, sb, pc = summarize(a), summarize(b), paired(a, b)
        lines.append(f"{head}: **{verdict(pc)}** at {horizon}. Eval loss {pm(sa.loss_mean, sa.loss_std, 3)} vs "
                     f"{pm(sb.loss_mean, sb.loss_std, 3)} (perplexity {pm(sa.ppl_mean, sa.ppl_std, 1)} vs "
                     f"{pm(sb.ppl_mean, sb.ppl_std, 1)}); {paired_text(pc)}.")
    return "\n".join(lines) + "\n"
