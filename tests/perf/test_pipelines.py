"""Native vs reference measuring on a real tiny build (Stable Audio: the fastest family on CPU)."""

from __future__ import annotations

import pytest

from workbench.errors import ParameterError
from workbench.perf.history import format_session, history_of
from workbench.perf.pipelines import (
    NATIVE, REFERENCE, components, load_pair, measure, module_key,
)
from workbench.perf.store import PerfStore

FAMILY = "stable_audio"


@pytest.fixture(scope="module")
def pair():
    return load_pair(FAMILY, request={"seed": 1}, device="cpu")


def test_components_are_the_sum_of_their_module_calls_and_dit_is_per_step():
    calls = {"text_encoder": 0.1, "transformer": 0.5, "transformer_2": 0.3, module_key("vae", "decode"): 0.2,
             "other": 9.0}
    assert components(calls, steps=2) == {"text_encoder_s": 0.1, "dit_s": 0.4, "vae_decode_s": 0.2}
    assert components({"transformer": 0.8}, steps=2) == {"text_encoder_s": None, "dit_s": 0.4, "vae_decode_s": None}


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
        assert nat.latency_s >= sum(nat.stages.values())  # the stages run inside the timed call
        for t in (nat, ref):  # the same module calls are timed on both sides: like for like
            assert {"text_encoder", "transformer", "vae.decode"} <= set(t.modules)
            assert t.latency_s >= sum(t.modules.values())
            assert t.components["dit_s"] * steps == pytest.approx(t.modules["transformer"])
        assert nat.modules["transformer"] < nat.stages["DenoisingStage"]  # the stage also steps the scheduler
        assert ref.stages == {}
    for r in native + reference:
        assert r.run_source == "notebook" and r.peak_memory_mb is None and r.throughput_fps is None  # audio, CPU
        assert None not in (r.text_encoder_s, r.dit_s, r.vae_decode_s)
        assert r.extra["session"] == m.session and r.extra["steps"] == steps
    assert [r.extra["run"] for r in native] == [0, 1]
    # The official modules are unwrapped again after each run.
    for pipe in (pair.official, pair.native):
        assert "forward" not in vars(pipe.transformer) and "decode" not in vars(pipe.vae)


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
