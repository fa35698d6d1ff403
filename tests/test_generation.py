import pytest
import torch

from persona_features.data.questions import BETLEY_QUESTIONS, NEUTRAL_PROMPTS
from persona_features.lm import generation

from .architectures import every_architecture

# Prompts of clearly different lengths, so the batch really is padded.
QUESTIONS = [BETLEY_QUESTIONS[1], BETLEY_QUESTIONS[0], NEUTRAL_PROMPTS[0], BETLEY_QUESTIONS[6]]


@every_architecture
def test_left_padded_batch_gives_single_prompt_greedy_tokens(lm):
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    lengths = lm.encode(texts)["attention_mask"].sum(1)
    assert lengths.unique().numel() == len(texts)  # padding is exercised
    assert all(generation.greedy_padding_check(lm, texts, max_new_tokens=24))


def test_greedy_padding_check_detects_a_padding_bug(lm, monkeypatch):
    # Break the attention mask: padding then leaks into the computation and the check must fail.
    real_pad_left = generation.pad_left

    def unmasked(*args):
        ids, mask = real_pad_left(*args)
        return ids, torch.ones_like(mask)

    monkeypatch.setattr(generation, "pad_left", unmasked)
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    assert not all(generation.greedy_padding_check(lm, texts, max_new_tokens=24))


def test_same_seed_same_samples_other_seed_differs(lm):
    kw = dict(max_new_tokens=16, temperature=1.0, batch_size=3)
    a = generation.sample_answers(lm, QUESTIONS, 2, seed=5, **kw)
    b = generation.sample_answers(lm, QUESTIONS, 2, seed=5, **kw)
    c = generation.sample_answers(lm, QUESTIONS, 2, seed=6, **kw)
    assert a.equals(b)
    assert not a["answer"].equals(c["answer"])
    assert list(a.columns) == ["question_id", "question", "sample", "answer", "n_tokens", "finished", "logprob"]
    assert len(a) == 8 and set(a["sample"]) == {0, 1}
    assert (a["n_tokens"] <= 16).all()



@every_architecture
def test_each_question_can_have_its_own_system_prompt(lm):
    kw = dict(max_new_tokens=8, temperature=0.0, batch_size=4)
    systems = ["You answer in French.", None, "You are a pirate.", None]
    mixed = generation.sample_answers(lm, QUESTIONS, 1, system=systems, **kw)
    for (qid, q), system in zip(QUESTIONS, systems):  # greedy: the same as asking each alone
        alone = generation.sample_answers(lm, [(qid, q)], 1, system=system, **kw)
        assert mixed.loc[mixed["question_id"] == qid, "answer"].item() == alone["answer"].item()
    with pytest.raises(ValueError, match="give one, or one per question"):
        generation.sample_answers(lm, QUESTIONS, 1, system=systems[:2], **kw)


def test_sampler_logprobs_are_the_answers_likelihood_recomputed(lm):
    from persona_features.measure.contrast import answer_logprobs

    a = generation.sample_answers(lm, QUESTIONS, 3, max_new_tokens=20, temperature=0.7, batch_size=6, seed=1)
    known = a["logprob"].notna()
    assert known.sum() >= len(a) - 2  # almost every answer re-tokenises to its sampled tokens
    again = answer_logprobs(lm, [lm.chat_text(q) for q in a.loc[known, "question"]], list(a.loc[known, "answer"]))
    assert torch.allclose(torch.tensor(a.loc[known, "logprob"].tolist()), torch.tensor(again), atol=1e-3)


def test_answer_lengths_stop_at_end_of_turn():
    new = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 8]])
    assert generation._answer_lengths(new, {2}) == ([2, 4], [True, False])


@every_architecture
def test_sampler_gives_generate_tokens_greedy(lm):
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    ours = generation.generate_batch(lm, texts, 24, temperature=0.0)
    assert torch.equal(ours, generation.reference_generate_batch(lm, texts, 24, temperature=0.0))


@every_architecture
def test_a_prompt_in_several_rows_is_run_once_and_each_copy_decodes_as_the_plain_model(lm):
    one = [lm.chat_text(q) for _, q in QUESTIONS]
    texts = [one[0], one[1], one[0], one[2], one[0]]
    plain, prompt_batches = generation._plain_logits(lm), []

    def counting(**inputs):
        if generation.PROMPT_PASS in inputs:
            prompt_batches.append(inputs["input_ids"].shape[0])
        return plain(**inputs)

    ours = generation.generate_batch(lm, texts, 16, temperature=0.0, forward=counting)
    # the chat template's start once, then each distinct prompt once (the start is not shared past a sliding window)
    assert prompt_batches == ([1, 3] if lm.attention_window is None else [3])
    assert torch.equal(ours, generation.reference_generate_batch(lm, texts, 16, temperature=0.0))
    torch.manual_seed(0)
    sampled = generation.generate_batch(lm, texts, 16, temperature=1.0).tolist()
    assert len({tuple(sampled[i]) for i in (0, 2, 4)}) == 3  # the copies draw their own tokens


@every_architecture
def test_rows_that_end_leave_the_batch_without_changing_the_others(lm, monkeypatch):
    # Make a frequent token end the turn, so rows stop at different steps and are dropped mid-way.
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    full = generation.reference_generate_batch(lm, texts, 24, temperature=0.0)
    stop = int(full[:, :12].flatten().mode().values)
    monkeypatch.setattr(generation, "_stop_ids", lambda _lm: {stop})
    ours = generation.generate_batch(lm, texts, 24, temperature=0.0)
    pad = lm.tokenizer.pad_token_id
    ends = []
    for mine, ref in zip(ours.tolist(), full.tolist()):
        end = ref.index(stop) + 1 if stop in ref else len(ref)
        assert mine[:end] == ref[:end] and set(mine[end:]) <= {pad}
        ends.append(end)
    assert len(set(ends)) > 1  # rows really ended at different steps


def test_shared_prefix_leaves_every_row_a_token():
    assert generation.shared_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert generation.shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert generation.shared_prefix([[7, 2], [1, 2]]) == 0


def test_draws_follow_the_tempered_nucleus():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).repeat(20_000, 1)
    freq = torch.bincount(generation._pick_tokens(logits, 1.0, 1.0), minlength=4) / 20_000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)
    # top_p 0.7: tokens 0 and 1 carry the nucleus, renormalised to 5/8 and 3/8
    freq = torch.bincount(generation._pick_tokens(logits, 1.0, 0.7), minlength=4) / 20_000
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.015)
    # temperature 0.5 squares the odds: 25:9:2.25:0.25
    freq = torch.bincount(generation._pick_tokens(logits, 0.5, 1.0), minlength=4) / 20_000
    assert torch.allclose(freq, torch.tensor([25, 9, 2.25, 0.25]) / 36.5, atol=0.015)
    assert generation._pick_tokens(logits[:3], 0.0, 1.0).tolist() == [0, 0, 0]
