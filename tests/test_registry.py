"""The architecture registry: rows in typed parts, "like X except", and the quirk objects accessors call."""

import pytest
import torch

from nnterp.core.registry import (
    ARCHITECTURES,
    DEFAULT,
    ArchitectureSpec,
    Codebooks,
    Residual,
    StreamLayout,
    Streams,
    TensorLayout,
    register_architecture,
    spec_for,
)
from nnterp.core.rename import get_rename_dict
from nnterp.core.trace_time import unembed
from nnterp.errors import ArchitectureAlreadyRegistered, InvalidArgument


def test_a_row_names_facts_of_any_part_flat_and_leaves_its_parent_alone():
    row = DEFAULT.like(residual=Residual.PARALLEL, mlp_output=("fc2",), sequence_first=True, attention_sinks=True,
                       note="example")
    assert (row.blocks.residual, row.paths.mlp_output, row.layout.sequence_first) == \
        (Residual.PARALLEL, ("fc2",), True)
    assert row.attention_facts.attention_sinks and row.note == "example"
    assert row.paths.layers == DEFAULT.paths.layers
    assert DEFAULT.blocks.residual is Residual.SEQUENTIAL and not DEFAULT.layout.sequence_first


def test_an_unknown_fact_is_refused_by_name():
    with pytest.raises(InvalidArgument, match=r"no fact named \['residual_kind'\]"):
        DEFAULT.like(residual_kind=Residual.NONE)


def test_rows_are_specs_and_subclasses_inherit_their_row():
    assert all(isinstance(spec, ArchitectureSpec) for spec in ARCHITECTURES.values())

    class MyFalcon(type("FalconForCausalLM", (), {})):
        pass

    assert spec_for(MyFalcon) is ARCHITECTURES["FalconForCausalLM"]
    assert spec_for(type("UnknownForCausalLM", (), {})) is DEFAULT


def test_registering_refuses_to_shadow_a_row_silently():
    with pytest.raises(ArchitectureAlreadyRegistered, match="already has a registry row") as raised:
        register_architecture("FalconForCausalLM", DEFAULT)
    assert isinstance(raised.value, ValueError)
    original = ARCHITECTURES["FalconForCausalLM"]
    try:
        register_architecture("FalconForCausalLM", DEFAULT, override=True)
        assert ARCHITECTURES["FalconForCausalLM"] is DEFAULT
    finally:
        register_architecture("FalconForCausalLM", original, override=True)


class _Config:
    def __init__(self, **values):
        self.__dict__.update(values)

    def get_text_config(self):
        return self


@pytest.mark.parametrize("layout, native", [
    (StreamLayout.STREAM_AXIS, (2, 5, 3, 4)), (StreamLayout.CONCATENATED, (2, 5, 12)),
    (StreamLayout.LEADING, (3, 2, 5, 4)), (StreamLayout.SEQUENCE, (2, 20, 4))])
def test_streams_serve_every_layout_as_batch_seq_streams_hidden_and_back(layout, native):
    streams = Streams("n", layout)
    config = _Config(n=3)
    value = torch.randn(native)
    view = streams.view(config)
    canonical = view.canonical(value)
    total = streams.total(config)
    assert canonical.shape == (2, 5, total, 4) and total == (4 if layout is StreamLayout.SEQUENCE else 3)
    assert torch.equal(view.native(canonical), value)


def test_one_stream_is_the_null_case():
    single = Streams()
    assert not single and single.count(_Config()) is None and single.total(_Config()) == 1
    assert single.view(_Config()) is None
    assert TensorLayout().layer_view(_Config()) is None and TensorLayout().batch_first_everywhere
    assert not TensorLayout(streams=Streams("n", StreamLayout.LEADING)).batch_first_everywhere


def test_codebooks_stack_one_head_per_codebook_as_the_model_does():
    heads = torch.nn.ModuleList(torch.nn.Linear(4, 7) for _ in range(3))
    hidden = torch.randn(2, 5, 4)
    logits = unembed(heads, hidden, codebooks=True)
    assert logits.shape == (2 * 3, 5, 7)
    assert torch.equal(logits[1], heads[1](hidden[0]))  # rows are (prompt, codebook)
    assert Codebooks("num_codebooks").count(_Config(num_codebooks=3)) == 3 and Codebooks().count(_Config()) == 1
    assert torch.equal(unembed(heads[0], hidden, codebooks=False), heads[0](hidden))


def test_config_switched_logit_transforms_ignore_flags_and_missing_values():
    head = DEFAULT.head
    assert head.active_transforms(_Config()) == []
    assert head.active_transforms(_Config(final_logit_softcapping=None, logit_scale=True)) == []
    (transform, value), = head.active_transforms(_Config(final_logit_softcapping=30.0))
    assert value == 30.0 and torch.allclose(transform(torch.tensor([300.0]), value), torch.tensor([30.0]), atol=1e-3)


def test_the_rename_dict_for_an_unbuilt_model_comes_from_the_default_row():
    mapping = get_rename_dict()
    paths = DEFAULT.paths
    for spelling in paths.embed_tokens_spellings:
        assert mapping[spelling] == "embed_tokens"
    for spelling in paths.lm_head_spellings:
        assert mapping[spelling] == "lm_head"
    assert {mapping[name] for name in paths.attention_aliases} == {"self_attn"}
    assert {mapping[name] for name in paths.mlp_aliases} == {"mlp"}
    assert all(mapping[path] == "layers" for path in paths.layers if "*" not in path)


def test_ergos_row_names_what_its_residual_gates_mix_and_why_no_additive_identity_holds():
    """Ergo (transformers 5.25) joins each normed sublayer output to the stream through a learned per-channel gate:
    attentions_output / mlps_output, through the model's own gates, give the layer output; their plain sum does not."""
    from nnsight import save

    from nnterp.toy import causal_lm_classes
    from nnterp.toy.standardized import standardized_toy

    if "ergo" not in causal_lm_classes():
        pytest.skip("Ergo is not in the installed transformers")
    model = standardized_toy("ergo", enable_attention_probs=False)
    assert model.architecture.spec.blocks.residual is Residual.NONE
    layers = model._module.model.layers
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in layers:  # per-channel gates (a fresh model's are all zero: one scalar gate)
            layer.attention_residual_gate.weight.normal_()
            layer.feedforward_residual_gate.weight.normal_()
        with model.trace("The cat sat on the mat"):
            read = save([])
            for i in range(len(layers)):
                read.append([model.layers_input[i], model.attentions_output[i].clone(), model.mlps_output[i].clone(),
                             model.layers_output[i]])
        for layer, (stream, attention, mlp, output) in zip(layers, read):
            gated = layer.feedforward_residual_gate(mlp, layer.attention_residual_gate(attention, stream))
            torch.testing.assert_close(gated, output)
            assert (output - (stream + attention + mlp)).abs().max() > 0.1 * output.abs().max()
