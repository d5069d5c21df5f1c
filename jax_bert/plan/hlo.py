"""The collectives of a compiled program, read from its HLO text: per op its kind, the bytes of its
result on one device, its replica groups and how many times one step runs it.

A collective inside a loop (the scanned layers, the accumulation's micro-batches) runs once per
iteration: each computation's count is the product of the known trip counts of the while loops that
lead to it (XLA writes them on the loop as backend_config known_trip_count). Conditional branches (RigL's
mask update) are counted as if taken every step: an upper bound.

XLA:CPU has no reduce-scatter: a gradient that fsdp shards is all-reduced whole, then sliced, where a
GPU reduce-scatters it (half the traffic).
"""
from __future__ import annotations

import collections
import dataclasses
import math
import re

import numpy as np

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
          "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1}
_ARRAY = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([0-9,]*)\]")
_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(.*\))?.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s+(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s([a-z][a-z\-]*)\((.*)$")
_CALLED = re.compile(r"\b(body|condition|to_apply|calls|true_computation|false_computation)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_GROUPS_LIST = re.compile(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}")
_GROUPS_IOTA = re.compile(r"replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?")


@dataclasses.dataclass(frozen=True)
class Collective:
    kind: str
    bytes: int  # its result on one device (for all-gather: the gathered array; reduce-scatter: the shard)
    groups: tuple[tuple[int, ...], ...]  # device ids of each group; () when the text does not say
    count: int  # times one step runs it

    @property
    def group_size(self) -> int:
        return len(self.groups[0]) if self.groups else 1


def array_bytes(shape_text: str) -> list[int]:
    return [math.prod(int(d) for d in dims.split(",") if d) * _BYTES[t] for t, dims in _ARRAY.findall(shape_text)]


def collectives(text: str) -> tuple[list[Collective], bool]:
    """(every collective of the program with its per-step count, whether every loop's trip count was known)."""
    computations: dict[str, list[str]] = {}
    entry, current = None, None
    for line in text.splitlines():
        if not line.startswith((" ", "\t")) and line.rstrip().endswith("{"):
            m = _HEADER.match(line)
            if m:
                current = m.group(1)
                computations[current] = []
                if line.startswith("ENTRY"):
                    entry = current
                continue
        if current is not None and line.startswith((" ", "\t")):
            computations[current].append(line)
    callers: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    all_known = True
    for name, lines in computations.items():
        for line in lines:
            m = _INSTRUCTION.match(line)
            op = m.group(2) if m else ""
            trip = 1
            if op == "while":
                t = _TRIP.search(line)
                all_known &= t is not None
                trip = int(t.group(1)) if t else 1
            for role, callee in _CALLED.findall(line):
                callers[callee].append((name, trip if role == "body" else 1))
            for branches in _BRANCHES.findall(line):
                for callee in branches.split(","):
                    callers[callee.strip().lstrip("%")].append((name, 1))

    counts: dict[str, int] = {}

    def count(name: str) -> int:
        if name not in counts:
            counts[name] = 1 if name == entry else sum(count(c) * n for c, n in callers.get(name, ()))
        return counts[name]

    found = []
    for name, lines in computations.items():
        for line in lines:
            m = _INSTRUCTION.match(line)
            if not m:
                continue
            shape, op = m.group(1), m.group(2)
            kind = op[: -len("-start")] if op.endswith("-start") else op
            if kind not in KINDS:
                continue
            sizes = array_bytes(shape)
            # An async start's result is (operands..., result): the last array is what it produces.
            size = sizes[-1] if op.endswith("-start") and sizes else sum(sizes)
            found.append(Collective(kind, size, replica_groups(line), count(name)))
    return found, all_known


def replica_groups(line: str) -> tuple[tuple[int, ...], ...]:
    m = _GROUPS_IOTA.search(line)
    if m:  # [groups, size] <= [dims] T(perm): iota(dims), transposed, reshaped to the groups
        shape = [int(x) for x in m.group(1).split(",")]
        dims = [int(x) for x in m.group(2).split(",")]
        ids = np.arange(math.prod(dims)).reshape(dims)
        if m.group(3):
            ids = ids.transpose([int(x) for x in m.group(3).split(",")])
        return tuple(tuple(int(i) for i in row) for row in ids.reshape(shape[0], -1))
    m = _GROUPS_LIST.search(line)
    if m and m.group(1):
        return tuple(tuple(int(i) for i in g.split(",") if i) for g in re.findall(r"\{([\d,]*)\}", m.group(1)))
    return ()


def summary(found: list[Collective]) -> dict[str, dict[str, int]]:
    """{kind: {"ops": ops in the program text, "runs": ops run per step, "bytes": bytes per step per device}}."""
    out = {k: {"ops": 0, "runs": 0, "bytes": 0} for k in KINDS}
    for c in found:
        out[c.kind]["ops"] += 1
        out[c.kind]["runs"] += c.count
        out[c.kind]["bytes"] += c.bytes * c.count
    return out
