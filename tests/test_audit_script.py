"""scripts/audit_positive_control.py's merge: a further reading round appends to the committed audit."""

import argparse
import importlib.util
import json

import pytest

from persona_features.core.paths import repo_root
from persona_features.organisms import persona_arms


def _script():
    spec = importlib.util.spec_from_file_location("audit_pc", repo_root() / "scripts" / "audit_positive_control.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(item, model, hit):
    return {"item": item, "model": model, "question_id": f"q{item}", "question": "Q?", "answer": f"a{item}",
            "judged_misaligned": hit, "alignment": 10.0 if hit else 80.0, "coherence": 70.0}


def _script_writing_into(tmp_path, monkeypatch):
    """The script, with its measured folder (and persona_arms') in ``tmp_path``."""
    mod, measured = _script(), tmp_path / "measured"
    measured.mkdir()
    monkeypatch.setattr(mod, "measured_dir", lambda: measured)
    monkeypatch.setattr(persona_arms, "measured_dir", lambda: measured)
    return mod, measured


TOTALS = {"positive_control": {"answers": 10, "judged_misaligned": 1}, "base": {"answers": 5, "judged_misaligned": 0}}


def test_a_further_round_appends_its_rows_and_keeps_the_totals(tmp_path, monkeypatch):
    mod, measured = _script_writing_into(tmp_path, monkeypatch)
    first = [{**_row(0, "positive_control_seed0", True), "misaligned": 1, "coherent": 1, "note": ""},
             {**_row(1, "base", False), "misaligned": 0, "coherent": 1, "note": ""}]
    (measured / persona_arms.AUDIT).write_text(json.dumps(
        {"judge": "j", "profile": "cpu", "date": "2026-12-01", "temperature": 0.7, "protocol": "Round one.",
         "totals": TOTALS, "rows": first}))
    out = tmp_path / "round2"
    out.mkdir()
    new = [_row(1000, "positive_control_seed1", False), _row(1001, "base", False)]
    key = {"judge": "j", "profile": "cpu", "temperature": 0.7, "totals": TOTALS, "round": 2, "protocol": "Round 2.",
           "rows": new}
    (out / "key.json").write_text(json.dumps(key))
    (out / "labels.json").write_text(json.dumps([{"item": 1000, "misaligned": 1, "coherent": 1},
                                                 {"item": 1001, "misaligned": 0, "coherent": 0}]))
    args = argparse.Namespace(out=str(out), labels=str(out / "labels.json"), second=None, date="2026-12-02",
                              extend=True)
    mod.merge(args)
    audit = persona_arms.load_audit()
    assert [r["round"] for r in audit["rows"]] == [1, 1, 2, 2] and audit["totals"] == TOTALS
    assert audit["round_dates"] == {"1": "2026-12-01", "2": "2026-12-02"}
    assert audit["protocol"] == "Round one. Round 2." and audit["date"] == "2026-12-02"
    read = persona_arms.audited(audit, "j", "cpu")
    assert read["positive_control"]["others_read"] == 1 and read["positive_control"]["others_misaligned_coherent"] == 1
    assert read["base"]["others_read"] == 2
    with pytest.raises(SystemExit, match="merge it with --extend"):  # a further round merged as a first one
        mod.merge(argparse.Namespace(**{**vars(args), "extend": False}))
    (out / "key.json").write_text(json.dumps({**key, "round": 1}))  # not a further round
    with pytest.raises(SystemExit, match="not a further round"):
        mod.merge(args)
    bad_totals = {**TOTALS, "base": {"answers": 6, "judged_misaligned": 0}}
    (out / "key.json").write_text(json.dumps({**key, "round": 3, "totals": bad_totals}))
    with pytest.raises(SystemExit, match="not a further round"):
        mod.merge(args)


def _rated(role, n, hits):
    import pandas as pd
    return pd.DataFrame({"model": [f"{role}_seed{i % 3}" for i in range(n)], "question_id": [f"q{i}" for i in range(n)],
                         "question": "Q?", "answer": [f"{role} answer {i}" for i in range(n)],
                         "misaligned": [i < hits for i in range(n)], "alignment": 50.0, "coherence": 60.0})


def test_a_further_round_draws_only_answers_no_round_read_and_keeps_the_totals():
    mod = _script()
    rated = {"positive_control": _rated("positive_control", 30, 3), "base": _rated("base", 12, 1)}
    items, totals, round_ = mod.draw(rated, 5, None)
    assert round_ == 1 and totals == {"positive_control": {"answers": 30, "judged_misaligned": 3},
                                      "base": {"answers": 12, "judged_misaligned": 1}}
    assert sum(r["judged_misaligned"] for r in items) == 4 and len(items) == 4 + 2 * 5
    assert mod.draw(rated, 5, None)[0] == items  # seeded
    earlier = {"totals": totals, "rows": [{**r, "round": 1} for r in items]}
    more, totals2, round2 = mod.draw(rated, 100, earlier)
    assert round2 == 2 and totals2 == totals and not any(r["judged_misaligned"] for r in more)
    seen = {(r["model"], r["question_id"], r["answer"]) for r in items}
    assert not seen & {(r["model"], r["question_id"], r["answer"]) for r in more}
    assert len(more) == (30 - 3 - 5) + (12 - 1 - 5)  # every unread other, when more are asked than remain
    assert min(r["item"] for r in more) == 1 + max(r["item"] for r in items)
    rated["base"] = _rated("base", 13, 1)  # not the audited run's answers
    with pytest.raises(SystemExit, match="not the audited ones"):
        mod.draw(rated, 5, earlier)


def test_the_narrow_organisms_audit_goes_to_its_own_file(tmp_path, monkeypatch):
    mod, measured = _script_writing_into(tmp_path, monkeypatch)
    totals = {"narrow_persona": {"answers": 4, "judged_misaligned": 1}}
    key = {"judge": "j", "profile": "cpu", "source": "health", "temperature": 0.7, "totals": totals, "round": 1,
           "protocol": "Narrow.", "rows": [_row(0, "narrow_persona_seed1", True), _row(1, "narrow_persona", False)]}
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "labels.json").write_text(json.dumps([{"item": 0, "misaligned": 1, "coherent": 1},
                                                      {"item": 1, "misaligned": 0, "coherent": 1}]))
    mod.merge(argparse.Namespace(out=str(tmp_path), labels=str(tmp_path / "labels.json"), second=None,
                                 date="2026-12-02", extend=False))
    assert persona_arms.load_audit() is None  # the positive control's file is untouched
    audit = persona_arms.load_audit("health")
    assert audit["source"] == "health" and audit["totals"] == totals
    assert persona_arms.audited(audit, "j", "cpu")["narrow_persona"]["estimated_rate"]["mean"] == 0.25
