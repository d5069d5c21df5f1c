"""Convert the encoder between per-layer params (`layer_0`, `layer_1`, ...) and scanned params
(`layers`, every leaf with a leading layer axis), so checkpoints do not depend on `scan_layers`."""
from __future__ import annotations

import jax
import numpy as np


def stack_layers(params: dict, num_layers: int) -> dict:
    encoder = params["bert"]["encoder"]
    if "layers" in encoder:
        return params
    per_layer = [encoder[f"layer_{i}"] for i in range(num_layers)]
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *per_layer)
    return {**params, "bert": {**params["bert"], "encoder": {"layers": stacked}}}


def unstack_layers(params: dict) -> dict:
    encoder = params["bert"]["encoder"]
    if "layers" not in encoder:
        return params
    stacked = encoder["layers"]
    num_layers = jax.tree.leaves(stacked)[0].shape[0]
    layers = {f"layer_{i}": jax.tree.map(lambda x: x[i], stacked) for i in range(num_layers)}
    return {**params, "bert": {**params["bert"], "encoder": layers}}


def match_layout(params: dict, scan_layers: bool, num_layers: int) -> dict:
    """Params in the layout a config with `scan_layers` expects."""
    return stack_layers(params, num_layers) if scan_layers else unstack_layers(params)
