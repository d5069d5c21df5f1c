"""Every side-by-side benchmark, outside the library: each measures the project against a peer in the
same run (Hugging Face PyTorch, seeds one after another, data parallelism) and prints ratios.

    presets.py      the model sizes, one definition each
    timing.py       interleaved timing, the CPU-share monitor, fake CPU devices, tables
    pretraining.py  the pretraining step: vs Hugging Face, sparse overheads, GPU tokens/s and MFU
    sharding.py     what each mesh axis costs per device, from the compiled step
    finetuning.py   GLUE fine-tuning: the suite vs Hugging Face, seeds together vs apart, the vmap step
    search.py       a search grid in one program vs its members one by one
    checkpoint.py   what the checkpoint checksums cost
"""
