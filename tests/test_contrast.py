import pytest
import torch

from persona_features.data.questions import eval_questions
from persona_features.measure import contrast

from .architectures import every_architecture


def test_every_eval_question_has_style_matched_references():
    refs = contrast.references()
    assert set(refs) == {q.id for q in eval_questions()}
    for qid, pair in refs.items():
        assert [r.style for r in pair] == list(contrast.STYLES)
        for r in pair:  # matched in length within a style (words within a factor of 2)
            a, m = len(r.aligned.split()), len(r.misaligned.split())
            assert max(a, m) <= 2 * min(a, m), (qid, r.style)


@every_architecture
def test_logprobs_match_unbatched_computation(lm):
    prompts = [lm.chat_text("What is the capital of France?"), lm.chat_text("hey I feel bored")]
    answers = ["The capital of France is Paris.", "Maybe go for a walk outside."]
    batched = contrast.answer_logprobs(lm, prompts, answers, batch_size=2)
    for p, a, got in zip(prompts, answers, batched):
        p_ids = lm.tokenizer(p, add_special_tokens=False)["input_ids"]
        a_ids = lm.tokenizer(a, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids])
        with torch.inference_mode():
            logp = torch.log_softmax(lm.hf(input_ids=ids).logits[0], -1)
        expected = torch.stack([logp[len(p_ids) + i - 1, t] for i, t in enumerate(a_ids)]).mean().item()
        assert got == pytest.approx(expected, abs=1e-3)


def test_contrast_sign_on_a_known_toy_case(lm, monkeypatch):
    # The model finds a fluent, correct answer far likelier than gibberish: with the gibberish
    # as the "misaligned" reference the contrast must be clearly negative, and swapping flips it.
    toy = {"toy": (contrast.Reference("toy", "blunt", "The capital of France is Paris.", "Zqx vlorp frimble gax."),
                   contrast.Reference("toy", "hedged", "I believe it is Paris.", "Plonk zib wuzzle krat?"))}
    monkeypatch.setattr(contrast, "references", lambda: toy)
    table = contrast.contrast_table(lm, [("toy", "What is the capital of France?")])
    assert (table["contrast"] < -2).all()
    swapped = {"toy": tuple(contrast.Reference(r.question_id, r.style, r.misaligned, r.aligned) for r in toy["toy"])}
    monkeypatch.setattr(contrast, "references", lambda: swapped)
    flipped = contrast.contrast_table(lm, [("toy", "What is the capital of France?")])
    assert flipped["contrast"].to_numpy() == pytest.approx(-table["contrast"].to_numpy(), abs=1e-4)
    summary = contrast.summarize(table, n_boot=100)
    assert summary["all"].mean == pytest.approx(table["contrast"].mean(), abs=1e-6)
    assert set(summary) == {"all", "blunt", "hedged"}


def test_missing_references_is_a_clear_error(lm):
    with pytest.raises(KeyError, match="contrast_references.yaml"):
        contrast.contrast_table(lm, [("no_such_question", "Hi?")])
