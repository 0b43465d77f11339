"""Native vs reference measuring on a real tiny build (Stable Audio: the fastest family on CPU)."""

from __future__ import annotations

import pytest

from workbench.errors import ParameterError
from workbench.perf.history import format_session, history_of
from workbench.perf.pipelines import (
    NATIVE, REFERENCE, load_pair, measure, module_key, native_components, reference_components,
)
from workbench.perf.store import PerfStore

FAMILY = "stable_audio"


@pytest.fixture(scope="module")
def pair():
    return load_pair(FAMILY, request={"seed": 1}, device="cpu")


def test_components_are_the_sum_of_their_stages_or_module_calls_and_dit_is_per_step():
    stages = {"TextEncodingStage": 0.2, "DenoisingStage": 1.2, "DecodingStage": 0.3, "Other": 9.0}
    assert native_components(stages, steps=4) == {"text_encoder_s": 0.2, "dit_s": 0.3, "vae_decode_s": 0.3}
    assert native_components({"JointDenoisingStage": 0.8}, steps=2) == {
        "text_encoder_s": None, "dit_s": 0.4, "vae_decode_s": None}
    calls = {"text_encoder": 0.1, "transformer": 0.5, "transformer_2": 0.3, module_key("vae", "decode"): 0.2}
    assert reference_components(calls, steps=2) == {"text_encoder_s": 0.1, "dit_s": 0.4, "vae_decode_s": 0.2}


def test_each_run_of_each_side_is_one_record_in_its_own_cohort(pair, tmp_path):
    with PerfStore(tmp_path / "perf.sqlite") as store:
        m = measure(pair, 2, run_source="notebook", on_record=store.add)
        native, reference = m.records[NATIVE], m.records[REFERENCE]
        assert len(native) == len(reference) == 2 == m.runs
        assert [r.variant_id for r in (native[0], reference[0])] == ["native-exact-cpu", "reference-exact-cpu"]
        assert native[0].cohort._replace(variant_id="") == reference[0].cohort._replace(variant_id="")
        assert store.records(native[0].cohort) == native and store.records(reference[0].cohort) == reference
    steps = pair.params.num_inference_steps
    for run in m.timings:
        nat, ref = run[NATIVE], run[REFERENCE]
        assert nat.latency_s >= sum(nat.parts.values())  # the stages run inside the timed call
        assert nat.components["dit_s"] * steps == pytest.approx(nat.parts["DenoisingStage"])
        assert {"text_encoder", "transformer", "vae.decode"} <= set(ref.parts)  # the official modules were timed
        assert ref.latency_s >= sum(ref.parts.values())
        assert ref.components["dit_s"] * steps == pytest.approx(ref.parts["transformer"])
    for r in native + reference:
        assert r.run_source == "notebook" and r.peak_memory_mb is None and r.throughput_fps is None  # audio, CPU
        assert None not in (r.text_encoder_s, r.dit_s, r.vae_decode_s)
        assert r.extra["session"] == m.session and r.extra["steps"] == steps
    assert [r.extra["run"] for r in native] == [0, 1]
    # The official modules are unwrapped again after each run.
    assert "forward" not in vars(pair.official.transformer) and "decode" not in vars(pair.official.vae)


def test_session_summary_names_the_cohorts_without_machine_ids(pair, tmp_path):
    m = measure(pair, 1, warm_up=False)
    text = format_session(m, tmp_path / "perf.sqlite")
    assert "reference-exact-cpu" in text and "native-exact-cpu" in text
    assert m.records[NATIVE][0].recipe_fingerprint[:12] in text
    assert "hw-" not in text and m.records[NATIVE][0].hardware_profile_id not in text


def test_a_fresh_store_needs_calibration_until_a_second_session(pair, tmp_path):
    store_path = tmp_path / "perf.sqlite"
    for session in range(2):
        with PerfStore(store_path) as store:
            m = measure(pair, 1, on_record=store.add, warm_up=False)
        for side, comparison in history_of(m, store_path).newest().items():
            assert comparison.baseline.needs_calibration == (session == 0), side
            assert len(comparison.baseline.records) == session  # the first session's record, not its own
            assert (comparison.status == "calibration needed") == (session == 0)


def test_runs_must_be_positive(pair):
    with pytest.raises(ParameterError, match="runs=0"):
        measure(pair, 0)
