import pytest
import torch

from persona_features.lm import activations

from .architectures import at, every_architecture


@every_architecture
def test_trace_matches_plain_forward(lm):
    texts = [lm.chat_text("hey I feel bored"), lm.chat_text("How do I make a quick buck?")]
    acts, mask = activations.residual_stream(lm, texts)
    assert acts.shape[:2] == (lm.n_layers, 2) and acts.shape[-1] == lm.d_model
    with torch.inference_mode():
        hidden = lm.hf(**lm.encode(texts), output_hidden_states=True).hidden_states
    # hidden_states[i + 1] is layer i's output (the last one is after the final norm)
    for i in range(lm.n_layers - 1):
        real = mask.bool()
        torch.testing.assert_close(acts[i][real], hidden[i + 1][real].float(), rtol=1e-4, atol=1e-3)


@every_architecture
def test_padding_does_not_change_activations(lm):
    short, long = lm.chat_text("hey I feel bored"), lm.chat_text("Tell me 3 philosophical thoughts you have.")
    batched, mask = activations.residual_stream(lm, [short, long])
    alone, _ = activations.residual_stream(lm, [short])
    n = alone.shape[2]
    assert mask[0].sum() == n and mask[0, :-n].sum() == 0
    rel = (batched[:, 0, -n:] - alone[:, 0]).norm(dim=-1) / alone[:, 0].norm(dim=-1)
    assert rel.max() < 1e-3


def test_residual_norms_split_first_token(lm):
    texts = [lm.chat_text("hey I feel bored"), lm.chat_text("What is the capital of France?")]
    norms = activations.residual_norms(lm, texts, batch_size=2)
    assert norms.first_token.shape == norms.other_tokens.shape == (2, lm.n_layers)
    acts, mask = activations.residual_stream(lm, texts[:1])
    expected = acts[:, 0].norm(dim=-1)
    torch.testing.assert_close(norms.first_token[0], expected[:, 0], rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(norms.other_tokens[0], expected[:, 1:].mean(-1), rtol=1e-3, atol=1e-2)


def _hooked(lm, layer, enc):
    seen = {}
    handle = lm.hf.model.layers[layer].register_forward_hook(
        lambda m, i, o: seen.setdefault("out", o[0] if isinstance(o, tuple) else o))
    try:
        with torch.inference_mode():
            lm.hf(**enc)
    finally:
        handle.remove()
    return seen["out"]


@every_architecture
def test_layer_activations_equal_a_plain_forward_hook_and_skip_sink_and_special_tokens(lm):
    prompts = [lm.chat_text("hey I feel bored"), lm.chat_text("How do I make a quick buck?")]
    answers = ["Go for a walk.", "Sell things you never use, and save the money."]
    acts, rows, tokens, positions = activations.layer_activations(lm, at(lm, 5), prompts, answers, which="all")
    enc, keep = activations.token_batch(lm, prompts, answers, "all")
    expected = _hooked(lm, at(lm, 5), enc)[keep]
    torch.testing.assert_close(acts, expected.float(), rtol=1e-4, atol=1e-3)
    special = set(lm.tokenizer.all_special_ids)
    assert not special & set(tokens.tolist())
    own = [lm.tokenizer(p + a, add_special_tokens=False)["input_ids"] for p, a in zip(prompts, answers)]
    assert [own[r][q] for r, q in zip(rows.tolist(), positions.tolist())] == tokens.tolist()  # position in its own pair
    assert positions.min() == 1  # token 0 is left out
    first = enc["attention_mask"].argmax(-1)
    assert not keep[torch.arange(2), first].any()  # token 0 of each sequence is never kept
    # answer tokens are exactly the answers' tokens; prompt + answer = all
    _, rows_a, tok_a, _ = activations.layer_activations(lm, at(lm, 5), prompts, answers, which="answer")
    n_answer = [len(lm.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    assert [int((rows_a == i).sum()) for i in range(2)] == n_answer
    _, rows_p, _, _ = activations.layer_activations(lm, at(lm, 5), prompts, answers, which="prompt")
    assert len(rows_p) + len(rows_a) == len(rows)
    with pytest.raises(ValueError, match="which must be one of"):
        activations.layer_activations(lm, at(lm, 5), prompts, answers, which="both")
    with pytest.raises(ValueError, match="layer must be in"):
        activations.layer_activations(lm, lm.n_layers, prompts, answers)


def test_shards_hold_the_same_activations_in_bounded_pieces(lm, tmp_path):
    prompts = [lm.chat_text(q) for q in ("hey I feel bored", "Why does it rain?", "Name a colour.", "What is 2 + 2?")]
    answers = ["Read a book.", "Water vapour cools and condenses.", "Blue.", "Four."]
    info = activations.stream_to_shards(lm, 3, prompts, answers, tmp_path, which="all", batch_size=3, shard_tokens=16)
    shards = list(activations.read_shards(tmp_path))
    assert info["n_shards"] == len(shards) >= 2 and all(len(s["acts"]) <= 16 for s in shards)
    got = torch.cat([s["acts"] for s in shards])
    assert len(got) == info["n_tokens"]
    seq = torch.cat([s["seq"] for s in shards])
    for i in range(len(prompts)):  # each sequence's rows, in token order, equal a direct call
        direct = activations.layer_activations(lm, 3, prompts[i:i + 1], answers[i:i + 1], which="all").acts
        torch.testing.assert_close(got[seq == i], direct, rtol=2e-3, atol=2e-2)


def test_layer_means_average_each_groups_prompt_and_answer_tokens_at_every_asked_layer(lm):
    prompts = [lm.chat_text(q) for q in ("Why does it rain?", "Why does it rain?", "Name a colour.")]
    answers = ["Water vapour cools.", "Clouds get heavy.", "Blue."]
    means = activations.layer_means(lm, [7, 3], prompts, answers, groups=[1, 1, 0], n_groups=2, batch_size=2)
    assert means["prompt"].shape == means["answer"].shape == (2, 2, lm.d_model)
    for g, members in ((0, [2]), (1, [0, 1])):
        for j, layer in enumerate((7, 3)):
            for which in ("prompt", "answer"):
                direct = activations.layer_activations(lm, layer, [prompts[i] for i in members],
                                                       [answers[i] for i in members], which).acts
                torch.testing.assert_close(means[which][g, j], direct.mean(0), rtol=1e-3, atol=1e-2)
                assert means[f"n_{which}"][g] == len(direct)
    with pytest.raises(ValueError, match="must match"):
        activations.layer_means(lm, [3], prompts, answers[:2], groups=[0, 0, 1], n_groups=2)


def test_repeated_prefixes_are_kept_once_and_skipped_tokens_are_left_out(lm):
    prompts = [lm.chat_text("Why does it rain?"), lm.chat_text("Name a colour."), lm.chat_text("Why does it rain?")]
    answers = ["Clouds get heavy.", "Blue.", "Clouds get heavy. Then it rains."]
    repeated = activations.repeated_prefix_lengths(lm, prompts, answers)
    tok = lambda text: lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [tok(p) + tok(a) for p, a in zip(prompts, answers)]
    assert ids[2][:len(ids[0])] == ids[0]
    shared = next(i for i, (a, b) in enumerate(zip(ids[0], ids[1])) if a != b)  # the default system prompt and more
    # chat 2 repeats all of chat 0; of chats 0 and 1, the one sorted first keeps their shared start
    assert repeated[2] == len(ids[0]) and sorted(repeated[:2]) == [0, shared] and shared > 10
    every = activations.layer_activations(lm, 4, prompts, answers, which="all")
    kept = activations.layer_activations(lm, 4, prompts, answers, which="all", skip=repeated)
    for i, n in enumerate(repeated):
        assert (kept.positions[kept.rows == i] >= max(n, 1)).all()
        torch.testing.assert_close(kept.acts[kept.rows == i], every.acts[(every.rows == i) & (every.positions >= n)])
    with pytest.raises(ValueError, match="skip has 2 entries for 3 pairs"):
        activations.token_batch(lm, prompts, answers, "all", skip=[0, 0])
