"""Training configs: YAML plus key=value overrides, with every problem reported before training starts."""
import re

import pytest

from conflictbrief.training.config import BrieferConfig, ConfigError, DataFile, TaggerConfig, check_bounds, \
    load_config


def test_overrides_reach_nested_fields_and_list_items(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("train:\n  - path: a.txt\n  - path: b.txt\neval: dev.txt\n")
    config = load_config(TaggerConfig, path, ["train.1.repeat=4", "eval.format=conll", "epochs=2"])
    assert [f.path for f in config.train] == ["a.txt", "b.txt"]
    assert config.train[1].repeat == 4 and config.eval.format == "conll"
    assert config.epochs == 2.0


def test_an_override_one_past_a_list_adds_a_training_file(tmp_path):
    # rehearsal: the shipped recipe's data and one's own file, without writing a config (README, Fine-tuning)
    path = tmp_path / "t.yaml"
    path.write_text("train:\n  - path: re3d.txt\n    augment: 2\n")
    config = load_config(TaggerConfig, path, ["train.1.path=mine.jsonl", "train.1.repeat=2"])
    assert [(f.path, f.augment, f.repeat) for f in config.train] == [("re3d.txt", 2, 1), ("mine.jsonl", 0, 2)]
    with pytest.raises(ConfigError, match="train.3 cannot take that key"):
        load_config(TaggerConfig, path, ["train.3.path=mine.jsonl"])  # a gap: not a list item
    with pytest.raises(ConfigError, match=r"train\[1\]: needs path"):
        load_config(TaggerConfig, path, ["train.1.repeat=2"])  # a new file needs its path


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


def test_an_override_that_is_not_yaml_and_numbers_that_are_not_finite_are_config_errors():
    """Found by fuzzing the overrides (runs/s27/config_fuzz.py): a value safe_load refuses came through as yaml's
    own exception, and learning_rate=inf (or .inf in a file) passed, to train a model of NaNs."""
    for override, said in (("epochs=[", "override 'epochs=[': the value is not YAML this reads"),
                           ("epochs=!!python/object:os.system x", "the value is not YAML this reads (could not "
                                                                   "determine a constructor"),
                           ("learning_rate=inf", "learning_rate: must be a finite number, got inf"),
                           ("learning_rate=.inf", "learning_rate: must be a finite number, got inf"),
                           ("warmup_ratio=.nan", "warmup_ratio: must be a finite number, got nan"),
                           ("time_limit_minutes=nan", "time_limit_minutes: must be a finite number, got nan")):
        with pytest.raises(ConfigError, match=re.escape(said)):
            load_config(TaggerConfig, None, [override])
    assert load_config(TaggerConfig, None, ["epochs=1e9"]).epochs == 1e9  # large, but a number


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
    for config in loaded:
        check_bounds(config)  # every shipped config is within bounds
    assert [c.teachers for c in loaded if isinstance(c, TaggerConfig) and c.teachers][0][0] == "default"


def test_numbers_out_of_bounds_stop_training_before_anything_is_read(tmp_path):
    # batch_size 0 was a ZeroDivisionError after the model had loaded; epochs -1 and learning_rate 0 trained
    # nothing and wrote a model.
    config = TaggerConfig(train=[DataFile("a.jsonl", augment=-1)], batch_size=0, epochs=-1, learning_rate=0)
    with pytest.raises(ConfigError) as e:
        check_bounds(config)
    assert str(e.value).splitlines()[1:] == ["  train.0.augment (a.jsonl): must be 0 or more, got -1",
                                             "  batch_size: must be 1 or more, got 0",
                                             "  learning_rate: must be above 0, got 0",
                                             "  epochs: must be above 0, got -1"]
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.tagger import train_tagger

    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="^batch_size: must be 1 or more, got 0$"):
        train_briefer(BrieferConfig(train=[DataFile("missing.jsonl")], batch_size=0, output_dir=str(out)))
    with pytest.raises(ConfigError, match="^warmup_ratio: must be between 0 and 1, got 2"):
        train_tagger(TaggerConfig(train=[DataFile("missing.jsonl")], warmup_ratio=2, output_dir=str(out)))
    assert not out.exists()
    load = load_config(TaggerConfig, None, ["epochs=0.5", "eval_every=10"])  # fractional epochs are fine
    check_bounds(load)


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "briefer", "--data", "x.jsonl", "--limit", "-1"], "--limit: expected a whole number of 1 or more"),
    (["brief", "x.jsonl", "-o", "y.jsonl", "--batch-size", "0"], "--batch-size: expected a whole number of 1"),
    (["brief", "x.jsonl", "-o", "y.jsonl", "--threads", "abc"], "--threads: expected a whole number of 1"),
    (["serve", "--port", "99999"], "--port: expected a whole number from 1 to 65535"),
    (["brief", "x.jsonl", "-o", "y.jsonl", "--time-limit", "-1"], "--time-limit: expected a number of seconds"),
    (["tag", "x.jsonl", "-o", "y.jsonl", "--time-limit", "nan"], "--time-limit: expected a number of seconds"),
])
def test_cli_numbers_out_of_range_are_refused(argv, message, capsys):
    # --limit -1 took all records but the last, --batch-size 0 and --threads 0 were ignored, a bad port was
    # a traceback.
    from conflictbrief.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
