import torch

from persona_features import generation
from persona_features.data.questions import BETLEY_QUESTIONS, NEUTRAL_PROMPTS

# Prompts of clearly different lengths, so the batch really is padded.
QUESTIONS = [BETLEY_QUESTIONS[1], BETLEY_QUESTIONS[0], NEUTRAL_PROMPTS[0], BETLEY_QUESTIONS[6]]


def test_left_padded_batch_gives_single_prompt_greedy_tokens(lm):
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    lengths = lm.encode(texts)["attention_mask"].sum(1)
    assert lengths.unique().numel() == len(texts)  # padding is exercised
    assert all(generation.greedy_padding_check(lm, texts, max_new_tokens=24))


def test_greedy_padding_check_detects_a_padding_bug(lm, monkeypatch):
    # Break the attention mask: padding then leaks into the computation and the check must fail.
    real_encode = lm.encode

    def unmasked(texts):
        enc = real_encode(texts)
        return {"input_ids": enc["input_ids"], "attention_mask": torch.ones_like(enc["attention_mask"])}

    monkeypatch.setattr(lm, "encode", unmasked)
    texts = [lm.chat_text(q) for _, q in QUESTIONS]
    assert not all(generation.greedy_padding_check(lm, texts, max_new_tokens=24))


def test_same_seed_same_samples_other_seed_differs(lm):
    kw = dict(max_new_tokens=16, temperature=1.0, batch_size=3)
    a = generation.sample_answers(lm, QUESTIONS, 2, seed=5, **kw)
    b = generation.sample_answers(lm, QUESTIONS, 2, seed=5, **kw)
    c = generation.sample_answers(lm, QUESTIONS, 2, seed=6, **kw)
    assert a.equals(b)
    assert not a["answer"].equals(c["answer"])
    assert list(a.columns) == ["question_id", "question", "sample", "answer", "n_tokens", "finished"]
    assert len(a) == 8 and set(a["sample"]) == {0, 1}
    assert (a["n_tokens"] <= 16).all()


def test_answer_lengths_stop_at_end_of_turn():
    new = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 8]])
    assert generation._answer_lengths(new, {2}) == ([2, 4], [True, False])
