# ruff: noqa: E501 - the HLO text keeps its lines as XLA writes them
"""The planner's pure parts: collectives read from HLO text (bytes, replica groups, loop trip counts),
the communication and step-time model, the analytical FLOPs. No compilation."""
import pytest

from jax_bert.model import BertConfig
from jax_bert.plan import accelerators, flops, hlo, projection

# The shape of XLA's text: a layer loop (trip count 12) whose body all-gathers a param shard over groups
# of 2 devices and runs a conditional whose branch all-reduces; the entry all-reduces over 4 devices.
HLO = """HloModule jit_train_step, is_scheduled=true

%add (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %add.1 = f32[] add(f32[] %x, f32[] %y)
}

%update (p: f32[8]) -> f32[8] {
  %p = f32[8]{0} parameter(0)
  ROOT %all-reduce.9 = f32[8]{0} all-reduce(f32[8]{0} %p), channel_id=3, replica_groups=[2,4]<=[8], use_global_device_ids=true, to_apply=%add
}

%keep (p: f32[8]) -> f32[8] {
  ROOT %p = f32[8]{0} parameter(0)
}

%body (state: (s32[], bf16[768,3072])) -> (s32[], bf16[768,3072]) {
  %state = (s32[], bf16[768,3072]{1,0}) parameter(0)
  %shard = bf16[384,3072]{1,0} get-tuple-element((s32[], bf16[768,3072]{1,0}) %state), index=1
  %all-gather.2 = bf16[768,3072]{1,0} all-gather(bf16[384,3072]{1,0} %shard), channel_id=1, replica_groups=[4,2]<=[2,4]T(1,0), dimensions={0}, use_global_device_ids=true
  %conditional.1 = f32[8]{0} conditional(pred[] %c, f32[8]{0} %v, f32[8]{0} %v), branch_computations={%update, %keep}
  ROOT %tuple.1 = (s32[], bf16[768,3072]{1,0}) tuple(s32[] %i, bf16[768,3072]{1,0} %all-gather.2)
}

%cond (state: (s32[], bf16[768,3072])) -> pred[] {
  %state = (s32[], bf16[768,3072]{1,0}) parameter(0)
  ROOT %lt = pred[] compare(s32[] %i, s32[] %n), direction=LT
}

ENTRY %main (a: f32[1024]) -> f32[1024] {
  %a = f32[1024]{0} parameter(0)
  %while.1 = (s32[], bf16[768,3072]{1,0}) while((s32[], bf16[768,3072]{1,0}) %init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"12"}}
  ROOT %all-reduce.1 = f32[1024]{0} all-reduce(f32[1024]{0} %a), channel_id=2, replica_groups={{0,1,2,3},{4,5,6,7}}, use_global_device_ids=true, to_apply=%add
}
"""


def test_collectives_are_read_with_their_bytes_groups_and_trip_counts():
    found, known = hlo.collectives(HLO)
    assert known
    by_name = {(c.kind, c.bytes): c for c in found}
    gather = by_name[("all-gather", 768 * 3072 * 2)]
    assert gather.count == 12  # in the layer loop
    assert gather.groups == ((0, 4), (1, 5), (2, 6), (3, 7))  # iota [2,4] transposed: strided pairs
    entry = by_name[("all-reduce", 1024 * 4)]
    assert entry.count == 1 and entry.groups == ((0, 1, 2, 3), (4, 5, 6, 7))
    branch = by_name[("all-reduce", 8 * 4)]
    assert branch.count == 12 and branch.groups == ((0, 1, 2, 3), (4, 5, 6, 7))  # a branch: as if taken
    summary = hlo.summary(found)
    assert summary["all-gather"] == {"ops": 1, "runs": 12, "bytes": 12 * 768 * 3072 * 2}
    assert summary["all-reduce"] == {"ops": 2, "runs": 13, "bytes": 1024 * 4 + 12 * 32}
    assert summary["reduce-scatter"]["runs"] == 0


def test_an_unknown_trip_count_is_said():
    _, known = hlo.collectives(HLO.replace(', backend_config={"known_trip_count":{"n":"12"}}', ""))
    assert not known


def test_communication_uses_the_link_the_groups_cross():
    a100 = accelerators.accelerator("a100-40gb")
    within = hlo.Collective("all-reduce", 10**9, ((0, 1, 2, 3), (4, 5, 6, 7)), 1)
    across = hlo.Collective("all-reduce", 10**9, ((0, 8), (1, 9)), 1)
    assert not projection.spans_nodes(within.groups, 16, 8) and projection.spans_nodes(across.groups, 16, 8)
    t = projection.communication_seconds([within], 16, a100)
    assert t["total"] == pytest.approx(2 * 3 / 4 * 1e9 / a100.intra_node)
    t = projection.communication_seconds([across], 16, a100)
    assert t["total"] == pytest.approx(2 * 1 / 2 * 1e9 / a100.inter_node)
    # A group of one device moves nothing.
    alone = hlo.Collective("all-reduce", 10**9, ((0,), (1,)), 1)
    assert projection.communication_seconds([alone], 2, a100)["total"] == 0


def test_step_time_is_the_largest_term():
    h100 = accelerators.accelerator("h100-80gb")
    t = projection.step_time(flops_per_device=989e12, dtype="bfloat16", hbm_bytes=3350e9 / 2, comm_seconds=0.25,
                             acc=h100, mfu=0.5)
    assert t["compute_s"] == pytest.approx(1.0) and t["memory_s"] == pytest.approx(0.5)
    assert t["roofline_s"] == pytest.approx(1.0) and t["at_mfu_s"] == pytest.approx(2.0)
    assert projection.step_time(flops_per_device=1e12, dtype="float32", hbm_bytes=0, comm_seconds=0, acc=h100,
                                mfu=1)["compute_s"] == pytest.approx(1e12 / h100.tf32)
    assert projection.fits(72 * 2**30, h100, 0.1) == (True, int(80 * 2**30 * 0.9))
    with pytest.raises(ValueError, match="unknown accelerator 'tpu'; use one of v100-32gb"):
        accelerators.accelerator("tpu")
    assert all(a.source for a in accelerators.ACCELERATORS.values())


def test_analytical_flops_are_six_params_per_token_plus_attention():
    cfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072)
    per_layer_params = 4 * 768 * 768 + 2 * 768 * 3072
    student = flops.step_flops(cfg, (), rows=1, seq_len=512, slots=77)["student"]
    expected = 6 * 512 * 12 * per_layer_params + 3 * 12 * 4 * 512 * 512 * 768 + 6 * 77 * (768 * 768 + 768 * 30522)
    assert student == expected
    two = flops.step_flops(cfg, (cfg,), rows=2, seq_len=512, slots=77)
    assert two["teachers"] == pytest.approx(2 * student / 3)  # a teacher: one forward
    assert flops.step_flops(cfg.replace(remat=True), (), rows=1, seq_len=512, slots=77)["student"] > student
    scanned = cfg.replace(scan_layers=True)
    one_layer = flops.as_xla_counts(scanned, (), micro_rows=1, seq_len=512, slots=77)
    assert one_layer == flops.step_flops(cfg.replace(num_hidden_layers=1), (), rows=1, seq_len=512, slots=77)["total"]
