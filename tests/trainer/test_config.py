import json

import pytest
import yaml

from trainer.config import ConfigError, config_json_schema, load_config, parse_config, read_yaml

MINIMAL = {
    "task": "autoencoder",
    "seed": 3,
    "cube": {"lattice": [8, 8, 6]},
    "train": {"epochs": 1, "batch_size": 8},
    "data": {"path": "data.npy"},
    "teachers": [],
}


def messages(error: ConfigError) -> list[str]:
    return [str(issue) for issue in error.issues]


def test_it_accepts_a_five_line_config_and_fills_defaults():
    config = parse_config(MINIMAL)
    assert config.cube.steps == 8 and config.cube.projection == "exact" and config.loss.cosine.weight == 1.0


def test_it_round_trips_through_yaml():
    config = parse_config(MINIMAL, ["cube.steps=12", "loss.infonce.weight=0.5"])
    again = parse_config(read_yaml(config.to_yaml()))
    assert again == config and again.cube.steps == 12 and again.loss.infonce.weight == 0.5


def test_it_names_an_unknown_key_and_suggests_the_fix():
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "cube": {"lattice": [8, 8, 6], "stpes": 3}})
    assert messages(caught.value) == ["cube.stpes: unknown key `cube.stpes`; did you mean `steps`?"]


def test_it_finds_unknown_keys_inside_list_items():
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "teachers": [{"name": "minilm", "poolng": "cls"}]})
    assert "did you mean `pooling`?" in messages(caught.value)[0]


def test_it_reports_every_problem_at_once():
    body = {**MINIMAL, "seed": "abc", "cube": {"lattice": [8, 8], "cell": "lstm"}}
    del body["train"]
    with pytest.raises(ConfigError) as caught:
        parse_config(body)
    paths = [issue.path for issue in caught.value.issues]
    for expected in ("seed", "cube.lattice", "cube.cell", "train"):
        assert any(path.startswith(expected) for path in paths), (expected, paths)


def test_it_explains_a_lattice_that_cannot_hold_the_dimension():
    body = {**MINIMAL, "cube": {"lattice": [8, 8, 8]}}
    with pytest.raises(ConfigError) as caught:
        parse_config(body, dim=768)
    message = messages(caught.value)[0]
    assert message.startswith("cube.lattice: lattice 8×8×8 = 512 cells cannot hold 768-D vectors exactly")
    assert "use 8×8×12" in message and "`cube.projection: learned`" in message
    parse_config(body, ["cube.projection=learned"], dim=768)  # the suggested fix works


def test_overrides_are_typed_and_validated():
    assert parse_config(MINIMAL, ["train.lr=3e-4"]).train.lr == pytest.approx(3e-4)
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL, ["train.epochs=zero"])
    assert caught.value.issues[0].path == "train.epochs"


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: dialogue\ncube:\n  lattice: [8, 8\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line 4" in str(caught.value) or "line 3" in str(caught.value)


def test_yaml_tags_that_build_objects_are_refused():
    with pytest.raises(ConfigError):
        read_yaml("!!python/object/apply:os.system ['echo hi']")


def test_the_json_schema_lists_required_keys_and_is_json():
    schema = config_json_schema()
    assert set(schema["required"]) == {"task", "seed", "cube", "train", "data", "teachers"}
    json.dumps(schema)
    assert yaml.safe_load(json.dumps(schema)) == schema
