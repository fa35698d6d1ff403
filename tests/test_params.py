import pytest

from persona_features.params import KNOBS, PROFILES, ParameterError, resolve, table_markdown


def test_profiles_resolve_every_knob():
    for profile in PROFILES:
        p = resolve(profile)
        assert set(p.values) == set(KNOBS)
        assert p.profile == profile


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ParameterError) as e:
        resolve("laptop")
    assert "laptop" in str(e.value)
    for profile in PROFILES:
        assert profile in str(e.value)


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ParameterError) as e:
        resolve("smoke", max_tokens=3)
    msg = str(e.value)
    assert "max_tokens" in msg and "max_new_tokens" in msg and "seed" in msg


def test_override_applies_and_is_typed():
    p = resolve("smoke", max_new_tokens=7, temperature=0)
    assert p.max_new_tokens == 7
    assert p.temperature == 0.0 and isinstance(p.temperature, float)
    assert resolve("smoke").max_new_tokens == KNOBS["max_new_tokens"].smoke


@pytest.mark.parametrize("name,value", [("max_new_tokens", "7"), ("seed", 1.5), ("seed", True), ("model", 3)])
def test_wrong_type_is_an_error(name, value):
    with pytest.raises(ParameterError, match=name):
        resolve("smoke", **{name: value})


def test_dtype_is_validated():
    with pytest.raises(ParameterError, match="dtype"):
        resolve("cpu", dtype="float16x")


def test_unknown_attribute_names_valid_parameters():
    with pytest.raises(AttributeError, match="max_new_tokens"):
        resolve("smoke").max_tokens


def test_table_lists_every_knob():
    table = table_markdown()
    for name in KNOBS:
        assert f"`{name}`" in table
