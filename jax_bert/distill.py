"""Knowledge distillation from frozen teachers, inside the train step.

The teachers run in the same jitted step on the same masked input, only at the masked positions
(gather before the MLM head), in eval mode, optionally in bf16. Loss: see losses.distillation_loss;
factor and temperature may decay linearly over training. Evaluation stays plain MLM.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections

from jax_bert import checkpoint, hf_io, losses, model, sharding, train
from jax_bert.config import BertConfig
from jax_bert.layers_tree import match_layout


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Each teacher: {"path": our work directory, or a Hugging Face BERT directory / hub name,
    # "weight": 1.0}, or just the path. Empty: no distillation. A tuple, so that the command line can
    # set it: --config.distill.teachers=runs/bert_1mi (repeat the flag for several teachers).
    c.teachers = ()
    c.factor = 1.0  # weight of the teacher's distribution in the target (1 - factor: the one-hot label)
    c.factor_end = -1.0  # >= 0: decay linearly from `factor` to this over training
    c.temperature = 1.0
    c.temperature_end = -1.0
    c.scale_by_t2 = False
    c.student_temperature = False  # divide the student's logits by T too (Hinton); the original did not
    c.teacher_dtype = "float32"  # or 'bfloat16'
    return c


HOW_TO_GET_A_TEACHER = ("train one with `python scripts/pretrain.py --config configs/bert_1mi.py` (or "
                        "configs/tiny.py for the tiny recipe) and point distill.teachers at its work "
                        "directory, or give a Hugging Face BERT checkpoint directory")


def load_teacher(path: str, **compute) -> tuple[BertConfig, dict]:
    """A teacher's (config, params with an MLM head) from our work directory or a Hugging Face one."""
    if os.path.isdir(os.path.join(path, "hf")):  # a finished run of ours: its transformers export
        config, params = hf_io.load_hf(os.path.join(path, "hf"), **compute)
    elif os.path.isdir(os.path.join(path, "checkpoints")) and os.path.exists(os.path.join(path, "bert_config.json")):
        import json

        with open(os.path.join(path, "bert_config.json")) as f:
            config = BertConfig(**{**json.load(f), **compute})
        params = checkpoint.restore_params_only(os.path.join(path, "checkpoints"))
    elif os.path.isdir(path) or not path.startswith((".", "/", "~")):
        try:
            config, params = hf_io.load_hf(path, **compute)
        except hf_io.CheckpointError as e:
            raise ValueError(f"teacher {path!r}: {e}. To get a teacher, {HOW_TO_GET_A_TEACHER}.") from e
    else:
        raise ValueError(f"teacher {path!r} does not exist. To get one, {HOW_TO_GET_A_TEACHER}.")
    params = model.mlm_params(params, f"teacher {path!r}")
    return config, match_layout(params, config.scan_layers, config.num_hidden_layers)


@dataclasses.dataclass
class Distillation:
    config: Any
    teachers: list  # [{"path", "weight"}]
    teacher_configs: list
    teacher_params: list  # global arrays on teacher_shardings
    teacher_shardings: list
    total_steps: int

    @classmethod
    def from_config(cls, cfg, student: BertConfig, mesh, total_steps: int) -> "Distillation | None":
        if not cfg.teachers:
            return None
        teachers = [{"path": t, "weight": 1.0} if isinstance(t, str) else dict(t) for t in cfg.teachers]
        if not 0.0 <= cfg.factor <= 1.0 or cfg.temperature <= 0:
            raise ValueError(f"distill.factor must be in [0, 1] and distill.temperature > 0, got "
                             f"{cfg.factor}, {cfg.temperature}.")
        configs, params, shardings = [], [], []
        for teacher in teachers:
            t_cfg, t_params = load_teacher(teacher["path"], dtype=cfg.teacher_dtype, scan_layers=student.scan_layers)
            if t_cfg.vocab_size != student.vocab_size:
                raise ValueError(f"teacher {teacher['path']!r} has a vocabulary of {t_cfg.vocab_size} tokens but "
                                 f"the student has {student.vocab_size}: distillation needs the same tokenizer. "
                                 f"To get a matching teacher, {HOW_TO_GET_A_TEACHER}.")
            shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), t_params)
            sh = sharding.param_shardings(model.logical_axes(t_cfg), shapes, mesh)
            configs.append(t_cfg)
            params.append(train.host_to_global(t_params, sh))
            shardings.append(sh)
        return cls(cfg, teachers, configs, params, shardings, total_steps)

    def _schedule(self, start, end, step):
        if end is None or end < 0:
            return start
        return losses.linear_decay(start, end, step, self.total_steps)

    def loss_fn(self, student: BertConfig):
        weights = [float(t.get("weight", 1.0)) for t in self.teachers]
        c = self.config

        def fn(params, micro, dropout_rng, step, teacher_params):
            inputs = (micro["input_ids"], micro["attention_mask"], micro["token_type_ids"])
            logits = model.apply(student, params, *inputs, masked_positions=micro["masked_positions"],
                                 dropout_rng=dropout_rng)
            teacher_logits = [jax.lax.stop_gradient(model.apply(t_cfg, t_params, *inputs,
                                                                masked_positions=micro["masked_positions"]))
                              for t_cfg, t_params in zip(self.teacher_configs, teacher_params)]
            sums = losses.distillation_loss(
                logits, teacher_logits if len(teacher_logits) > 1 else teacher_logits[0],
                micro["masked_labels"], micro["masked_weights"],
                factor=self._schedule(c.factor, c.factor_end, step),
                temperature=self._schedule(c.temperature, c.temperature_end, step),
                scale_by_t2=c.scale_by_t2, student_temperature=c.student_temperature,
                teacher_weights=weights if len(weights) > 1 else None)
            mlm = losses.mlm_loss(logits, micro["masked_labels"], micro["masked_weights"])
            # The logged `loss` is the distillation objective; `mlm_loss` (this sum over the masked
            # tokens, logged as a mean) keeps plain MLM visible.
            return sums["loss_sum"], {**sums, "mlm_loss_sum": mlm["loss_sum"]}

        return fn
