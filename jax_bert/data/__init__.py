"""The pretraining data pipeline, all numpy on the host.

    documents.load_documents(spec)   -> (train_docs, validation_docs): the offline corpus, hub datasets or files
    tokenizer.get_tokenizer(...)     -> a fast tokenizer: a hub/local name, or a WordPiece vocabulary
                                        trained on the documents and cached in workdir/tokenizer/
    blocks.prepare_blocks(spec, ...) -> (train_blocks, validation_blocks): every document as
                                        [CLS] ... [SEP], concatenated and cut into int32 blocks,
                                        cached on disk
    prepare.prepare(config, ...)     -> a run's tokenizer and block caches on one process or many: opened
                                        without reading a document when they exist (scripts/prepare_data.py)
    mlm_batches.batch_for_step(...)  -> the masked-language-model batch of a training step, a pure
                                        function of (seed, step, process index)
"""
from jax_bert.data.blocks import prepare_blocks, tokenize_to_blocks
from jax_bert.data.documents import (
                                     BOOKCORPUS,
                                     WIKIPEDIA,
                                     data_fingerprint,
                                     datasets_cache_dir,
                                     load_documents,
                                     normalize_spec,
)
from jax_bert.data.tokenizer import SPECIAL_TOKENS, get_tokenizer, tokenizer_fingerprint

__all__ = ["BOOKCORPUS", "SPECIAL_TOKENS", "WIKIPEDIA", "data_fingerprint", "datasets_cache_dir", "get_tokenizer",
           "load_documents",
           "normalize_spec", "prepare_blocks", "tokenize_to_blocks", "tokenizer_fingerprint"]
