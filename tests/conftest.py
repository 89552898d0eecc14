"""Offline, fast fixtures: tiny random models built from configs, trained for a few steps."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # any download attempt fails loudly
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

SPANS = [
    {"text": "Syrian forces shelled Idlib on Monday with barrel bombs.",
     "entities": [{"start": 0, "end": 6, "label": "Nationality"}, {"start": 22, "end": 27, "label": "Location"},
                  {"start": 31, "end": 37, "label": "Temporal"}, {"start": 43, "end": 55, "label": "Weapon"}]},
    {"text": "Raed Saleh of the White Helmets said 120,000 people fled to Turkey.",
     "entities": [{"start": 0, "end": 10, "label": "Person"}, {"start": 18, "end": 31, "label": "Organisation"},
                  {"start": 37, "end": 44, "label": "Quantity"}, {"start": 60, "end": 66, "label": "Location"}]},
]

PAIRS = [
    {"text": "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey. "
             "The Syrian Observatory for Human Rights reported the figures.",
     "brief": "Syrian forces shelled Idlib. About 120,000 people fled toward Turkey."},
    {"text": "Turkey hosts 3.5 million Syrian refugees. It fears millions more may cross the border soon. "
             "Talks in Moscow ended without agreement.",
     "brief": "Turkey hosts 3.5 million Syrian refugees and fears more will come."},
]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    with (d / "spans.jsonl").open("w") as f:
        for r in SPANS:
            f.write(json.dumps(r) + "\n")
    with (d / "pairs.jsonl").open("w") as f:
        for r in PAIRS:
            f.write(json.dumps(r) + "\n")
    return d


@pytest.fixture(scope="session")
def _tiny_tagger_dir(tmp_path_factory, data_dir):
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    out = tmp_path_factory.mktemp("tagger")
    config = TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=4)],
                          eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(out), batch_size=8,
                          learning_rate=3e-3, warmup_ratio=0.0, max_steps=60, log_every=1000, select_metric="f1")
    report = train_tagger(config, log=lambda m: None)
    return out, report


@pytest.fixture
def tiny_tagger_dir(_tiny_tagger_dir, tmp_path):
    """A per-test copy of the session's tiny trained tagger."""
    dst = tmp_path / "tagger"
    shutil.copytree(_tiny_tagger_dir[0], dst)
    return dst


@pytest.fixture(scope="session")
def _tiny_briefer_dir(tmp_path_factory, data_dir):
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile, TinyModel

    out = tmp_path_factory.mktemp("briefer")
    config = BrieferConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "pairs.jsonl"), repeat=4)],
                           eval=[DataFile(str(data_dir / "pairs.jsonl"))], output_dir=str(out), batch_size=4,
                           learning_rate=3e-3, warmup_ratio=0.0, max_steps=30, log_every=1000, save_every=10,
                           max_new_tokens=24, num_beams=2, label_smoothing=0.0)
    report = train_briefer(config, log=lambda m: None)
    return out, report


@pytest.fixture
def tiny_briefer_dir(_tiny_briefer_dir, tmp_path):
    dst = tmp_path / "briefer"
    shutil.copytree(_tiny_briefer_dir[0], dst)
    return dst


@pytest.fixture
def tiny_pipeline(tiny_tagger_dir, tiny_briefer_dir):
    from conflictbrief.inference.pipeline import Pipeline

    return Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu")
