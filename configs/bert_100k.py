"""bert_100k: the original dense BERT-base run, 100k steps (docs/original.md).

    python scripts/pretrain.py --config configs/bert_100k.py --workdir runs/bert_100k

BERT-base (hidden 768, 12 layers, 12 heads, intermediate 3072), bert-base-cased tokenizer, English
Wikipedia + BookCorpus from the Hugging Face hub (first 5% of each held out), blocks of 512 tokens,
whole-word masking 15%, global batch 256, AdamW lr 1e-4 (b1 0.9, b2 0.999, eps 1e-8, wd 0.01 not on
biases/LayerNorm), clip 1.0, 2,000 warm-up steps then linear decay to 0.
Expected result (the original): eval loss 2.154, perplexity 8.619 — on the Wikipedia dump
20200501.en. The hub now serves 20231101.en (what this config reads), so absolute losses cannot be
matched, only the order of the table's rows. To train on an older dump you keep locally, as parquet
files with a `text` column:
    python scripts/pretrain.py --config configs/bert_100k.py --config.data.source=files \
        --config.data.files=/data/wikipedia-20200501.en/*.parquet --config.data.files=/data/bookcorpus/*.parquet
Precision: the original ran its dense models in float32 and its sparse ones in fp16 mixed precision;
these configs compute in bf16 with float32 params, and the vocabulary projection and the losses in
float32 (student and teacher). --config.model.dtype=float32 is the original's dense setting.
Needs the hub (or local copies, as above) and GPUs: 32 V100s took most of a day.
"""
from jax_bert.train.config import BOOKCORPUS, WIKIPEDIA, base_config


def bert_base(c):
    c.model.update(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                   hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02,
                   dtype="bfloat16", scan_layers=True)
    c.tokenizer.name = "bert-base-cased"  # vocab 28,996
    c.data.update(source="hub", datasets=(dict(WIKIPEDIA), dict(BOOKCORPUS)), validation_fraction=0.05)
    c.train.update(global_batch_size=256, seq_len=512, eval_batch_size=256, log_every=100,
                   eval_every=10_000, checkpoint_every=2_000)
    return c


def get_config():
    c = bert_base(base_config())
    c.train.steps = 100_000
    c.optim.update(schedule="warmup_linear", learning_rate=1e-4, warmup_steps=2_000, b1=0.9, b2=0.999,
                   eps=1e-8, weight_decay=0.01, clip=1.0)
    return c
