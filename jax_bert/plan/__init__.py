"""What a recipe needs on a cluster, before the cluster is rented: the real train step compiled for N
fake CPU devices (nothing allocated), its state, memory, FLOPs and collectives, and a time projection
for a named accelerator. `scripts/plan.py` is the command.

    recipe.py        a pretraining config -> the model, optimizer, teachers and batch it plans (no data)
    state.py         bytes per device of the state, teachers and batch, from their shardings
    activations.py   the bytes the backward pass keeps per device (an activation model, shapes only)
    flops.py         the analytical FLOPs of a step
    hlo.py           the collectives of a compiled program, with their bytes and loop trip counts
    accelerators.py  the accelerator table (peak FLOP/s, HBM, links), each figure with its source
    projection.py    roofline and MFU step times, whether it fits
    planner.py       one plan (compile + read), the smallest change that fits, the search over meshes
    report.py        the text a person reads
    command.py       the command line (run in a child process that has the fake devices)
"""
