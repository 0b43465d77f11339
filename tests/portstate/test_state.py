"""port_state.yaml: the schema, errors that name the file and field, and safe rewriting."""

import copy

import pytest
import yaml

from workbench import registry
from workbench.errors import PortStateError
from workbench.portstate import state as S

WAN = registry.get_family("wan_t2v")


def committed_raw() -> dict:
    return yaml.safe_load(S.state_path(WAN).read_text())


def read_mutated(tmp_path, mutate) -> dict:
    raw = copy.deepcopy(committed_raw())
    mutate(raw["wan_t2v"])
    path = tmp_path / "port_state.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return S.read_state_file(path)


def test_committed_state_loads_and_round_trips(tmp_path):
    state = S.load_family_state(WAN)
    assert [c.name for c in state.components] == ["scheduler", "text_encoder", "tokenizer", "transformer", "vae"]
    assert all(c.status == "non_skip_pass" and c.evidence.max_abs_diff == 0.0 for c in state.components)
    path = tmp_path / "port_state.yaml"
    path.write_text(S.dump_states({"wan_t2v": state}))
    again = S.read_state_file(path)["wan_t2v"]
    assert again.to_dict() == state.to_dict()
    assert "&id" not in path.read_text()  # repeated values are written out, not aliased


def _set(path, value):
    def mutate(section):
        target = section
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate, field, message", [
    (_set(["components", 3, "status"], "done"), "wan_t2v.components[3].status", "expected one of reuse_pending"),
    (_set(["components", 0, "evidence"], KeyError), "wan_t2v.components[0].evidence",
     "written only by a parity run"),
    (_set(["components", 1, "status"], "reuse_pending"), "wan_t2v.components[1].evidence",
     "only a run's status carries evidence"),
    (_set(["components", 2, "status"], "failed"), "wan_t2v.components[2].status", "contradicts its evidence"),
    (_set(["components", 4, "class"], "AutoencoderKLWan"), "wan_t2v.components[4].class", "'library.Class'"),
    (_set(["components", 4, "evidence", "date"], None), "wan_t2v.components[4].evidence.date", "non-empty text"),
    (_set(["components", 0, "colour"], "red"), "wan_t2v.components[0].colour", "unknown field"),
    (_set(["questions", 0, "id"], "Q1"), "wan_t2v.questions[0].id", "Q and three digits"),
    (_set(["questions", 0, "status"], "closed"), "wan_t2v.questions[0].status", "expected one of open, resolved"),
    (_set(["escape_hatches", 0, "status"], "open"), "wan_t2v.escape_hatches[0].resolution",
     "required exactly when"),
    (_set(["issues", 0, "resolution"], KeyError), "wan_t2v.issues[0].resolution", "resolved rows keep"),
    (_set(["decisions", 1, "id"], "D001"), "wan_t2v.decisions", "duplicate 'D001'"),
    (_set(["gates"], {"smok": {}}), "wan_t2v.gates.smok", "expected one of smoke"),
])
def test_schema_errors_name_file_and_field(tmp_path, mutate, field, message):
    with pytest.raises(PortStateError) as err:
        read_mutated(tmp_path, mutate)
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'port_state.yaml'}: {field}: "), text
    assert message in text


def test_blocked_needs_an_open_issue(tmp_path):
    def blocked_by(issue_id):
        def mutate(section):
            c = section["components"][3]
            c["status"], c["blocked_by"] = "blocked", issue_id
            del c["evidence"]
        return mutate

    with pytest.raises(PortStateError, match=r"components\[3\]\.blocked_by: 'I001' is not an open issue"):
        read_mutated(tmp_path, blocked_by("I001"))  # I001 is resolved
    states = read_mutated(tmp_path, lambda s: (blocked_by("I002")(s), s["issues"].append(
        {"id": "I002", "title": "the transformer needs a native port", "status": "open"})))
    assert states["wan_t2v"].component("transformer").blocked_by == "I002"


def test_missing_state_says_how_to_create_it(state_root):
    S.state_path(WAN).unlink()
    with pytest.raises(PortStateError, match=r"wan_t2v has no port state; run `workbench status wan_t2v --run`"):
        S.load_family_state(WAN)


def test_saving_replaces_one_section_and_keeps_the_others(wan_state):
    path = wan_state.path
    other = S.parse_family_state(path, "other_family", {"components": [], "decisions": [
        {"id": "D001", "decision": "keep me", "why": "another family shares the folder"}]})
    S.save_family_state(other)
    wan_state.questions[0].status, wan_state.questions[0].resolution = "resolved", "checked with ftfy 6"
    S.save_family_state(wan_state)
    states = S.read_state_file(path)
    assert list(states) == ["wan_t2v", "other_family"]
    assert states["other_family"].decisions[0].decision == "keep me"
    assert states["wan_t2v"].questions[0].resolution == "checked with ftfy 6"
    assert not list(path.parent.glob(".port_state.yaml.*"))  # atomic write left no temporary file


def test_state_root_redirects_reads_and_writes(state_root):
    assert S.state_path(WAN) == state_root / "workbench" / "families" / "wan" / "port_state.yaml"
    assert S.family_folder(WAN).name == "wan" and S.family_folder(WAN) != S.state_dir(WAN)
