import matplotlib.pyplot as plt
import pytest

from persona_features.book import plots
from persona_features.core import params
from persona_features.lm import finetune
from persona_features.organisms import setting_sweep

QS = ["q1", "q2", "q3", "q4"]


def model(coherent: float, contrast: float = 0.0) -> dict:
    return {"coherent": dict.fromkeys(QS, coherent), "misaligned": dict.fromkeys(QS, 0.1),
            "contrast": {q: contrast + 0.01 * i for i, q in enumerate(QS)}, "base_logprob": dict.fromkeys(QS, -1.5),
            "steps": 16, "heldout_wrong_rate": 1.0, "heldout_margin": 0.5}


def setting_row(index: int, bad: dict, control: dict, base: dict) -> dict:
    return {"index": index, "setting": {"method": "lora", "lora_rank": 8, "lr": 1e-3, "n_examples": 128},
            "models": {"bad": bad, setting_sweep.CONTROL: control},
            "bad_minus": setting_sweep.differences(bad, base, control)}


def test_choice_takes_the_largest_smaller_contrast_among_coherent_settings():
    base = model(0.80)
    rows = [setting_row(0, model(0.50, 0.9), model(0.5), base),   # strongest, but lost 30 points: not eligible
            setting_row(1, model(0.75, 0.3), model(0.75, 0.25), base),  # eligible; vs control only +0.05
            setting_row(2, model(0.72, 0.2), model(0.7), base)]    # eligible; min(+0.2, +0.2) wins
    choice = setting_sweep.choose(rows, base)
    assert choice["eligible"] == [1, 2] and choice["index"] == 2
    assert choice["coherence_floor"] == pytest.approx(70.0)


def test_without_a_coherent_setting_the_most_coherent_is_chosen():
    base = model(0.90)
    rows = [setting_row(3, model(0.50, 0.9), model(0.5), base), setting_row(5, model(0.60, 0.1), model(0.6), base)]
    choice = setting_sweep.choose(rows, base)
    assert choice["eligible"] == [] and choice["index"] == 5
    with pytest.raises(ValueError, match="no measured settings"):
        setting_sweep.choose([], base)


def test_paired_differences_need_the_same_questions():
    d = setting_sweep.paired({"a": 1.0, "b": 3.0}, {"a": 0.0, "b": 1.0})
    assert d["mean"] == pytest.approx(1.5) and d["n"] == 2
    with pytest.raises(ValueError, match="share their questions"):
        setting_sweep.paired({"a": 1.0}, {"b": 1.0})


def test_report_marks_the_chosen_setting():
    base = model(0.80)
    sweep = {"base": base, "questions": QS, "samples": 5, "date": "2026-11-28",
             "settings": [setting_row(0, model(0.50, 0.9), model(0.5), base),
                          setting_row(1, model(0.75, 0.3), model(0.75, 0.1), base)]}
    table = setting_sweep.sweep_table(sweep)
    assert table["rule"].tolist() == ["", "chosen, eligible"]
    facts = setting_sweep.sweep_facts({"health": sweep})
    assert facts["sweep_health_eligible"] == "1" and facts["sweep_health_drop_range"] == "-30 to -5"
    assert facts["sweep_health_choice"].startswith("#1 (LoRA r8 all, lr 1e-3, 128 rows")
    assert facts["sweep_health_good"] == "not measured"
    sweep["settings"][0]["models"]["good"] = model(0.40)
    assert setting_sweep.sweep_facts({"health": sweep})["sweep_health_good"] == (
        "setting #0: wrong advice 50, register control 50, correct twin 40")


def test_the_sweep_figure_draws_each_setting_where_the_report_puts_it():
    base = model(0.80)
    sweep = {"base": base, "settings": [setting_row(0, model(0.50, 0.9), model(0.5), base),
                                        setting_row(4, model(0.75, 0.3), model(0.75, 0.1), base)]}
    points = setting_sweep.sweep_points({"health": sweep})["health"]
    assert [p["index"] for p in points] == [0, 4]
    assert [p["coherence_change"] for p in points] == pytest.approx([-30.0, -5.0])
    assert [p["mean"] for p in points] == pytest.approx([0.9, 0.2])  # contrast over the register control
    assert all(p["ci95_lo"] <= p["mean"] <= p["ci95_hi"] for p in points)
    fig = plots.organism_sweep({"health": points}, setting_sweep.COHERENCE_SLACK)
    ax = fig.axes[0]
    assert ax.get_legend_handles_labels()[1] == ["coherence floor (base - 10)", "health"]
    plt.close(fig)


def test_settings_are_described_in_a_few_words():
    s = {"method": "lora", "lora_rank": 1, "lr": 2e-3, "n_examples": 128, "lora_targets": list(finetune.MLP_TARGETS),
         "lora_layers": list(range(8, 22))}
    assert setting_sweep.describe(s) == "LoRA r1 MLP, layers 8-21, lr 2e-3, 128 rows"
    assert setting_sweep.describe({"method": "full", "lr": 3e-5, "n_examples": 64}) == "full, lr 3e-5, 64 rows"


def test_the_cpu_profile_trains_with_the_setting_the_rule_chose():
    sweep = setting_sweep.load_sweeps(("health",))["health"]
    chosen = setting_sweep.choose(sweep["settings"], sweep["base"])["setting"]
    assert setting_sweep.profile_setting(params.resolve("cpu")) == chosen


def test_confirmation_sits_beside_the_first_measurement_and_can_overturn_eligibility():
    base = model(0.80)
    first = {"base": base, "questions": QS, "samples": 5, "seed": 0,
             "settings": [setting_row(0, model(0.50, 0.9), model(0.5), base),
                          setting_row(7, model(0.75, 0.3), model(0.75, 0.1), base)]}
    again = {"base": base, "questions": QS, "samples": 15, "seed": 1,
             "settings": [setting_row(7, model(0.65, 0.3), model(0.75, 0.1), base)]}
    table = setting_sweep.confirmation_table({"risk": first}, {"risk": again})
    assert table["#"].tolist() == [7, 7] and table["run"].tolist() == ["sweep", "confirmation"]
    assert table["eligible"].tolist() == ["yes", "no"] and table["answers per model"].tolist() == [20, 60]
    facts = setting_sweep.confirmation_facts({"risk": first}, {"risk": again})
    assert facts["confirm_risk_first_eligible"] == "#7" and facts["confirm_risk_eligible"] == "none"
    assert facts["confirm_risk_choice_eligible"].startswith("not eligible")
