"""Which parameters are sparse, and mask trees shaped like the params.

A *mask tree* has exactly the structure of the param tree, with a bool array (True = weight
kept) where a param is sparse and ``None`` where it is dense. ``None`` is an empty pytree
node for JAX, so every tree map over (masks, params) here passes ``is_leaf=is_none`` with the
mask tree first: the mask tree then decides the structure and the param subtree at a ``None``
position is handed over whole.

Paths are the "/"-joined keys of the nested dict, e.g.
``bert/encoder/layers/attention/query/kernel``.
"""
from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

METHODS = ("fixed_fan_in", "uniform", "erk")


class Rule(NamedTuple):
    """One selection rule.

    pattern: a regular expression searched (``re.search``) in each param path; anchor it
        (``$``, ``^``) to be strict. The first rule that matches a path wins.
    sparsity: fraction of the tensor's weights that are zero, in [0, 1); ``None`` means
        "solved from ``SparsitySpec.target``".
    fan_in_axis: the axis along which each output unit's inputs lie: -2 for a Dense kernel
        [..., in, out], -1 for an embedding [vocab, hidden] whose rows keep a fixed count.
        Axes before the last two are batch axes (e.g. the scanned layer axis).
    """

    pattern: str
    sparsity: float | None = None
    fan_in_axis: int = -2


class SparsitySpec(NamedTuple):
    """A plain description of a sparse layout.

    rules: Rule (or (pattern, sparsity, fan_in_axis) tuples) selecting the sparse params.
    target: overall fraction of ALL params (dense ones count as nonzero) that is zero;
        required when some rule's sparsity is None, and then those params share one level
        solved so that the overall sparsity is met exactly (see ``init.allocate``).
    method: "fixed_fan_in" (every output unit keeps the same number of inputs), "uniform"
        (exact count per tensor, positions at random) or "erk" (Erdos-Renyi-Kernel
        per-tensor densities, then uniform inside each tensor).

    Example, the original 80% BERT layout, and the same set of params at exactly 80% overall:

        SparsitySpec(rules=[(r"encoder/.*(query|key|value|dense)/kernel$", 0.8, -2),
                            (r"word_embeddings/embedding$", 0.8, -1)])
        SparsitySpec(rules=[(r"encoder/.*(query|key|value|dense)/kernel$", None, -2),
                            (r"word_embeddings/embedding$", None, -1)], target=0.8)
    """

    rules: Sequence[Any] = ()
    target: float | None = None
    method: str = "fixed_fan_in"


def is_none(x) -> bool:
    return x is None


def path_str(key_path) -> str:
    """"/"-joined names of a jax key path (dict keys, attribute names, sequence indices)."""
    return jax.tree_util.keystr(tuple(key_path), simple=True, separator="/")


def named_leaves(tree, *, keep_none: bool = False) -> list[tuple[str, Any]]:
    """[(path, leaf)] in tree-flatten order; with keep_none, None leaves are listed too."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=is_none if keep_none else None)
    return [(path_str(p), leaf) for p, leaf in leaves]


def map_with_path(fn: Callable[[str, Any], Any], tree):
    """tree_map whose function also gets the "/"-joined path of each leaf."""
    return jax.tree_util.tree_map_with_path(lambda p, x: fn(path_str(p), x), tree)


def normalize_rules(rules) -> list[Rule]:
    """Rules from Rule / tuples / dicts, validated: regex compiles, sparsity in [0, 1)."""
    out = []
    for r in rules:
        if isinstance(r, dict):
            r = Rule(**r)
        elif not isinstance(r, Rule):
            r = Rule(*r)
        try:
            re.compile(r.pattern)
        except re.error as e:
            raise ValueError(f"sparsity rule pattern {r.pattern!r} is not a valid regex: {e}") from e
        if r.sparsity is not None and not 0.0 <= float(r.sparsity) < 1.0:
            raise ValueError(
                f"sparsity {r.sparsity!r} for rule {r.pattern!r} is outside [0, 1); give the "
                "fraction of zero weights, e.g. 0.8 for 80% sparse.")
        if int(r.fan_in_axis) not in (-1, -2):
            raise ValueError(
                f"fan_in_axis {r.fan_in_axis!r} for rule {r.pattern!r} must be -2 (Dense kernel "
                "[..., in, out]) or -1 (embedding [vocab, hidden], row-wise).")
        out.append(Rule(r.pattern, None if r.sparsity is None else float(r.sparsity),
                        int(r.fan_in_axis)))
    return out


def match_rules(params, rules) -> dict[str, Rule]:
    """{path: first matching rule} for the sparse params, in tree order.

    Raises ValueError when a rule matches no param (a typo would otherwise silently leave
    the model dense) or a matched param has fewer than 2 dimensions.
    """
    rules = normalize_rules(rules)
    paths = named_leaves(params)
    matched: dict[str, Rule] = {}
    hits = [0] * len(rules)
    for path, leaf in paths:
        for i, r in enumerate(rules):
            if re.search(r.pattern, path):
                hits[i] += 1
                if path not in matched:
                    if len(jnp.shape(leaf)) < 2:
                        raise ValueError(
                            f"rule {r.pattern!r} selects {path!r} of shape {jnp.shape(leaf)}; "
                            "only params with >= 2 dims (kernels, embeddings) can be sparse. "
                            "Anchor the regex, e.g. with 'kernel$'.")
                    matched[path] = r
    for r, n in zip(rules, hits):
        if n == 0:
            sample = ", ".join(p for p, _ in paths[:8])
            raise ValueError(
                f"sparsity rule {r.pattern!r} matches no parameter. Some param paths: "
                f"{sample}{', ...' if len(paths) > 8 else ''}")
    return matched


def full_masks(params, rules):
    """All-True masks for the params the rules select (levels are ignored), None elsewhere: the dense
    start of gradual magnitude pruning."""
    matched = match_rules(params, rules)
    return map_with_path(lambda path, leaf: jnp.ones(jnp.shape(leaf), bool) if path in matched else None, params)


def check_structure(masks, params, what: str):
    ms = jax.tree_util.tree_structure(masks, is_leaf=is_none)
    try:
        # Raises if params is not the mask tree with subtrees at the leaves.
        ms.flatten_up_to(params)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"mask tree and {what} have different structures; build masks from the same params "
            f"(init_masks) with None for dense params. Detail: {e}") from e


def apply_masks(params, masks):
    """Zero the masked-off weights of the sparse params; dense params pass through."""
    check_structure(masks, params, "params")

    def f(m, p):
        if m is None:
            return p
        return jnp.where(m, p, jnp.zeros((), p.dtype))

    return jax.tree.map(f, masks, params, is_leaf=is_none)
