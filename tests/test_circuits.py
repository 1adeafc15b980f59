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
from nnterp.toolkit.analysis.detectors import detect_heads, detection_targets, detector_scores, excluded_keys
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


def is_target(tokens: list[int], q: int, k: int, kind: str) -> bool:
    """Whether key k is a ``kind`` head's target for query q, spelled out (induction: k == q counts where the
    token repeats at once, as in TransformerLens' pattern)."""
    if kind == "previous_token":
        return k == q - 1
    if kind == "duplicate_token":
        return k < q and tokens[k] == tokens[q]
    return 1 <= k <= q and tokens[k - 1] == tokens[q]


def loop_score(pairs: list[tuple[torch.Tensor, list[int]]], kind: str, average: str = "target_positions",
               exclude_first: bool = False, exclude_current: bool = False) -> float:
    """One head's detector score by explicit loops over (probabilities (q, k), tokens) of each prompt, as
    TransformerLens' "mul" measure: the pattern, its left-out keys (key 0, key q) zeroed, its mass on the targets
    over its whole mass. "target_positions": over the query positions with a target, pooled over prompts;
    "all_positions": over every query position of each prompt, then the mean over prompts."""
    def kept(q: int, k: int) -> bool:
        return not (exclude_first and k == 0) and not (exclude_current and k == q)

    def ratio(parts: list[tuple[torch.Tensor, list[int], int]]) -> float:  # (probabilities, tokens, query)
        on_targets = sum(float(probabilities[q, k]) for probabilities, tokens, q in parts for k in range(len(tokens))
                         if kept(q, k) and is_target(tokens, q, k, kind))
        return on_targets / sum(float(probabilities[q, k]) for probabilities, tokens, q in parts
                                for k in range(len(tokens)) if kept(q, k))
    if average == "all_positions":
        per_prompt = [ratio([(probabilities, tokens, q) for q in range(len(tokens))])
                      for probabilities, tokens in pairs]
        return sum(per_prompt) / len(per_prompt)
    return ratio([(probabilities, tokens, q) for probabilities, tokens in pairs for q in range(len(tokens))
                  if any(kept(q, k) and is_target(tokens, q, k, kind) for k in range(len(tokens)))])


AVERAGES = ("target_positions", "all_positions")
KINDS = ("previous_token", "duplicate_token", "induction")


@pytest.mark.parametrize("average", AVERAGES)
def test_detectors_on_constructed_patterns(average):
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
    for kind in KINDS:
        scores = detector_scores(patterns, detection_targets(ids, kind), average=average)
        expected = torch.tensor([loop_score([(patterns[0, head], tokens)], kind, average) for head in range(3)])
        torch.testing.assert_close(scores, expected)
    perfect = {"target_positions": 1.0, "all_positions": (seq - 1) / seq}  # position 0 has no previous token
    assert detector_scores(patterns, detection_targets(ids, "previous_token"), average=average)[0] == \
        pytest.approx(perfect[average])
    induction_rows = {"target_positions": 1.0, "all_positions": 3 / seq}  # 3 of 8 positions follow a copy
    assert detector_scores(patterns, detection_targets(ids, "induction"), average=average)[1] == \
        pytest.approx(induction_rows[average])
    for side in ("right", "left"):  # pads that would be duplicates (and, on the left, precede a key) if they counted
        padded = torch.zeros(1, 3, seq + 2, seq + 2)
        real = slice(0, seq) if side == "right" else slice(2, seq + 2)
        padded[..., real, real] = patterns
        pad_rows = slice(seq, seq + 2) if side == "right" else slice(0, 2)
        padded[..., pad_rows, :] = 0.5  # pad rows attend anywhere
        pad_ids = torch.tensor([tokens + [3, 5]] if side == "right" else [[5, 9] + tokens])
        mask = torch.tensor([[1] * seq + [0, 0]] if side == "right" else [[0, 0] + [1] * seq])
        for kind in KINDS:
            torch.testing.assert_close(detector_scores(padded, detection_targets(pad_ids, kind, mask), mask, average),
                                       detector_scores(patterns, detection_targets(ids, kind), average=average))
    with pytest.raises(ToolkitInputError, match="no query position has a target"):
        detector_scores(patterns[..., :3, :3], detection_targets(torch.tensor([[1, 2, 3]]), "induction"),
                        average=average)


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("first, current", [(True, False), (False, True), (True, True)])
def test_left_out_keys_on_constructed_patterns(average, first, current):
    """Left-out keys (each prompt's first real token, the query itself) are no targets and leave the whole: the
    scores equal TL's measure spelled out, padded (left, pads holding prompt tokens) or not."""
    tokens = [7, 3, 3, 9, 3, 5, 9, 2]
    seq = len(tokens)
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(1, 3, seq, seq, generator=generator).tril().softmax(-1) * torch.ones(seq, seq).tril()
    patterns = patterns / patterns.sum(-1, keepdim=True)  # causal rows summing to 1
    ids = torch.tensor([tokens])
    padded = torch.zeros(1, 3, seq + 2, seq + 2)
    padded[..., 2:, 2:] = patterns
    padded[..., :2, :] = 0.5
    pad_ids, mask = torch.tensor([[3, 9] + tokens]), torch.tensor([[0, 0] + [1] * seq])
    for kind in KINDS:
        expected = torch.tensor([loop_score([(patterns[0, head], tokens)], kind, average, first, current)
                                 for head in range(3)])
        alone = detector_scores(patterns, detection_targets(ids, kind), None, average,
                                excluded_keys(torch.ones_like(ids), first, current))
        torch.testing.assert_close(alone, expected)
        torch.testing.assert_close(detector_scores(padded, detection_targets(pad_ids, kind, mask), mask, average,
                                                   excluded_keys(mask, first, current)), expected)


def test_left_out_keys_by_hand():
    """A previous-token head (query 0 on itself): leaving out the first token drops query 1's only target and the
    attention on it, so the head scores 1 in both averages (7/8 over all positions otherwise); a head attending only
    to the first token has nothing left, and scores nan."""
    seq = 8
    ids = torch.arange(seq)[None]
    previous = torch.zeros(1, 1, seq, seq)
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, torch.arange(1, seq), torch.arange(seq - 1)] = 1.0
    targets, excluded = detection_targets(ids, "previous_token"), excluded_keys(torch.ones_like(ids), True, False)
    assert detector_scores(previous, targets, average="all_positions").item() == pytest.approx(7 / 8)
    for average in AVERAGES:
        assert detector_scores(previous, targets, None, average, excluded).item() == pytest.approx(1.0)
    sink = torch.zeros(1, 1, seq, seq)
    sink[..., 0] = 1.0
    assert detector_scores(sink, targets, None, "all_positions", excluded).isnan().all()


def test_induction_targets_include_the_query_after_an_immediate_repeat():
    """tokens 7 3 3 5 3: query 2 (the second 3) follows a copy at 1, so key 2 is its target; query 4 (a 3) targets
    keys 2 and 3 (after the 3s at 1 and 2). The targets equal the spelled-out rule, k == q included."""
    tokens = [7, 3, 3, 5, 3]
    targets = detection_targets(torch.tensor([tokens]), "induction")[0]
    assert {(q, k) for q, k in targets.nonzero().tolist()} == {(2, 2), (4, 2), (4, 3)}
    assert all(bool(targets[q, k]) == is_target(tokens, q, k, "induction") for q in range(5) for k in range(5))
    diagonal = torch.eye(5)[None, None]  # a head attending to the query itself
    assert detector_scores(diagonal, targets[None], average="target_positions").item() == pytest.approx(0.5)
    assert detector_scores(diagonal, targets[None], average="all_positions").item() == pytest.approx(1 / 5)


def test_bad_average_is_refused():
    model = standardized_toy("llama")
    with pytest.raises(ToolkitInputError, match=r"average='mean': pass one of \['target_positions', 'all_positions'\]"):
        detect_heads(model, ["ab ab"], average="mean")  # type: ignore[arg-type]
    with pytest.raises(ToolkitInputError, match="average='mean'"):
        detector_scores(torch.eye(3)[None, None], detection_targets(torch.tensor([[1, 2, 3]]), "previous_token"),
                        average="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("average", AVERAGES)
def test_detect_heads_equals_scores_of_hf_attentions(average):
    model = standardized_toy("llama")
    detection = detect_heads(model, length=6, batch=2, average=average)
    ids = detection.tokens
    with torch.no_grad():
        attentions = model._module(input_ids=ids, output_attentions=True).attentions
    for kind, table in detection.scores.items():
        expected = torch.tensor([[loop_score([(layer[row, head], ids[row].tolist()) for row in range(2)], kind, average)
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


def alone_pairs(model, prompts: list[list[int]]) -> dict:
    """(layer, head) -> [(probabilities (q, k), tokens)] of the plain HF forward, one unpadded prompt at a time."""
    pairs: dict = {}
    for tokens in prompts:
        with torch.no_grad():
            attentions = model._module(input_ids=torch.tensor([tokens]), output_attentions=True).attentions
        for layer, probabilities in enumerate(attentions):
            for head in range(model.num_heads):
                pairs.setdefault((layer, head), []).append((probabilities[0, head], tokens))
    return pairs


def assert_scores_equal_loops(model, detection, pairs: dict, average: str, *exclusions: bool) -> None:
    for kind, table in detection.scores.items():
        expected = torch.tensor([[loop_score(pairs[layer, head], kind, average, *exclusions)
                                  for head in range(model.num_heads)] for layer in range(model.num_layers)])
        torch.testing.assert_close(table, expected.to(table.dtype), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("first, current", [(False, False), (True, False), (False, True), (True, True)])
def test_detect_heads_on_padded_prompts_equals_each_prompt_alone(average, first, current):
    """Prompts of different lengths (one with immediate repeats, an induction target at its own query), padded to
    one batch, score as each prompt does alone, with or without the left-out keys; the tokenizer's own output
    (a BatchEncoding) scores as the strings do."""
    model = standardized_toy("llama")
    prompts = ["ab ab ab ab", "xyz", "aa bb aa"]
    options = {"average": average, "exclude_first_token": first, "exclude_current_token": current}
    detection = detect_heads(model, prompts, **options)
    assert (detection.tokens == model.tokenizer.pad_token_id).any()  # padded
    alone = [model.tokenizer(prompt)["input_ids"] for prompt in prompts]
    assert_scores_equal_loops(model, detection, alone_pairs(model, alone), average, first, current)
    encoded = model.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")  # the other side
    for kind, table in detect_heads(model, encoded, **options).scores.items():
        torch.testing.assert_close(table, detection.scores[kind])


@pytest.mark.parametrize("average", AVERAGES)
def test_left_pads_holding_a_prompt_token_are_no_targets(average):
    """Tokenized input left-padded with a token the prompts hold: a pad is neither a query, a key, nor the token
    before an induction target (the first real key follows a pad equal to later queries)."""
    model = standardized_toy("llama")
    long, short = model.tokenizer("ab ab ab")["input_ids"], model.tokenizer("ba ba")["input_ids"]
    pad = short[1]  # "a": the short prompt's later "a"s would target its first real key if the pad counted
    ids = torch.tensor([long, [pad] * (len(long) - len(short)) + short])
    mask = torch.tensor([[1] * len(long), [0] * (len(long) - len(short)) + [1] * len(short)])
    detection = detect_heads(model, {"input_ids": ids, "attention_mask": mask}, average=average)
    assert_scores_equal_loops(model, detection, alone_pairs(model, [long, short]), average)


def test_detect_heads_under_the_server_simulation_equals_the_local_run():
    model = standardized_toy("llama")
    prompts = ["ab ab ab ab", "xyz"]
    for average in AVERAGES:
        local = detect_heads(model, prompts, average=average)
        remote = detect_heads(model, prompts, average=average, remote="local")
        assert local.scores.keys() == remote.scores.keys()
        assert all(torch.equal(local.scores[kind], remote.scores[kind]) for kind in local.scores)
        assert torch.equal(local.tokens, remote.tokens)
