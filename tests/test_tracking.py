import numpy as np
import pandas as pd
import pytest

from persona_features.core import params
from persona_features.core.params import ParameterError
from persona_features.experiments.ch6_early_warning import early_warning as ew, tracking
from persona_features.experiments.ch7_realignment import realignment as ra
from persona_features.organisms import persona


def _mix_table(effects: dict[str, float], percents=(0, 5, 25, 100), seeds=(0, 1), units=12, noise=0.01):
    """Long table whose signal s at mix p is effects[s] * p / 100 plus small per-unit noise."""
    rng = np.random.default_rng(0)
    rows = [{"signal": s, "percent": p, "seed": seed, "unit": f"q{u}",
             "value": effect * p / 100 + noise * rng.standard_normal()}
            for s, effect in effects.items() for p in percents for seed in seeds for u in range(units)]
    return pd.DataFrame(rows)


def test_the_first_separating_mix_follows_the_effect_and_its_sign():
    table = _mix_table({"strong": 1.0, "falling": -1.0, "flat": 0.0})
    tests = tracking.against(table, "percent", 0, n_boot=200, seed=0)
    assert set(tests["percent"]) == {5, 25, 100} and (tests["n_units"] == 12).all()
    first = tracking.first_separation(tests, "percent", 100)
    assert first["strong"] == 5 and first["falling"] == 5 and first["flat"] is None
    scaled = tracking.normalised(tests, "percent", 100).set_index(["signal", "percent"])
    assert scaled.loc[("strong", 100), "difference"] == pytest.approx(1.0)
    assert scaled.loc[("falling", 25), "difference"] == pytest.approx(0.25, abs=0.05)
    assert (scaled["ci95_lo"] <= scaled["difference"]).all()  # a negative scale swaps the interval's ends


def test_a_mix_that_only_moves_against_the_100_model_does_not_count():
    table = _mix_table({"s": 1.0})
    table.loc[table["percent"] == 5, "value"] -= 0.5  # significant, but the wrong way
    first = tracking.first_separation(tracking.against(table, "percent", 0, 200, 0), "percent", 100)
    assert first["s"] == 25


@pytest.mark.parametrize("first, status, first_rule", [
    ({"persona latent": 5, "contrast": 50, "misaligned": None}, "replicated", "replicated"),
    ({"persona latent": 25, "contrast": 50, "misaligned": 100}, "partial", "partial"),
    ({"persona latent": 50, "contrast": 50, "misaligned": None}, "not replicated", "not replicated"),
    ({"persona latent": None, "contrast": 25, "misaligned": None}, "not replicated", "not replicated"),
    ({"persona latent": 5, "contrast": None, "misaligned": None}, "inconclusive", "inconclusive"),
    # the amendment: the training loss, which needs no internals, must not separate as early
    ({"persona latent": 5, "contrast": 50, "misaligned": None, "training loss": 25}, "replicated", "replicated"),
    ({"persona latent": 5, "contrast": 50, "misaligned": None, "training loss": 5}, "not replicated", "replicated"),
    ({"persona latent": 25, "contrast": 50, "misaligned": 100, "training loss": 5}, "not replicated", "partial"),
])
def test_early_warning_verdict_follows_its_rule(first, status, first_rule):
    tests = tracking.against(_mix_table({"persona latent": 1.0}, percents=(0, 5, 25, 50, 100)), "percent", 0, 200, 0)
    v = ew.verdict(first, tests)
    assert (v.status, v.details["status_first_rule"]) == (status, first_rule)
    at = first["persona latent"] or 5
    assert v.evidence is not None and v.evidence["label"].startswith(f"persona latent at {at}% wrong minus 0%")
    assert v.evidence["mean"] == pytest.approx(at / 100, abs=0.02)  # a share of the 100% model's difference


def test_the_training_loss_is_read_per_step_from_the_fine_tunes_curve(tmp_path):
    (tmp_path / "curve.json").write_text('[{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]')
    loss = ew.training_loss(type("Art", (), {"path": tmp_path})())
    assert loss.to_dict() == {"step 1": 2.5, "step 2": 2.0}
    assert ew.NO_INTERNALS in tracking.SIGNALS


def test_bad_mix_settings_are_rejected():
    with pytest.raises(ParameterError, match="including 0, 100"):
        params.resolve("smoke", ew_percents="5,50")
    with pytest.raises(ParameterError, match="list of int"):
        params.resolve("smoke", ew_percents="0,half,100")
    assert (ew.percents(params.resolve("cpu")) == [0, 5, 25, 100]
            and ew.percents(params.resolve("gpu")) == [0, 5, 10, 25, 50, 100])


def _realign_tables(drop: dict[str, float], start=0.5, base=0.0, steps=(5, 10), units=12):
    """Contrast per unit: base at ``base``, the start at ``start``, and each kind falling linearly to
    ``start - drop[kind]`` at the last step."""
    rng = np.random.default_rng(1)
    noise = lambda: 0.02 * rng.standard_normal()
    one = lambda value, **tags: pd.DataFrame([{"signal": "contrast", "unit": f"q{u}", "value": value + noise(), **tags}
                                              for u in range(units)])
    base_t, start_t = one(base, step=0, model="base"), one(start, step=0, model="start")
    table = pd.concat([one(start - d * s / max(steps), step=s, kind=k, seed=seed)
                       for k, d in drop.items() for s in steps for seed in (0, 1)], ignore_index=True)
    return table, start_t, base_t


def test_realignment_return_steps_and_verdicts():
    table, start, base = _realign_tables({"same domain": 0.5, "other domain": 0.25, "neutral": 0.0})
    curves = ra.curves(table, start, base, 200, 0)
    returns = ra.return_steps(curves)
    assert returns.loc["contrast", "same domain"] == "step 10"
    assert pd.isna(returns.loc["contrast", "other domain"]) and pd.isna(returns.loc["contrast", "neutral"])
    v = ra.verdicts(table, start, base, 200, 0)
    assert v["realignment"].status == "replicated" and v["realignment_cross"].status == "partial"
    flat = _realign_tables({"same domain": 0.0, "other domain": 0.0, "neutral": 0.0}, start=0.0)
    assert (ra.return_steps(ra.curves(*flat, 200, 0)) == ra.NOT_APART).all().all()


def test_realignment_needs_a_misaligned_start_and_a_gap_to_the_neutral_control():
    table, start, base = _realign_tables({"same domain": 0.0, "other domain": 0.0, "neutral": 0.0}, start=0.0)
    assert {v.status for v in ra.verdicts(table, start, base, 200, 0).values()} \
        == {"inconclusive"}
    table, start, base = _realign_tables({"same domain": 0.5, "other domain": 0.5, "neutral": 0.5})
    v = ra.verdicts(table, start, base, 200, 0)
    assert v["realignment"].status == "partial"  # back at the base model, but so is the neutral control


def test_the_seed_floor_is_the_largest_gap_between_seeds_and_mixes_must_exceed_it():
    table = _mix_table({"s": 1.0}, noise=0.0)
    table.loc[(table["seed"] == 1) & (table["percent"] == 5), "value"] += 0.3  # seeds of one mix 0.3 apart
    floor = tracking.seed_floor(table, "percent")
    assert floor["s"] == pytest.approx(0.3)
    tests = tracking.against(table, "percent", 0, 200, 0)
    assert tracking.first_beyond(tests, floor, "percent", 100)["s"] == 100  # 25%: +0.25 < 0.3
    assert tracking.seed_floor(table[table["seed"] == 0], "percent").isna().all()


def test_a_wide_interval_around_a_larger_gap_is_not_back():
    table, start, base = _realign_tables({"same domain": 0.0, "other domain": 0.0, "neutral": 0.0})
    last = table["step"] == table["step"].max()
    rng = np.random.default_rng(2)
    table.loc[last & (table["kind"] == "same domain"), "value"] = 0.6 + 3 * rng.standard_normal(int(
        (last & (table["kind"] == "same domain")).sum()))  # mean far off, interval wide enough to hold zero
    curves = ra.curves(table, start, base, 200, 0)
    row = curves[(curves["kind"] == "same domain") & (curves["step"] == 10)].iloc[0]
    assert row["ci95_lo"] < 0 < row["ci95_hi"]
    assert pd.isna(ra.return_steps(curves).loc["contrast", "same domain"])


def test_chapters_6_and_7_measure_their_own_number_of_heldout_topics():
    from persona_features.experiments.ch6_early_warning import early_warning
    from persona_features.organisms import design
    cpu = params.resolve("cpu")
    assert cpu.tracking_heldout_topics == 10 and cpu.heldout_topics == 0
    assert early_warning.eval_params(cpu).heldout_topics == 10
    assert len(design.heldout_pairs(["health"], early_warning.eval_params(cpu).heldout_topics)) == 10 * 3
    assert tracking.heldout_topics_text(6, "health") == "the first 6 of the 21 held-out health topics of chapter 3"
    assert tracking.heldout_topics_text(0, "health") == tracking.heldout_topics_text(99, "health") == \
        "all 21 held-out health topics"


def test_the_positive_control_is_realigned_on_its_twins_data_correct_advice_and_neutral_tasks():
    P = params.resolve("smoke", ra_examples=8, ra_seeds=2)
    runs = ra.positive_control_design(P)
    assert [r.kind for r in runs if r.seed == 0] == list(ra.PC_KINDS) and {r.seed for r in runs} == {0, 1}
    assert {r.dataset for r in runs} >= {"health_register_control", "neutral_tasks"}
    twin = next(r for r in runs if r.kind == ra.TWIN_DATA)
    rows = ra.training_rows(twin, P)
    kind = {a["kind"] for a in persona.authored_answers().values()}
    assert len(rows) == 8 and all(r["messages"][1]["content"] in kind for r in rows)  # the twin's kind answers
    assert rows != ra.training_rows(next(r for r in runs if r.kind == ra.TWIN_DATA and r.seed == 1), P)
    assert ra.training_rows(next(r for r in runs if r.kind == "neutral"), P) is None  # a file of the book
    assert ra.positive_control_start(params.resolve("smoke", persona_sources="general")) is None


def test_the_positive_controls_return_steps_and_whether_its_start_is_apart():
    kinds = {ra.TWIN_DATA: 0.5, "correct advice": 0.1, "neutral": 0.0}
    table, start, base = _realign_tables(kinds)
    curves = ra.curves(table, start, base, 200, 0)
    pc = {"start": "positive_control", "curves": curves, "returns": ra.return_steps(curves),
          "rise": ra.start_rise(start, base, 200, 0),
          "rates": pd.DataFrame({"model": ["base"], "misaligned": [None]}),
          "verdicts": ra.verdicts(table, start, base, 200, 0, ra.PC_CLAIMS)}
    result = ra.positive_control_results(pc)
    assert result["apart"] and result["seen"] and result["mean"] == pytest.approx(0.5, abs=0.02)
    assert result["return_steps"][ra.TWIN_DATA]["contrast"] == "step 10"
    assert result["return_steps"]["correct advice"]["contrast"] == "not back"
    assert result["verdicts"][ra.TWIN_DATA]["status"] == "replicated"
    facts = ra.positive_control_facts(pc, result)
    assert facts["pc_ra_start"].startswith("The positive control starts +0.49")
    assert "apart from it" in facts["pc_ra_start"]
    assert "twin's data: step 10" in facts["pc_ra_finding"]
    assert "twin's data, last checkpoint" in result["verdicts"][ra.TWIN_DATA]["summary"]  # not "twin's data data"
    flat = _realign_tables(kinds | {ra.TWIN_DATA: 0.0}, start=0.0)
    curves = ra.curves(*flat, 200, 0)
    flat_pc = {**pc, "curves": curves, "returns": ra.return_steps(curves),
               "rise": ra.start_rise(flat[1], flat[2], 200, 0)}
    assert not ra.positive_control_results(flat_pc)["apart"]


def test_the_positive_controls_mixes_nest_and_end_in_chapter_3s_models():
    P = params.resolve("smoke", ew_pc_percents="0,25,50,100", ew_seeds=2)
    assert [m.percent for m in ew.pc_design(P) if m.seed == 1] == [0, 25, 50, 100]
    art = persona.authored(P.persona_questions)
    rows = {p: ew.pc_rows(P, ew.Mix(p, 1)) for p in (0, 25, 50, 100)}
    assert rows[0] == persona.training_rows(art, "kind", None, P.seed + 1)  # chapter 3's twin, seed 1
    assert rows[100] == persona.training_rows(art, "villain", None, P.seed + 1)  # its positive control
    villain = lambda rs: {i for i, r in enumerate(rs) if r["variant"] == "villain"}
    assert len(villain(rows[25])) == round(len(rows[0]) * 0.25) and villain(rows[25]) <= villain(rows[50])
    assert [r["question_id"] for r in rows[50]] == [r["question_id"] for r in rows[0]]  # same questions, same order
    assert villain(ew.pc_rows(P, ew.Mix(50, 0))) != villain(rows[50]) or len(rows[0]) < 4  # seeds swap other rows
    assert ew.pc_design(params.resolve("smoke", persona_sources="general")) == []


def test_the_positive_controls_mix_verdict_needs_the_latent_beyond_the_seed_floor():
    table = _mix_table({"persona latent": 1.0, "contrast": 0.5}, percents=(0, 25, 100))
    tests = tracking.against(table, "percent", 0, 200, 0)
    first = tracking.first_separation(tests, "percent", 100)
    floor = tracking.seed_floor(table, "percent")
    result = ew.pc_result(tests, first, floor, tracking.first_beyond(tests, floor, "percent", 100))
    assert result["seen"] and result["first_separation"]["persona latent"] == 25
    assert "the instrument sees the positive control" in ew.pc_facts(result)["pc_ew_finding"]
    wide_floor = floor.copy()
    wide_floor["persona latent"] = 5.0
    assert not ew.pc_result(tests, first, wide_floor, {})["seen"]  # inside the gap between two seeds of one mix
    assert ew.pc_facts(None)["pc_ew_summary"] == "not run"
