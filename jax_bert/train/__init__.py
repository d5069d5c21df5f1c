"""The pretraining engine.

    config.py         every config key with its default, and the checks that need no data
    optim.py          clip + AdamW with scheduled lr and b1 (schedules.py); sparse training wraps it
    sparse_config.py  the config's `sparsity` group as masks and their schedule, wrapping the optimizer
    losses.py         MLM and distillation loss sums over the gathered prediction slots
    teachers.py       frozen distillation teachers, loaded and placed on the mesh
    step.py           THE step: state, shardings, the jitted train and eval steps (see its docstring)
    loop.py           run(config, workdir): data, state, steps, evaluation, checkpoints, logs, export
    checkpoint.py     orbax checkpoints of the train state
    sharding.py       the mesh, logical-axis rules, multi-host initialisation
    logs.py           metrics.jsonl and tensorboard
    convert.py        Hugging Face checkpoint <-> work directory
"""
