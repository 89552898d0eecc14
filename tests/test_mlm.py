"""Domain-adaptive pre-training (`train mlm`): tiny models, offline, a few steps."""
import json
import random

import pytest
import torch

from conflictbrief.training.config import ConfigError, DataFile, MlmConfig, TaggerConfig, TinyModel
from conflictbrief.training.readers import DataError

SENTENCES = [
    "Syrian government forces shelled Idlib province on Monday, killing 12 civilians.",
    "The White Helmets said 120,000 people had fled toward the Turkish border.",
    "Rebels in Maarat al-Numan reported airstrikes by Russian warplanes overnight.",
    "The United Nations called for a ceasefire in northwestern Syria.",
]


def _corpus(tmp_path):
    jsonl = tmp_path / "news.jsonl"
    with jsonl.open("w") as f:
        for n in range(40):
            f.write(json.dumps({"body": " ".join(SENTENCES[n % 4:] + SENTENCES[: n % 4])}) + "\n")
        f.write("{not json\n")  # one bad line: reported and skipped, the rest is used
    tsv = tmp_path / "events.tsv"
    tsv.write_text("".join(f"{s}\t1\t0\n" for s in SENTENCES * 10))
    return [DataFile(str(jsonl), text_field="body"), DataFile(str(tsv), format="lines")]


def test_mlm_lowers_held_out_loss_resumes_and_gives_the_tagger_a_base(tmp_path, data_dir):
    from conflictbrief.training.mlm import train_mlm
    from conflictbrief.training.tagger import train_tagger

    out = tmp_path / "mlm"
    logs = []
    config = MlmConfig(tiny_model=TinyModel(), train=_corpus(tmp_path), output_dir=str(out), max_length=32,
                       batch_size=8, learning_rate=3e-3, warmup_ratio=0.0, max_steps=30, eval_fraction=0.2,
                       eval_every=10, save_every=10, log_every=1000, freeze_word_embeddings=False)
    report = train_mlm(config, log=logs.append)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history[0]["step"] == 0 and report["steps"] == 30
    assert report["best"]["eval_loss"] < history[0]["eval_loss"] - 1.0  # it learned the text
    assert any("1 record(s) skipped" in m for m in logs) and any("invalid JSON" in m for m in logs)
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    card = (out / "README.md").read_text()
    assert "news.jsonl`: 40 documents" in card and f"| 0 | {history[0]['eval_loss']} |" in card

    resumed = train_mlm(MlmConfig(**{**vars(config), "max_steps": 40}), resume=True, log=logs.append)
    assert any("resumed" in m and "step 30" in m for m in logs) and resumed["steps"] == 40

    tagger = TaggerConfig(base_model=str(out), train=[DataFile(str(data_dir / "spans.jsonl"))],
                          eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(tmp_path / "tagger"),
                          batch_size=2, max_steps=2, log_every=1000)
    assert "f1" in train_tagger(tagger, log=lambda m: None)["best"]


def test_whole_word_masking_masks_all_pieces_of_a_word_or_none():
    from transformers import AutoTokenizer

    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.mlm import continuation_table, mask_block

    tok = AutoTokenizer.from_pretrained(base_model_path())
    continues = continuation_table(tok)
    ids = tok("Peshmerga fighters recaptured Sinjar from Daesh militants in Nineveh governorate")["input_ids"]
    assert continues[ids].any()  # the sentence has multi-piece words
    for seed in range(20):
        inputs, labels = mask_block(ids, random.Random(seed), tok, continues, 0.3)
        assert labels[0] == labels[-1] == -100  # [CLS] and [SEP] are never predicted
        word_of, w = [], -1
        for i, t in enumerate(ids):
            w += 0 if (0 < i < len(ids) - 1 and continues[t]) else 1
            word_of.append(w)
        for word in set(word_of[1:-1]):
            picked = {labels[i] != -100 for i, wi in enumerate(word_of) if wi == word}
            assert len(picked) == 1, f"word {word} partly masked (seed {seed})"
        assert sum(x != -100 for x in labels) > 0
        assert all(labels[i] == ids[i] for i in range(len(ids)) if labels[i] != -100)


def test_mlm_keeps_the_word_embeddings_of_the_offline_base(tmp_path):
    """The property the shipped tagger's small delta relies on."""
    from safetensors.torch import load_file

    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.mlm import train_mlm

    config = MlmConfig(train=_corpus(tmp_path)[1:], output_dir=str(tmp_path / "mlm"), max_length=32,
                       batch_size=4, max_steps=2, eval_fraction=0.0, eval_every=None, log_every=1000)
    train_mlm(config, log=lambda m: None)
    base = load_file(f"{base_model_path()}/model.safetensors")
    trained = load_file(str(tmp_path / "mlm" / "model.safetensors"))
    key = next(k for k in base if k.endswith("word_embeddings.weight"))
    assert torch.equal(trained["bert." + key.removeprefix("bert.")], base[key])
    layer = next(k for k in base if k.endswith("layer.0.attention.self.query.weight"))
    assert not torch.equal(trained["bert." + layer.removeprefix("bert.")], base[layer])


def test_unusable_text_stops_with_the_file_named(tmp_path):
    from conflictbrief.training.mlm import read_texts

    with pytest.raises(DataError, match="no such file"):
        read_texts(DataFile(str(tmp_path / "missing.jsonl")))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"title": "no text field"}\n')
    with pytest.raises(DataError, match="empty.jsonl: no text found; first problem: .*no text field"):
        read_texts(DataFile(str(empty)), log=lambda m: None)
    headerless = tmp_path / "events.tsv"
    headerless.write_text("Shelling in Idlib killed 12.\t1\n")
    with pytest.raises(DataError, match="header row.*format: lines"):
        read_texts(DataFile(str(headerless)), log=lambda m: None)
    assert read_texts(DataFile(str(headerless), format="lines")) == ["Shelling in Idlib killed 12."]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match="blank.txt"):
        read_texts(DataFile(str(blank)), log=lambda m: None)
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read_texts(DataFile(str(empty), format="xml"))
    from conflictbrief.training.mlm import train_mlm

    for bad in ({"mask_probability": 1.5}, {"eval_fraction": 1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            train_mlm(MlmConfig(train=[DataFile(str(empty))], **bad), log=lambda m: None)
    with pytest.raises(ConfigError, match="base_model default: a compact model directory"):  # not OSError
        train_mlm(MlmConfig(base_model="default", train=[DataFile(str(empty))]), log=lambda m: None)
    with pytest.raises(DataError, match="--resume: no checkpoint in"):  # said before any text is read
        train_mlm(MlmConfig(train=[DataFile(str(empty))], output_dir=str(tmp_path / "none")), resume=True,
                  log=lambda m: None)
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nIdlib B-Location\nwas O\nshelled O\n\nAleppo B-Location\n")
    assert read_texts(DataFile(str(conll), format="conll")) == ["Idlib was shelled", "Aleppo"]
    (tmp_path / "n.source").write_text("TITLE=> T1. ARTICLE=> Report one. [SEP] TITLE=> T2. ARTICLE=> Report two.\n")
    (tmp_path / "n.target").write_text("TITLE=> H. ARTICLE=> Both.\n")  # a NeuS record: its reports, joined
    assert read_texts(DataFile(str(tmp_path / "n.source"))) == ["Report one.\n\nReport two."]


def test_blocks_keep_every_token_in_order_framed_by_cls_and_sep():
    from transformers import AutoTokenizer

    from conflictbrief.inference.clean import clean
    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.mlm import build_blocks

    tok = AutoTokenizer.from_pretrained(base_model_path())
    texts = [s * (n + 1) for n, s in enumerate(SENTENCES)] + ["Ceasefire talks &amp; shelling in Idlib."]
    blocks = build_blocks(texts, tok, 24)
    assert blocks.dtype == torch.int32 and blocks.shape[1] == 24
    assert (blocks[:, 0] == tok.cls_token_id).all()
    expected = []
    for t in texts:
        expected += tok(clean(t).text, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    got = []
    for row in blocks.tolist():
        real = [t for t in row if t != tok.pad_token_id]
        assert real[-1] == tok.sep_token_id  # every block is closed
        got += real[1:-1]
    assert got == expected[: len(got)] and len(expected) - len(got) < 22 // 4 + 1  # only a short tail is dropped
    assert tok.convert_tokens_to_ids("&") in got and "amp" not in tok.convert_ids_to_tokens(got)  # cleaned
