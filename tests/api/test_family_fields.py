"""Family-declared request fields: typed, sourced, checked from their type; scoped to the family."""

import pytest

from workbench.api.params import FAMILY_FIELDS, RequestField, SamplingParam, _FAMILY_OWNERS, declare_fields
from workbench.errors import ParameterError


@pytest.fixture
def declared():
    saved, owners = dict(FAMILY_FIELDS), {k: set(v) for k, v in _FAMILY_OWNERS.items()}
    declare_fields("fam_a", (RequestField("use_schedule", bool, False, "test: official signature (use_schedule: bool = False)"),
                             RequestField("eta_test", float, 0.0, "test: official signature (eta: float = 0.0)",
                                          low=0.0, high=1.0)))
    yield
    FAMILY_FIELDS.clear(), FAMILY_FIELDS.update(saved)
    _FAMILY_OWNERS.clear(), _FAMILY_OWNERS.update(owners)


def test_declared_fields_resolve_with_defaults_and_reach_the_batch(declared):
    params = SamplingParam.resolve({"prompt": "a cat"}, {"eta_test": 0.25}, family="fam_a")
    assert params.eta_test == 0.25 and params.use_schedule is False
    assert params.family_values == {"eta_test": 0.25, "use_schedule": False}
    batch = params.to_batch()
    assert batch.eta_test == 0.25 and batch.use_schedule is False
    assert params.replace(use_schedule=True).use_schedule is True
    assert params.to_json_dict()["eta_test"] == 0.25
    # the shared dataclasses did not grow a field for it
    assert "eta_test" not in SamplingParam.field_names()


@pytest.mark.parametrize("value, message", [
    ("true", "use_schedule: expected a boolean (true/false), got str 'true'"),
    (1, "use_schedule: expected a boolean (true/false), got int 1"),
])
def test_a_string_or_number_for_a_bool_is_refused(declared, value, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SamplingParam.resolve({"use_schedule": value}, family="fam_a")


@pytest.mark.parametrize("value, message", [(True, "a number, got bool"), ("0.5", "a number, got str"),
                                            (1.5, "at most 1.0"), (float("nan"), "a finite number")])
def test_number_fields_checked_from_type_and_bounds(declared, value, message):
    with pytest.raises(ParameterError, match=message) as err:
        SamplingParam.resolve({"eta_test": value}, family="fam_a")
    assert "test: official signature (eta: float = 0.0)" in str(err.value)   # the source is named


def test_scoped_to_the_declaring_family(declared):
    with pytest.raises(ParameterError, match="declared by family fam_a, not wan_t2v"):
        SamplingParam.resolve({"eta_test": 0.1}, family="wan_t2v")
    with pytest.raises(ParameterError, match="unknown parameter 'eta_tset'; did you mean eta_test"):
        SamplingParam.resolve({"eta_tset": 0.1}, family="fam_a")


def test_declarations_are_checked(declared):
    with pytest.raises(ParameterError, match="is a shared SamplingParam field"):
        declare_fields("fam_b", (RequestField("guidance_scale", float, 1.0, "x"),))
    with pytest.raises(ParameterError, match="declared by fam_a as bool"):
        declare_fields("fam_b", (RequestField("use_schedule", int, 0, "x"),))
    with pytest.raises(ParameterError, match="default: expected a boolean"):
        declare_fields("fam_b", (RequestField("flag_b", bool, "no", "x"),))
