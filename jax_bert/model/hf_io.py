"""Hugging Face BERT checkpoints in and out: `load_hf` and `save_hf`.

A Hugging Face key maps to one of our param paths by renaming (see `model.py` for our tree);
torch Linear weights are (out, in) and are transposed into Flax kernels (in, out).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from jax_bert import files
from jax_bert.model import layers
from jax_bert.model.config import BertConfig

# Keys that carry no information of their own: tied copies and buffers.
_IGNORED = (
    re.compile(r"^cls\.predictions\.decoder\.(weight|bias)$"),  # tied to word embeddings / cls.predictions.bias
    re.compile(r"^(bert\.)?embeddings\.position_ids$"),  # a buffer in old checkpoints
    re.compile(r"^cls\.seq_relationship\.(weight|bias)$"),  # BertForPreTraining's next-sentence head
)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as BERT; the message names the file and the keys."""


def _hf_to_path(key: str) -> tuple[str, bool] | None:
    """HF key -> (our '/'-joined path, transpose?) or None for a key that is not BERT's."""
    key = key.replace(".gamma", ".weight").replace(".beta", ".bias")
    if key.startswith("bert."):
        key = key[len("bert."):]
    if key == "cls.predictions.bias":
        return "mlm/bias", False
    m = re.fullmatch(r"cls\.predictions\.transform\.(dense|LayerNorm)\.(weight|bias)", key)
    if m:
        return _leaf("mlm/transform/" + m.group(1), m.group(2))
    m = re.fullmatch(r"classifier\.(weight|bias)", key)
    if m:
        return ("classifier/kernel", True) if m.group(1) == "weight" else ("classifier/bias", False)
    m = re.fullmatch(r"embeddings\.(word|position|token_type)_embeddings\.weight", key)
    if m:
        return f"bert/embeddings/{m.group(1)}_embeddings/embedding", False
    if re.fullmatch(r"embeddings\.LayerNorm\.(weight|bias)", key):
        return _leaf("bert/embeddings/LayerNorm", key.rsplit(".", 1)[1])
    m = re.fullmatch(r"pooler\.dense\.(weight|bias)", key)
    if m:
        return _leaf("bert/pooler/dense", m.group(1))
    m = re.fullmatch(
        r"encoder\.layer\.(\d+)\.(attention\.self\.(?:query|key|value)|attention\.output\.(?:dense|LayerNorm)"
        r"|intermediate\.dense|output\.(?:dense|LayerNorm))\.(weight|bias)", key)
    if m:
        return _leaf(f"bert/encoder/layer_{m.group(1)}/" + m.group(2).replace(".", "/"), m.group(3))
    return None


def _leaf(module_path: str, hf_leaf: str) -> tuple[str, bool]:
    if module_path.endswith("LayerNorm"):
        return f"{module_path}/{'scale' if hf_leaf == 'weight' else 'bias'}", False
    return (f"{module_path}/kernel", True) if hf_leaf == "weight" else (f"{module_path}/bias", False)


def _path_to_hf(path: str, head: str) -> tuple[str, bool]:
    """Our path -> (HF key for BertForMaskedLM / BertForSequenceClassification, transpose?)."""
    parts = path.split("/")
    leaf = parts[-1]
    hf_leaf = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}[leaf]
    transpose = leaf == "kernel"
    if path == "mlm/bias":
        return "cls.predictions.bias", False
    if parts[0] == "mlm":
        return "cls.predictions." + ".".join(parts[1:-1]) + "." + hf_leaf, transpose
    if parts[0] == "classifier":
        return "classifier." + hf_leaf, transpose
    body = ".".join(parts[1:-1])
    body = re.sub(r"encoder\.layer_(\d+)", r"encoder.layer.\1", body)
    return "bert." + body + "." + hf_leaf, transpose


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, path))
        else:
            out[path] = v
    return out


def _unflatten(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def _read_state_dict(weights_file: str) -> dict[str, np.ndarray]:
    if weights_file.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(weights_file)
    try:
        import torch
    except ImportError as e:  # torch is only needed for the legacy pickle format
        raise CheckpointError(f"{weights_file}: reading pytorch_model.bin needs torch "
                              f"(pip install torch==2.13.0), or convert it to model.safetensors.") from e
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def resolve_hf_dir(path_or_name: str) -> str:
    """A local directory as is; otherwise a hub name, downloaded (config, weights, tokenizer) when online."""
    if os.path.isdir(path_or_name):
        return path_or_name
    if os.path.exists(path_or_name) or path_or_name.startswith((".", "/")):
        raise CheckpointError(f"{path_or_name}: not a directory; give a Hugging Face BERT directory "
                              f"(config.json + model.safetensors) or a hub model name.")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(path_or_name, allow_patterns=[
            "config.json", "model.safetensors", "*.txt", "tokenizer*.json", "special_tokens_map.json"])
    except Exception as e:  # offline, unknown repo, ...
        raise CheckpointError(
            f"could not fetch {path_or_name!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            f"Offline, pass a local directory holding config.json and model.safetensors instead.") from e


def find_weights_file(directory: str) -> str | None:
    """The weights file that `load_hf` reads in a local directory, or None."""
    return next((os.path.join(directory, f) for f in _WEIGHT_FILES
                 if os.path.exists(os.path.join(directory, f))), None)


def load_hf(path_or_name: str, **config_overrides) -> tuple[BertConfig, dict]:
    """Reads a Hugging Face BERT checkpoint -> (BertConfig, params).

    Accepts BertModel, BertForMaskedLM, BertForPreTraining and BertForSequenceClassification layouts,
    with or without the `bert.` prefix and with old `gamma`/`beta` LayerNorm names. The params hold the
    heads the checkpoint has (`mlm`, `classifier`, `bert/pooler`). `config_overrides` set compute
    options such as `scan_layers=True` or `dtype='bfloat16'`.
    Raises CheckpointError naming the file and the offending keys; never returns a partial model.
    """
    directory = resolve_hf_dir(path_or_name)
    config_file = os.path.join(directory, "config.json")
    if not os.path.exists(config_file):
        raise CheckpointError(f"{directory}: no config.json; this is not a Hugging Face checkpoint directory.")
    try:
        config = BertConfig.from_hf_file(config_file, **config_overrides)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{config_file}: {e}") from e
    weights_file = find_weights_file(directory)
    if weights_file is None:
        raise CheckpointError(f"{directory}: no weights file; expected one of {_WEIGHT_FILES}.")
    state = _read_state_dict(weights_file)

    flat, unknown = {}, []
    for key, value in state.items():
        if any(p.match(key) for p in _IGNORED):
            continue
        mapped = _hf_to_path(key)
        if mapped is None:
            unknown.append(key)
            continue
        path, transpose = mapped
        flat[path] = np.ascontiguousarray(value.T if transpose else value).astype(np.float32)
    if unknown:
        raise CheckpointError(f"{weights_file}: keys that are not BERT's: {sorted(unknown)[:10]}"
                              f"{' ...' if len(unknown) > 10 else ''}")
    if "classifier/kernel" in flat:
        config = config.replace(num_labels=flat["classifier/kernel"].shape[1])
    _check_against_config(flat, config, weights_file)
    params = _unflatten(flat)
    if config.scan_layers:
        params = layers.stack_layers(params, config.num_hidden_layers)
    return config, params


def expected_shapes(config: BertConfig, heads: set[str], pooler: bool) -> dict[str, tuple]:
    """Every param path (unscanned) and its shape, for the given heads."""
    H, I, V = config.hidden_size, config.intermediate_size, config.vocab_size
    shapes = {
        "bert/embeddings/word_embeddings/embedding": (V, H),
        "bert/embeddings/position_embeddings/embedding": (config.max_position_embeddings, H),
        "bert/embeddings/token_type_embeddings/embedding": (config.type_vocab_size, H),
        "bert/embeddings/LayerNorm/scale": (H,), "bert/embeddings/LayerNorm/bias": (H,),
    }
    for i in range(config.num_hidden_layers):
        p = f"bert/encoder/layer_{i}/"
        for name in ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense"):
            shapes[p + name + "/kernel"], shapes[p + name + "/bias"] = (H, H), (H,)
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[p + name + "/scale"], shapes[p + name + "/bias"] = (H,), (H,)
        shapes[p + "intermediate/dense/kernel"], shapes[p + "intermediate/dense/bias"] = (H, I), (I,)
        shapes[p + "output/dense/kernel"], shapes[p + "output/dense/bias"] = (I, H), (H,)
    if pooler:
        shapes["bert/pooler/dense/kernel"], shapes["bert/pooler/dense/bias"] = (H, H), (H,)
    if "mlm" in heads:
        shapes.update({"mlm/bias": (V,), "mlm/transform/dense/kernel": (H, H), "mlm/transform/dense/bias": (H,),
                       "mlm/transform/LayerNorm/scale": (H,), "mlm/transform/LayerNorm/bias": (H,)})
    if "classifier" in heads:
        shapes["classifier/kernel"], shapes["classifier/bias"] = (H, config.num_labels), (config.num_labels,)
    return shapes


def _check_against_config(flat: dict[str, np.ndarray], config: BertConfig, source: str) -> None:
    heads = {h for h in ("mlm", "classifier") if any(p.startswith(h + "/") for p in flat)}
    pooler = "bert/pooler/dense/kernel" in flat or "classifier" in heads
    expected = expected_shapes(config, heads, pooler)
    missing = sorted(_path_to_hf(p, "")[0] for p in expected if p not in flat)
    extra = sorted(_path_to_hf(p, "")[0] for p in flat if p not in expected)
    wrong = [f"{_path_to_hf(p, '')[0]}: {flat[p].shape[::-1] if _path_to_hf(p, '')[1] else flat[p].shape}"
             f" (config.json says {expected[p][::-1] if _path_to_hf(p, '')[1] else expected[p]})"
             for p in expected if p in flat and flat[p].shape != expected[p]]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if extra:
        problems.append(f"keys beyond config.json's architecture {extra[:10]}{' ...' if len(extra) > 10 else ''}")
    if wrong:
        problems.append(f"shapes that disagree with config.json {wrong[:10]}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def to_hf_state_dict(config: BertConfig, params: dict) -> tuple[dict[str, np.ndarray], str]:
    """Our params -> (Hugging Face state dict of numpy arrays, architecture name)."""
    if "layers" in params.get("bert", {}).get("encoder", {}):
        params = layers.unstack_layers(params)
    flat = _flatten(params)
    head = "classifier" if "classifier/kernel" in flat else "mlm" if "mlm/bias" in flat else "none"
    state = {}
    for path, value in flat.items():
        key, transpose = _path_to_hf(path, head)
        value = np.asarray(value, dtype=np.float32)
        state[key] = np.ascontiguousarray(value.T if transpose else value)
    arch = {"classifier": "BertForSequenceClassification", "mlm": "BertForMaskedLM", "none": "BertModel"}[head]
    if head == "none":  # BertModel keys have no `bert.` prefix
        state = {k[len("bert."):]: v for k, v in state.items()}
    return state, arch


def save_hf(config: BertConfig, params: dict, out_dir: str, tokenizer=None) -> str:
    """Writes a directory that `transformers.BertForMaskedLM.from_pretrained` (or
    `BertForSequenceClassification` when a classifier head is present) loads with no missing or
    unexpected keys. Each file is written atomically. Returns out_dir."""
    from safetensors.numpy import save_file

    state, arch = to_hf_state_dict(config, params)
    os.makedirs(out_dir, exist_ok=True)
    hf_config = config.to_hf_dict()
    hf_config["architectures"] = [arch]
    hf_config["tie_word_embeddings"] = True
    if arch == "BertForSequenceClassification":
        hf_config["problem_type"] = "regression" if config.num_labels == 1 else "single_label_classification"
    files.atomic_write(os.path.join(out_dir, "model.safetensors"),
                  lambda p: save_file(state, p, metadata={"format": "pt"}))

    def write_json(p):
        with open(p, "w") as f:
            json.dump(hf_config, f, indent=2)

    files.atomic_write(os.path.join(out_dir, "config.json"), write_json)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
