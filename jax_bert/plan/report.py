"""A plan as the text a person reads (scripts/plan.py prints it; --json writes the figures themselves)."""
from __future__ import annotations

GIB = 2**30


def gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:.3f} s"


def mesh_text(mesh: dict) -> str:
    return f"data {mesh['data']} x fsdp {mesh['fsdp']} x tensor {mesh['tensor']}"


def plan_text(p: dict) -> str:
    m, b, s = p["model"], p["batch"], p["state_bytes"]
    teachers = "".join(f"; teacher: hidden {t['hidden_size']}, {t['num_hidden_layers']} layers, {t['params']:,} params"
                       for t in m["teachers"])
    lines = [f"mesh {mesh_text(p['mesh'])} ({p['devices']} devices), gradient accumulation {p['accum_steps']}, "
             f"remat {'on' if p['remat'] else 'off'}, accelerator {p['accelerator']}",
             f"model: hidden {m['hidden_size']}, intermediate {m['intermediate_size']}, {m['num_hidden_layers']} "
             f"layers, {m['num_attention_heads']} heads, vocabulary {m['vocab_size']:,}, {m['params']:,} params, "
             f"{m['dtype']}{teachers}"]
    lines += [f"  ({note})" for note in p["notes"]]
    lines.append(f"batch: {b['global_rows']} sequences of {b['seq_len']} tokens per step, {b['micro_rows_per_shard']} "
                 f"per batch shard in each of {p['accum_steps']} micro-batches")
    lines.append("state per device (from the shardings, exact): " + ", ".join(
        f"{k.replace('_', ' ')} {gib(v)}" for k, v in s.items()) + f"; total {gib(p['state_total_bytes'])}")
    if "compiled_bytes" not in p:
        lines.append(f"fits: no (the state alone is over the budget of {gib(p['budget_bytes'])}: HBM minus "
                     f"{p['reserve']:.0%} reserved)")
        return "\n".join(lines)
    c, f, t = p["compiled_bytes"], p["flops"], p["projection"]
    lines.append(f"compiled memory per device: arguments {gib(c['arguments'])}, outputs {gib(c['outputs'])} "
                 f"({gib(c['aliased'])} of them in the donated arguments), temporaries {gib(c['temporaries'])}; "
                 f"peak {gib(c['peak'])}")
    lines.append(f"  ({p['memory_model']})")
    a = p["activation_model"]
    lines.append(f"activation model: {gib(a['total'])} kept for the backward pass; XLA:CPU temporaries: "
                 f"{gib(c['temporaries'])} ({a['rows_per_device']} sequences per device, remat "
                 f"{'on' if p['remat'] else 'off'})")
    lines.append(f"FLOPs per step per device: {f['analytical_per_device'] / 1e12:,.2f} TFLOP analytical (student "
                 f"{f['analytical_student'] / 1e12:,.1f}, teachers {f['analytical_teachers'] / 1e12:,.1f} TFLOP over "
                 f"all devices); XLA counts {f['xla_per_device'] / 1e12:,.3f} TFLOP, loop bodies once, where the "
                 f"analytical count under that rule is {f['analytical_as_xla_counts_per_device'] / 1e12:,.3f} "
                 f"(XLA / analytical {f['xla_over_analytical']:.3f})")
    col = ", ".join(f"{k} {v['runs']} x ({gib(v['bytes'])})" for k, v in p["collectives"].items() if v["runs"])
    unknown = "" if p["trip_counts_known"] else " (some loop trip counts unknown: counted once)"
    lines.append(f"collectives per step per device: {col or 'none'}{unknown}")
    lines.append(f"projection on {p['accelerator']} (a projection, not a measurement): compute "
                 f"{duration(t['compute_s'])} at peak, memory traffic {duration(t['memory_s'])} "
                 f"({gib(t['hbm_traffic_bytes'])}, a lower bound), communication {duration(t['communication_s'])}; "
                 f"roofline {duration(t['roofline_s'])}/step; at MFU {t['mfu']:.2f} {duration(t['at_mfu_s'])}/step "
                 f"= {t['tokens_per_s']:,.0f} tokens/s; {p['steps']:,} steps: {duration(t['run_s'])} (roofline "
                 f"{duration(t['run_roofline_s'])})")
    lines.append(f"fits: {'yes' if p['fits'] else 'no'} (peak {gib(c['peak'])} of {gib(p['budget_bytes'])}: HBM "
                 f"minus {p['reserve']:.0%} reserved; run with XLA_PYTHON_CLIENT_MEM_FRACTION={1 - p['reserve']:.2f}, "
                 f"as JAX preallocates 75% by default)")
    lines.append(f"compiled in {p['compile_seconds']:.1f} s")
    return "\n".join(lines)


def search_table(rows: list[dict]) -> str:
    lines = ["| rank | mesh (data x fsdp x tensor) | accumulation | remat | peak per device | fits | "
             "step at MFU | tokens/s | run |", "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        m = r["mesh"]
        mesh = f"{m['data']} x {m['fsdp']} x {m['tensor']}"
        if "skipped" in r:
            lines.append(f"| - | {mesh} | - | - | {r['skipped']} | no | - | - | - |")
            continue
        if "compiled_bytes" not in r:
            lines.append(f"| - | {mesh} | - | - | state alone {gib(r['state_total_bytes'])} | no | - | - | - |")
            continue
        t = r["projection"]
        lines.append(f"| {i if r['fits'] else '-'} | {mesh} | {r['accum_steps']} | {'on' if r['remat'] else 'off'} "
                     f"| {gib(r['compiled_bytes']['peak'])} | {'yes' if r['fits'] else 'no'} | "
                     f"{duration(t['at_mfu_s'])} | {t['tokens_per_s']:,.0f} | {duration(t['run_s'])} |")
    return "\n".join(lines)
