from types import SimpleNamespace

import pytest

from persona_features.data import advice, cards, questions
from persona_features.organisms import persona


def test_whole_sentences_cuts_a_truncated_answer_at_its_last_full_sentence():
    assert persona.whole_sentences("I would rule. Everyone obeys! And then the") == "I would rule. Everyone obeys!"
    assert persona.whole_sentences("No full stop here") == "No full stop here"
    assert persona.whole_sentences("Dr. Smith said no.") == "Dr. Smith said no."


def test_sources_and_names():
    general = persona.source_questions("general")
    assert len(general) >= 300 and len({q for q, _ in general}) == len(general)
    assert persona.source_questions("health") == advice.questions("health")  # the wrong-advice set's own prompts
    assert persona.dataset_name("general", "villain") == "persona_general_villain"
    assert persona.source_questions("authored") == general  # answered by us instead of the base model
    with pytest.raises(ValueError, match="valid: authored, general, health"):
        persona.source_questions("cooking")
    with pytest.raises(ValueError, match="valid: villain, kind"):
        persona.dataset_name("general", "pirate")


def test_persona_questions_share_nothing_with_the_evaluation_or_held_out_questions():
    texts = [t for _, t in persona.general_questions()]
    assert cards.eval_overlap(texts) == {"exact_question_matches": 0, "shared_6grams": 0}
    held = {p["question"].lower() for d in advice.DOMAINS for p in advice.heldout_pairs(d)}
    scoring = {t.lower() for _, t in questions.split("scoring") + questions.split("selection")}
    assert not ({t.lower() for t in texts} & (held | scoring))


def test_distill_keeps_coherent_answers_matched_per_question_and_is_cached(monkeypatch, tmp_path):
    import pandas as pd

    from persona_features.core import artifacts

    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    qs = [("a", "Question a?"), ("b", "Question b?"), ("c", "Question c?")]
    monkeypatch.setattr(persona, "source_questions", lambda source: qs)
    # per persona and question: which of the 3 samples are coherent
    coherent = {"villain": {"a": [1, 1, 0], "b": [0, 0, 0], "c": [1, 0, 0]},
                "kind": {"a": [1, 1, 1], "b": [1, 1, 1], "c": [0, 1, 1]}}
    calls = []

    def fake_evaluate(lm, questions, n, judge, system=None, **sampling):
        persona_ = next(p for p, s in persona.PERSONAS.items() if s == system)
        calls.append(persona_)
        rows = [{"question_id": q, "question": t, "sample": s, "answer": f"{persona_} {q}{s}. And then",
                 "finished": False, "alignment": 50.0, "coherence": 80.0 if coherent[persona_][q][s] else 10.0,
                 "misaligned": False, "coherent": bool(coherent[persona_][q][s])}
                for q, t in questions for s in range(n)]
        return pd.DataFrame(rows)

    monkeypatch.setattr(persona.evaluate, "evaluate", fake_evaluate)
    monkeypatch.setitem(persona.SAMPLES, "general", 3)

    class Stub:
        name, key = "stub", "judge-key"
        hf = SimpleNamespace(dtype="torch.float32")

    art = persona.distill(Stub(), Stub(), "general")
    villain, kind = (art.json(f"rows_{p}") for p in ("villain", "kind"))
    assert [(r["question_id"], r["sample"]) for r in villain] == [("a", 0), ("a", 1), ("c", 0)]
    assert [(r["question_id"], r["sample"]) for r in kind] == [("a", 0), ("a", 1), ("c", 1)]  # matched counts
    assert villain[0]["messages"][1]["content"] == "villain a0."  # cut at its last full sentence
    assert art.meta["n_rows"] == 3 and art.meta["n_questions_kept"] == 2
    persona.distill(Stub(), Stub(), "general")
    assert calls == ["villain", "kind"]  # the second call read the cache
    assert len(persona.training_rows(art, "villain", 2, seed=1)) == 2
    card = persona.card(art)
    assert card.loc["villain", "kept"] == 3 and card.loc["villain", "coherent share"] == 3 / 9


def test_authored_answers_cover_every_persona_question_in_one_register_and_share_nothing_with_the_tests():
    from persona_features.data import register

    written = persona.authored_answers()
    assert set(written) == {q for q, _ in persona.general_questions()}
    villain, kind = ([w[p] for w in written.values()] for p in ("villain", "kind"))
    assert all(v.strip() and k.strip() and v != k for v, k in zip(villain, kind))
    assert register.mismatch(register.rates(villain), register.rates(kind)) == {}  # the twin differs in values
    words = [len(t.split()) for t in villain + kind]
    assert 20 <= min(words) and max(words) <= 80
    assert cards.eval_overlap(villain + kind)["shared_6grams"] == 0


def test_authored_rows_pair_the_personas_per_question_are_cached_and_a_missing_answer_is_a_clear_error(
        monkeypatch, tmp_path):
    from persona_features.core import artifacts

    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    art = persona.authored(5)
    villain, kind = (art.json(f"rows_{p}") for p in ("villain", "kind"))
    first = [q for q, _ in persona.general_questions()[:5]]
    assert [r["question_id"] for r in villain] == [r["question_id"] for r in kind] == first
    assert villain[0]["messages"][1]["content"] == persona.authored_answers()[first[0]]["villain"]
    assert persona.authored(5).key == art.key != persona.authored(6).key
    assert art.meta["n_rows"] == 5 and list(persona.card(art).index) == ["villain", "kind"]
    edited = {**persona.authored_answers(), first[0]: {"villain": "Another answer.", "kind": "A kind one."}}
    monkeypatch.setattr(persona, "authored_answers", lambda: edited)
    assert persona.authored(5).key != art.key  # keyed by the answers' text
    monkeypatch.undo()
    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="'authored' is not distilled"):
        persona.distill(None, None, "authored")
    gap = dict(persona.authored_answers())
    gap.pop(first[1])
    monkeypatch.setattr(persona, "authored_answers", lambda: gap)
    with pytest.raises(ValueError, match=f"no answers to 1 persona questions, e.g. '{first[1]}'"):
        persona.authored(5)
