"""The FLOPs of one train step, counted from the architecture (multiply-adds as 2 FLOPs).

A forward pass of one sequence of S tokens with P prediction slots through a BERT of hidden h,
feed-forward i, L layers and vocabulary V:
    layers:    S * L * (2 * (4h^2 + 2hi)  +  4 * S * h)      projections and feed-forward; QK^T and PV
    MLM head:  P * (2h^2 + 2hV)                              at the masked positions only (the step
                                                             gathers them before the vocabulary projection)
Embedding lookups are gathers (no FLOPs); LayerNorm, softmax, GELU and the optimizer are left out
(under 2% at BERT-base). Training the student costs 3 forwards (the backward pass is two matmuls per
forward matmul), 4 with remat (each layer's forward again); a frozen teacher costs one forward. This is
"6 x params x tokens" for the student and "2 x params x tokens" for a teacher, with the attention terms
and only the matmul params (the embedding tables are looked up, not multiplied).

XLA's cost analysis counts a loop body once: with scanned layers it sees one layer, and one
micro-batch of the accumulation loop. `as_xla_counts` gives the same count under that rule, to compare.
"""
from __future__ import annotations

from jax_bert.model import BertConfig


def forward(cfg: BertConfig, seq_len: int, slots: int, layers: int | None = None) -> float:
    """FLOPs of one sequence's forward pass (all layers, or `layers` of them)."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers if layers is None else layers
    layer = seq_len * (2 * (4 * h * h + 2 * h * i) + 4 * seq_len * h)
    head = slots * (2 * h * h + 2 * h * cfg.vocab_size)
    return n * layer + head


def layers_forward(cfg: BertConfig, seq_len: int, layers: int | None = None) -> float:
    return forward(cfg, seq_len, 0, layers)


def step_flops(student: BertConfig, teachers, *, rows: int, seq_len: int, slots: int,
               layers: int | None = None) -> dict[str, float]:
    """{student, teachers, total}: FLOPs of a step of `rows` sequences (`layers`: count only that
    many layers of each model, as XLA does with scanned layers)."""
    s = 3 * forward(student, seq_len, slots, layers)
    if student.remat:
        s += layers_forward(student, seq_len, layers)
    t = sum(forward(cfg, seq_len, slots, layers) for cfg in teachers)
    return {"student": rows * s, "teachers": rows * t, "total": rows * (s + t)}


def as_xla_counts(student: BertConfig, teachers, *, micro_rows: int, seq_len: int, slots: int) -> float:
    """The analytical FLOPs of the whole program (all devices) as XLA's cost analysis counts them:
    one micro-batch, and one layer when the layers are scanned."""
    layers = 1 if student.scan_layers else None
    return step_flops(student, teachers, rows=micro_rows, seq_len=seq_len, slots=slots, layers=layers)["total"]
