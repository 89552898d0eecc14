"""CUDA checks: the same models on a GPU give what they give on the CPU. Skipped where torch sees no GPU (CI, the
project's machines); run on a machine with one: ``python -m pytest -q tests/test_gpu.py``."""
import json
import re
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_e4a46dad2f541596.txt"
TEXT = ("Syrian forces shelled Idlib on Monday with barrel bombs. Raed Saleh of the White Helmets said 120,000 "
        "people fled to Turkey.")


def test_auto_device_is_the_gpu_and_auto_dtype_is_float32_there(tiny_tagger_dir):
    from conflictbrief.inference.tagger import Tagger
    from conflictbrief.model.loading import auto_dtype, device_for

    assert device_for("auto").type == "cuda"
    assert auto_dtype(torch.device("cuda")) is None
    model = Tagger.load(str(tiny_tagger_dir), device="auto", dtype="auto").model
    assert next(model.parameters()).device.type == "cuda" and model.dtype == torch.float32


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_tiny_tagger_on_the_gpu_tags_as_on_the_cpu(tiny_tagger_dir, dtype):
    from conflictbrief.inference.tagger import Tagger

    words = [TEXT.split()] * 3
    cpu = Tagger.load(str(tiny_tagger_dir), device="cpu").tag_words(words)
    gpu = Tagger.load(str(tiny_tagger_dir), device="cuda", dtype=dtype)
    assert gpu.model.dtype == getattr(torch, dtype)
    assert gpu.tag_words(words) == cpu if dtype == "float32" else len(gpu.tag_words(words)) == 3
    entities = gpu.tag([TEXT])[0]
    assert all(TEXT[e.start:e.end] == e.text for e in entities)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tiny_briefer_generates_on_the_gpu(tiny_briefer_dir, dtype):
    from conflictbrief.inference.briefer import Briefer

    briefer = Briefer.load(str(tiny_briefer_dir), device="cuda", dtype=dtype, max_new_tokens=16, num_beams=2)
    out = briefer.generate_raw([TEXT, "Turkey hosts 3.5 million Syrian refugees."])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    if dtype == "float32":
        cpu = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=16, num_beams=2)
        assert out == cpu.generate_raw([TEXT, "Turkey hosts 3.5 million Syrian refugees."])


def test_pipeline_with_a_seq2seq_briefer_on_the_gpu(tiny_tagger_dir, tiny_briefer_dir):
    from conflictbrief.inference.pipeline import Pipeline

    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cuda", dtype="bfloat16")
    results = list(p.analyze_batch([TEXT, "", TEXT + " Talks in Moscow ended."], batch_size=2))
    assert [r.error is None for r in results] == [True, False, True]
    assert all(r.brief and all(s.sources for s in r.brief) for r in (results[0], results[2]))


@pytest.mark.parametrize("mixed_precision", ["no", "bf16", "fp16"])
def test_training_runs_on_the_gpu(data_dir, tmp_path, mixed_precision):
    from conflictbrief.training.config import BrieferConfig, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.tagger import train_tagger

    lines = []
    config = TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=4)],
                          eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(tmp_path / "t"),
                          batch_size=8, max_steps=6, log_every=1000, mixed_precision=mixed_precision)
    train_tagger(config, log=lines.append)
    assert any("device cuda" in line for line in lines), lines
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())
    lines.clear()
    config = BrieferConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "pairs.jsonl"), repeat=4)],
                           eval=[DataFile(str(data_dir / "pairs.jsonl"))], output_dir=str(tmp_path / "b"),
                           batch_size=4, max_steps=6, log_every=1000, save_every=3, max_new_tokens=8, num_beams=1,
                           mixed_precision=mixed_precision)
    train_briefer(config, log=lines.append)
    assert any("device cuda" in line for line in lines), lines
    assert (tmp_path / "b" / "model.safetensors").is_file()


@pytest.mark.slow
def test_default_pipeline_on_the_gpu_matches_the_cpu_on_the_seed():
    from conflictbrief import Pipeline

    raw = SEED.read_text(encoding="utf-8")
    cpu = Pipeline.load(device="cpu", dtype="float32").analyze(raw)
    gpu = Pipeline.load(device="cuda", dtype="float32").analyze(raw)
    assert [(e.label, e.raw_start, e.raw_end) for e in gpu.entities] == [(e.label, e.raw_start, e.raw_end)
                                                                         for e in cpu.entities]
    assert gpu.brief_text == cpu.brief_text
    half = Pipeline.load(device="cuda", dtype="bfloat16").analyze(raw)
    locations = [e.text for e in half.entities if e.label == "Location"]
    assert any(re.search(r"\bIdlib$", t) for t in locations), locations
