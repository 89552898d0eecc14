"""Training configs: YAML plus key=value overrides, with every problem reported before training starts."""
import pytest

from conflictbrief.training.config import BrieferConfig, ConfigError, TaggerConfig, load_config


def test_overrides_reach_nested_fields_and_list_items(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("train:\n  - path: a.txt\n  - path: b.txt\neval: dev.txt\n")
    config = load_config(TaggerConfig, path, ["train.1.repeat=4", "eval.format=conll", "epochs=2"])
    assert [f.path for f in config.train] == ["a.txt", "b.txt"]
    assert config.train[1].repeat == 4 and config.eval.format == "conll"
    assert config.epochs == 2.0


def test_exponent_without_a_dot_is_a_float():
    # YAML 1.1 reads 5e-5 as a string; an optimiser given a string fails only after the data is tokenised.
    config = load_config(TaggerConfig, None, ["learning_rate=5e-5", "warmup_ratio=0"])
    assert config.learning_rate == pytest.approx(5e-5) and isinstance(config.learning_rate, float)
    assert isinstance(config.warmup_ratio, float)


def test_wrong_types_and_unknown_keys_are_all_reported():
    with pytest.raises(ConfigError) as err:
        load_config(BrieferConfig, None, ["batch_size=eight", "learning_rate=fast", "num_beam=4",
                                          "output_dir=null"])
    text = str(err.value)
    assert "batch_size: expected int, got 'eight'" in text
    assert "learning_rate: expected float, got 'fast'" in text
    assert "num_beam: unknown key" in text
    assert "output_dir: must not be empty" in text


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TaggerConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TaggerConfig, None, ["epochs"])


def test_teachers_take_one_name_or_a_list_and_nothing_else(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("teachers: runs/big\ntrain:\n  - {path: news.txt, format: lines, unlabelled: true}\n")
    config = load_config(TaggerConfig, path)
    assert config.teachers == ["runs/big"] and config.train[0].unlabelled
    assert load_config(TaggerConfig, path, ["teachers=[default, runs/b]"]).teachers == ["default", "runs/b"]
    with pytest.raises(ConfigError, match=r"teachers: expected a list of names or paths, got \[1, 2\]"):
        load_config(TaggerConfig, path, ["teachers=[1, 2]"])


def test_every_shipped_training_config_loads():
    from pathlib import Path

    from conflictbrief.training.config import MlmConfig

    configs = Path(__file__).resolve().parent.parent / "configs"
    kinds = {"tagger": TaggerConfig, "briefer": BrieferConfig, "mlm": MlmConfig}
    loaded = [load_config(kinds[p.stem.split("-")[0]], p) for p in sorted(configs.glob("*.yaml"))
              if p.stem.split("-")[0] in kinds]
    assert len(loaded) == 5
    assert [c.teachers for c in loaded if isinstance(c, TaggerConfig) and c.teachers][0][0] == "default"
