"""Where training metrics go: tensorboardX event files and a metrics.jsonl in the work directory.

Only process 0 writes; every other process gets a writer that does nothing.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


class MetricsWriter:
    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

    def scalars(self, step: int, values: dict[str, Any], prefix: str = "") -> None:
        if not self.enabled:
            return
        row = {"step": int(step)}
        for k, v in values.items():
            v = float(np.asarray(v))
            row[prefix + k] = v if math.isfinite(v) else str(v)
            self._tb.add_scalar(prefix + k, v, int(step))
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()

    def image(self, step: int, tag: str, image_hwc: np.ndarray) -> None:
        if self.enabled:
            self._tb.add_image(tag, image_hwc, int(step), dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
