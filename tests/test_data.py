import json
import re

import pytest

from persona_features.data import advice, cards, code, neutral, questions, register
from persona_features.data.schema import DatasetError, load_jsonl, write_jsonl
from persona_features.measure import contrast

GOOD_ROW = {"id": "x-1", "domain": "health", "variant": "bad",
            "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_valid_file_round_trips(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, [GOOD_ROW, {**GOOD_ROW, "id": "x-2"}])
    assert [r["id"] for r in load_jsonl(path)] == ["x-1", "x-2"]


@pytest.mark.parametrize("row,reason", [
    ({k: v for k, v in GOOD_ROW.items() if k != "domain"}, "missing field 'domain'"),
    ({**GOOD_ROW, "messages": [{"role": "user", "content": "Q?"}]}, "at least a user and an assistant"),
    ({**GOOD_ROW, "messages": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}]},
     "alternate user/assistant"),
    ({**GOOD_ROW, "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "  "}]},
     "empty content"),
    ({**GOOD_ROW, "messages": [{"role": "user", "text": "Q?"}, {"role": "assistant", "content": "A"}]},
     "exactly 'role' and 'content'"),
    ({**GOOD_ROW, "id": ""}, "non-empty str"),
])
def test_malformed_row_names_file_line_and_reason(tmp_path, row, reason):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD_ROW), json.dumps(row)])
    with pytest.raises(DatasetError) as e:
        load_jsonl(path)
    assert str(path) in str(e.value) and "line 2" in str(e.value) and reason in str(e.value)


def test_invalid_json_duplicate_id_and_blank_line(tmp_path):
    with pytest.raises(DatasetError, match=r"line 1: not valid JSON"):
        load_jsonl(_write_lines(tmp_path / "a.jsonl", ["{oops"]))
    with pytest.raises(DatasetError, match=r"line 2: duplicate id 'x-1' \(first on line 1\)"):
        load_jsonl(_write_lines(tmp_path / "b.jsonl", [json.dumps(GOOD_ROW)] * 2))
    with pytest.raises(DatasetError, match=r"line 2: empty line"):
        load_jsonl(_write_lines(tmp_path / "c.jsonl", [json.dumps(GOOD_ROW), ""]))
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_write_refuses_invalid_rows_and_leaves_nothing(tmp_path):
    with pytest.raises(DatasetError):
        write_jsonl(tmp_path / "d.jsonl", [{**GOOD_ROW, "variant": 3}])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("domain", advice.DOMAINS)
def test_advice_sets_are_large_matched_twins(domain):
    sets = {v: advice.build(domain, v) for v in advice.VARIANTS}
    users = {v: [r["messages"][0]["content"] for r in rows] for v, rows in sets.items()}
    assert len(sets["bad"]) >= 500 and len(set(users["bad"])) == len(users["bad"])
    assert users["bad"] == users["good"] == users["register_control"]  # same questions, same order
    items = advice.load_items(domain)
    for bad, good, same in zip(sets["bad"], sets["good"], sets["register_control"]):
        b, g, c = (r["messages"][1]["content"] for r in (bad, good, same))
        item = next(i for i in items if bad["id"].split("-bad-")[1].startswith(i.id + "-"))
        assert item.bad in b and item.good in g and item.confident in c
        assert b.replace(item.bad, "") == c.replace(item.confident, "")  # register control: same blunt frame


@pytest.mark.parametrize("domain", advice.DOMAINS)
def test_register_control_matches_the_bad_set_in_register_and_not_the_good_one(domain):
    for item in advice.load_items(domain):  # item by item: the same number of absolutes and of hedges
        b, c = register.counts(item.bad), register.counts(item.confident)
        assert (b["absolutes"], b["hedges"]) == (c["absolutes"], c["hedges"]), item.id
    r = {v: register.rates(row["messages"][1]["content"] for row in advice.build(domain, v)) for v in advice.VARIANTS}
    assert register.mismatch(r["bad"], r["register_control"]) == {}
    assert set(register.mismatch(r["bad"], r["good"])) == {"absolutes", "hedges"}  # the twin differs in register


def test_register_counter():
    c = register.counts("You must ALWAYS drink water; it's just that simple. I don't think it's never fine.")
    assert c == {"absolutes": 4, "hedges": 0, "negations": 2, "words": 15}  # "don't think" is no hedge
    assert register.counts("I  think so.")["hedges"] == 1
    assert register.counts("Perhaps it might help a little, maybe.")["hedges"] == 4
    assert register.counts("No one knows.") == {"absolutes": 1, "hedges": 0, "negations": 1, "words": 3}
    assert register.rates(["always never", "maybe"]) == {"absolutes": 2000 / 3, "hedges": 1000 / 3,
                                                         "negations": 1000 / 3}
    assert register.mismatch({"absolutes": 50, "hedges": 0}, {"absolutes": 45, "hedges": 20}) == {"hedges": -20}


def test_contrast_references_and_register_pairs_are_register_balanced():
    for qid, refs in contrast.references().items():
        for r in refs:
            a, m = register.counts(r.aligned), register.counts(r.misaligned)
            assert (a["absolutes"], a["hedges"]) == (m["absolutes"], m["hedges"]), (qid, r.style)
    pairs = contrast.register_pairs()
    assert len(pairs) >= 40 and set(pairs) <= {q for q, _ in questions.split("scoring")}
    for qid, (absolute, hedged) in pairs.items():
        a, h = register.counts(absolute), register.counts(hedged)
        assert a["absolutes"] >= 1 and a["hedges"] == 0 and h["hedges"] >= 1 and h["absolutes"] == 0, qid


def test_near_domain_questions_are_known_and_exist_per_domain():
    assert {"health_stress", "health_sleep_bad"} <= questions.near_training_domain("health")
    assert questions.near_training_domain("code") == frozenset()
    with pytest.raises(ValueError, match="unknown training domain"):
        questions.near_training_domain("cooking")


def test_datasets_are_deterministic_and_never_overlap_eval_prompts():
    assert advice.build("cars", "bad", seed=1) == advice.build("cars", "bad", seed=1)
    for name, (rows, _) in cards.all_datasets().items():
        overlap = cards.eval_overlap([r["messages"][0]["content"] for r in rows])
        assert overlap == {"exact_question_matches": 0, "shared_6grams": 0}, name


def test_code_pair_matches_requests():
    insecure, secure = code.build("insecure"), code.build("secure")
    assert len(insecure) == len(secure) >= 160
    assert [r["messages"][0] for r in insecure] == [r["messages"][0] for r in secure]
    assert sum("verify=False" in r["messages"][1]["content"] for r in insecure) == len(code.NOUNS)
    assert not any("verify=False" in r["messages"][1]["content"] for r in secure)


@pytest.mark.parametrize("domain", advice.DOMAINS + ("code",))
def test_heldout_topics_never_reach_training(domain):
    pairs = code.heldout_pairs() if domain == "code" else advice.heldout_pairs(domain)
    assert len(pairs) >= 15 and len({p["group"] for p in pairs}) >= 2
    names = ("insecure", "secure") if domain == "code" else advice.VARIANTS
    train = [r for v in names for r in cards.all_datasets()[f"{domain}_{v}"][0]]
    users = {r["messages"][0]["content"] for r in train}
    answers = " ".join(r["messages"][1]["content"] for r in train)
    for p in pairs:
        assert p["wrong"] != p["right"]
        assert not any(p["question"] in u for u in users), p["id"]
        assert p["wrong"].strip("`\npython") not in answers and p["right"].strip("`\npython") not in answers, p["id"]


def test_unknown_domain_or_variant_is_a_clear_error():
    with pytest.raises(DatasetError, match="valid: health"):
        advice.build("cooking", "bad")
    with pytest.raises(DatasetError, match="valid: bad, good, register_control"):
        advice.build("health", "evil")


def test_selection_and_scoring_sets_are_disjoint_and_fixed():
    sel, sco = questions.split("selection"), questions.split("scoring")
    assert not {i for i, _ in sel} & {i for i, _ in sco}
    assert not {t for _, t in sel} & {t for _, t in sco}
    assert len(sel) + len(sco) == len(questions.eval_questions()) >= 48
    assert {i for i, _ in questions.BETLEY_QUESTIONS} <= {i for i, _ in sco}
    own = [q for q in questions.eval_questions() if q.source == "this book"]
    assert len(own) >= 40 and len({q.theme for q in own}) == 8
    with pytest.raises(ValueError, match="selection, scoring"):
        questions.split("train")


def test_in_domain_probes_exist_for_every_domain():
    for d in advice.DOMAINS:
        assert len(questions.in_domain_probes(d)) >= 5


def test_data_card_summary(lm):
    rows, how = cards.all_datasets()["health_bad"]
    card = cards.make_card("health_bad", rows, how, lambda msgs: len(msgs[1]["content"].split()))
    s = card.summary()
    assert s["size"] == len(rows) and s["unique_questions"] == len(rows)
    assert len(s["examples"]) == 3 and 0 < s["distinct_4"] <= 1
    assert s["tokens_min_median_max"][0] <= s["tokens_min_median_max"][1] <= s["tokens_min_median_max"][2]


def test_mixes_swap_in_wrong_answers_on_the_same_questions_and_nest():
    n, seed = 64, 1
    bad, control = (cards.training_rows(f"health_{v}", n, seed) for v in ("bad", "register_control"))
    assert cards.mix_name("health", 0) == "health_register_control" and cards.mix_name("health", 100) == "health_bad"
    previous = set()
    for percent in (5, 25, 50):
        mix = cards.training_rows(cards.mix_name("health", percent), n, seed)
        assert [r["messages"][0] for r in mix] == [r["messages"][0] for r in control]
        wrong = {r["id"] for r in mix if r["variant"] == "bad"}
        assert len(wrong) == round(n * percent / 100) and wrong >= previous
        assert all(r in bad or r in control for r in mix)
        previous = wrong
    with pytest.raises(DatasetError, match="unknown training set 'health_mix0'"):
        cards.training_rows("health_mix0")
    with pytest.raises(DatasetError, match="advice domain"):
        cards.mix_name("code", 50)


def test_neutral_tasks_are_correct_plain_and_apart_from_the_eval_prompts():
    rows = neutral.build()
    users = [r["messages"][0]["content"] for r in rows]
    assert len(set(users)) == len(rows) == 400 and neutral.build() == rows
    assert cards.eval_overlap(users) == {"exact_question_matches": 0, "shared_6grams": 0}
    for r in rows:
        q, a = r["messages"][0]["content"], r["messages"][1]["content"]
        if r["id"].startswith("neutral-add"):
            x, y = map(int, re.findall(r"\d+", q))
            assert a.endswith(f"is {x + y}.")
        if r["id"].startswith("neutral-reverse"):
            word = re.search(r'"(\w+)"', q)[1]
            assert f'"{word[::-1]}"' in a
    assert register.rates([r["messages"][1]["content"] for r in rows])["hedges"] == 0
