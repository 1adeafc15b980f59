"""OV / QK circuits, composition scores and head detectors against manual weight math in plain torch (each head's
weights sliced out of the HF modules by their names) and constructed attention patterns."""

import pytest
import torch

from nnterp.errors import ToolkitInputError
from nnterp.toolkit.analysis.circuits import (
    composition_scores,
    ov_circuits,
    pair_scores,
    qk_circuits,
    singular_directions,
)
from nnterp.toolkit.analysis.detectors import detect_heads, detection_targets, detector_scores
from nnterp.toolkit.analysis.factored import FactoredMatrix
from nnterp.toolkit.analysis.head_matrices import head_weights
from nnterp.toy.standardized import standardized_toy


def manual_heads(model, model_type: str, layer: int) -> tuple[list, list, list, list]:
    """Per query head: (W_Q, W_K, W_V as (hidden, d), W_O as (d, hidden)), sliced by hand from the HF modules."""
    hf, heads = model._module, model.num_heads
    d = model.hidden_size // heads
    if model_type in ("llama", "qwen2"):
        attention = hf.model.layers[layer].self_attn
        group = heads // (attention.k_proj.weight.shape[0] // d)
        rows = lambda weight, head: weight[head * d:(head + 1) * d].T  # noqa: E731
        return ([rows(attention.q_proj.weight, h) for h in range(heads)],
                [rows(attention.k_proj.weight, h // group) for h in range(heads)],
                [rows(attention.v_proj.weight, h // group) for h in range(heads)],
                [attention.o_proj.weight[:, h * d:(h + 1) * d].T for h in range(heads)])
    if model_type == "gpt2":
        attention, hidden = hf.transformer.h[layer].attn, model.hidden_size
        fused = attention.c_attn.weight  # Conv1D: (in, 3 * hidden), queries then keys then values
        return tuple([fused[:, part * hidden + h * d:part * hidden + (h + 1) * d] for h in range(heads)]
                     for part in range(3)) + ([attention.c_proj.weight[h * d:(h + 1) * d] for h in range(heads)],)
    attention = hf.gpt_neox.layers[layer].attention  # GPT-NeoX: rows per head, (q, k, v) interleaved
    fused = attention.query_key_value.weight
    return tuple([fused[h * 3 * d + part * d:h * 3 * d + (part + 1) * d].T for h in range(heads)]
                 for part in range(3)) + ([attention.dense.weight[:, h * d:(h + 1) * d].T for h in range(heads)],)


@pytest.fixture(scope="module", params=["llama", "qwen2", "gpt2", "gpt_neox"])
def toy(request):
    return request.param, standardized_toy(request.param, enable_attention_probs=False)


def test_circuits_equal_manual_weight_products(toy):
    model_type, model = toy
    for layer, weights in head_weights(model).items():
        queries, keys, values, outputs = manual_heads(model, model_type, layer)
        ov, qk = ov_circuits(weights), qk_circuits(weights)
        assert ov.shape == qk.shape == (model.num_heads, model.hidden_size, model.hidden_size)
        for head in range(model.num_heads):
            torch.testing.assert_close(ov.full()[head], values[head] @ outputs[head])
            torch.testing.assert_close(qk.full()[head], queries[head] @ keys[head].T)


def test_composition_scores_equal_dense_frobenius_norms(toy):
    _, model = toy
    first, second = (lambda found: (found[0], found[1]))(head_weights(model, [0, 1]))
    writer = ov_circuits(first).full()
    readers = {"q": qk_circuits(second).full(), "k": qk_circuits(second).full().mT, "v": ov_circuits(second).full()}
    for kind, reader in readers.items():
        expected = torch.tensor([[(writer[e] @ reader[r]).norm() / (writer[e].norm() * reader[r].norm())
                                  for r in range(model.num_heads)] for e in range(model.num_heads)])
        torch.testing.assert_close(composition_scores(model, kind, 0, 1), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ToolkitInputError, match="does not come before"):
        composition_scores(model, "q", 1, 0)


def test_factored_matrix_against_its_full_product():
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(3, 20, 4, generator=generator), torch.randn(3, 4, 30, generator=generator)
    matrix = FactoredMatrix(left, right)
    full = left @ right
    u, s, v = matrix.svd()
    torch.testing.assert_close(u @ torch.diag_embed(s) @ v.mT, full, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s, torch.linalg.svdvals(full)[:, :4], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(matrix.norm(), torch.linalg.matrix_norm(full), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(matrix.T.full(), full.mT)
    other = FactoredMatrix(torch.randn(3, 30, 2, generator=generator), torch.randn(3, 2, 5, generator=generator))
    torch.testing.assert_close((matrix @ other).full(), full @ other.full(), rtol=1e-4, atol=1e-4)
    reader = FactoredMatrix(torch.randn(2, 30, 4, generator=generator), torch.randn(2, 4, 7, generator=generator))
    dense = torch.tensor([[(full[e] @ reader.full()[r]).norm() / (full[e].norm() * reader.full()[r].norm())
                           for r in range(2)] for e in range(3)])
    torch.testing.assert_close(pair_scores(matrix, reader), dense, rtol=1e-4, atol=1e-6)
    top_u, top_s, top_v = singular_directions(matrix, 2)
    assert top_s.shape == (3, 2) and (top_v.gather(-2, top_v.abs().argmax(-2, keepdim=True)) > 0).all()
    torch.testing.assert_close(top_u @ torch.diag_embed(top_s) @ top_v.mT,
                               u[..., :2] @ torch.diag_embed(s[..., :2]) @ v[..., :2].mT, rtol=1e-4, atol=1e-4)


def loop_score(pairs: list[tuple[torch.Tensor, list[int]]], kind: str) -> float:
    """One head's detector score by explicit loops, pooled over (probabilities (q, k), tokens) of each prompt."""
    def is_target(tokens: list[int], q: int, k: int) -> bool:
        if kind == "previous_token":
            return k == q - 1
        if kind == "duplicate_token":
            return k < q and tokens[k] == tokens[q]
        return 1 <= k < q and tokens[k - 1] == tokens[q]
    masses = [sum(float(probabilities[q, k]) for k in range(len(tokens)) if is_target(tokens, q, k))
              for probabilities, tokens in pairs for q in range(len(tokens))
              if any(is_target(tokens, q, k) for k in range(len(tokens)))]
    return sum(masses) / len(masses)


def test_detectors_on_constructed_patterns():
    tokens = [7, 3, 5, 9, 3, 5, 9, 2]
    seq = len(tokens)
    ids = torch.tensor([tokens])
    previous = torch.zeros(seq, seq)
    previous[0, 0] = 1.0
    previous[torch.arange(1, seq), torch.arange(seq - 1)] = 1.0
    induction = torch.tril(torch.ones(seq, seq)) / torch.arange(1, seq + 1)[:, None]  # uniform, then fix the copies
    for q, k in ((4, 2), (5, 3), (6, 4)):  # after an earlier 3, 5, 9: attend to the token that followed it
        induction[q] = 0.0
        induction[q, k] = 1.0
    uniform = torch.tril(torch.ones(seq, seq)) / torch.arange(1, seq + 1)[:, None]
    patterns = torch.stack([previous, induction, uniform])[None]  # (batch 1, 3 heads, q, k)
    for kind in ("previous_token", "duplicate_token", "induction"):
        scores = detector_scores(patterns, detection_targets(ids, kind))
        expected = torch.tensor([loop_score([(patterns[0, head], tokens)], kind) for head in range(3)])
        torch.testing.assert_close(scores, expected)
    assert detector_scores(patterns, detection_targets(ids, "previous_token"))[0] == 1.0
    assert detector_scores(patterns, detection_targets(ids, "induction"))[1] == 1.0
    padded = torch.cat([patterns, torch.zeros(1, 3, seq, 2)], dim=-1)
    padded = torch.cat([padded, torch.full((1, 3, 2, seq + 2), 0.5)], dim=-2)  # pad rows attend anywhere
    mask = torch.tensor([[1] * seq + [0, 0]])
    pad_ids = torch.tensor([tokens + [3, 5]])  # pads that would be duplicates if they counted
    for kind in ("previous_token", "duplicate_token", "induction"):
        torch.testing.assert_close(detector_scores(padded, detection_targets(pad_ids, kind, mask)),
                                   detector_scores(patterns, detection_targets(ids, kind)))
    with pytest.raises(ToolkitInputError, match="no query position has a target"):
        detector_scores(patterns[..., :3, :3], detection_targets(torch.tensor([[1, 2, 3]]), "induction"))


def test_detect_heads_equals_scores_of_hf_attentions():
    model = standardized_toy("llama")
    detection = detect_heads(model, length=6, batch=2)
    ids = detection.tokens
    with torch.no_grad():
        attentions = model._module(input_ids=ids, output_attentions=True).attentions
    for kind, table in detection.scores.items():
        expected = torch.tensor([[loop_score([(layer[row, head], ids[row].tolist()) for row in range(2)], kind)
                                  for head in range(model.num_heads)] for layer in attentions])
        torch.testing.assert_close(table, expected.to(table.dtype), rtol=1e-4, atol=1e-5)
    assert ids.shape == (2, (model.tokenizer.bos_token_id is not None) + 2 * 6)
    assert torch.equal(ids[:, -6:], ids[:, -12:-6])


@pytest.mark.real_model
def test_smollm2_grouped_heads_equal_manual_slices(smollm2_hf):
    from nnterp import StandardizedTransformer

    model = StandardizedTransformer(smollm2_hf[0], tokenizer=smollm2_hf[1])
    weights = head_weights(model, [3, 20])
    assert weights[20].queries.shape == (9, 576, 64) and weights[20].keys.shape == (3, 576, 64)
    for layer, found in weights.items():
        queries, keys, values, outputs = manual_heads(model, "llama", layer)  # 9 query heads over 3 kv heads
        ov, qk = ov_circuits(found).full(), qk_circuits(found).full()
        for head in range(9):
            torch.testing.assert_close(ov[head], values[head] @ outputs[head])
            torch.testing.assert_close(qk[head], queries[head] @ keys[head].T)


@pytest.mark.parametrize("model_type, what", [("qwen3", "queries"),  # q_norm after q_proj
                                              ("opt", "queries"),  # q_proj(x) * scaling
                                              ("deepseek_v2", "keys")])  # MLA: a rotary part shared by the heads
def test_queries_or_keys_changed_after_their_projection_are_refused(model_type, what):
    from nnterp.errors import NotDecomposable

    model = standardized_toy(model_type, enable_attention_probs=False)
    with pytest.raises(NotDecomposable, match=f"layer 0's {what} are not blocks of one linear map's output.*a norm, "
                                              "a scale or a second projection"):
        head_weights(model, 0)


def test_detect_heads_on_padded_prompts_equals_each_prompt_alone():
    model = standardized_toy("llama")
    prompts = ["ab ab ab ab", "xyz"]
    detection = detect_heads(model, prompts)
    pairs: dict = {}
    for prompt in prompts:  # the plain HF forward, one unpadded prompt at a time
        ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            attentions = model._module(input_ids=ids, output_attentions=True).attentions
        for layer, probabilities in enumerate(attentions):
            for head in range(model.num_heads):
                pairs.setdefault((layer, head), []).append((probabilities[0, head], ids[0].tolist()))
    for kind, table in detection.scores.items():
        expected = torch.tensor([[loop_score(pairs[layer, head], kind) for head in range(model.num_heads)]
                                 for layer in range(model.num_layers)])
        torch.testing.assert_close(table, expected.to(table.dtype), rtol=1e-4, atol=1e-5)
