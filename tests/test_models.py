"""Tiny models trained for a few steps: save, reload through the public loaders, identical predictions."""
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conflictbrief.inference.briefer import Briefer
from conflictbrief.inference.clean import clean
import torch

from conflictbrief.inference.tagger import Tagger, predict_word_probs, viterbi_tags, word_windows
from conflictbrief.model.loading import load_tagger


def test_tagger_overfits_two_examples_and_reloads(_tiny_tagger_dir, tiny_tagger_dir):
    _, report = _tiny_tagger_dir
    assert report["best"]["f1"] >= 0.8, report["best"]  # learned the two training sentences
    for name in ("model.safetensors", "config.json", "training_config.yaml", "metrics.json", "README.md"):
        assert (tiny_tagger_dir / name).is_file(), name
    assert not list(tiny_tagger_dir.glob("*.bin"))
    tagger = Tagger.load(str(tiny_tagger_dir), device="cpu")
    text = "Syrian forces shelled Idlib on Monday with barrel bombs."
    first, second = tagger.tag([text])[0], Tagger.load(str(tiny_tagger_dir), device="cpu").tag([text])[0]
    assert first == second
    assert ("Location", "Idlib") in [(e.label, e.text) for e in first]


def test_long_text_is_windowed_not_truncated(tiny_tagger_dir):
    model, tok = load_tagger(str(tiny_tagger_dir), device="cpu")
    words = ("Syrian forces shelled Idlib on Monday with barrel bombs . " * 20).split()
    [probs] = predict_word_probs(model, tok, [words], max_length=16, stride=4)
    assert probs.shape[0] == len(words) == 200
    assert torch.allclose(probs.sum(-1), torch.ones(len(words)), atol=1e-4)  # every word was predicted
    assert word_windows([1] * 10, 4, 1)[-1][1] == 10
    assert word_windows([9, 1], 4, 1) == [(0, 1), (1, 2)]  # a word longer than the window keeps its slot


def test_windows_hold_whole_sentences_and_a_line_without_punctuation_stands_alone(tiny_tagger_dir):
    # Until 2026-12-07 windows of 256 subwords slid over the whole text, across sentences and table rows; a
    # model trained on single sentences read table rows packed together much worse (docs/measurements.md, "Windows").
    from conflictbrief.inference.tagger import sentence_segments, sentence_windows, words_text
    from conflictbrief.training.readers import words_with_offsets

    text = ("SOCCER - JAPAN WIN\nTOKYO 1996-12-06\nJapan beat Syria 2-1 on Friday. \"It was hard,\" the coach "
            "said.\nJapan 2 Syria 1\nChina 0 Qatar 1")
    words = words_with_offsets(text)
    segments = sentence_segments(text, [(a, b) for _, a, b in words])
    assert [(" ".join(w for w, _, _ in words[a:b]), shares) for a, b, shares in segments] == [
        ("SOCCER - JAPAN WIN", True), ("TOKYO 1996 - 12 - 06", False), ("Japan beat Syria 2 - 1 on Friday .", True),
        ('" It was hard , " the coach said .', True), ("Japan 2 Syria 1", False), ("China 0 Qatar 1", False)]
    ones = [1] * len(words)
    # the two sentences share a window; the dateline and each table row (no end punctuation, a digit) have
    # their own; the headline would share one, but the dateline follows it
    assert sentence_windows(ones, segments, 64, 4) == [(0, 4), (4, 10), (10, 29), (29, 33), (33, 37)]
    text2 = "Raed Saleh said people fled the camp\nIdlib\nThe bombing of Idlib resumed."
    words2 = words_with_offsets(text2)
    # a line of one name (a page's tag link) keeps the article around it
    assert sentence_windows([1] * len(words2), sentence_segments(text2, [(a, b) for _, a, b in words2]), 64, 4) == \
        [(0, len(words2))]
    # text that lost its punctuation is cut into sentences (clean.split_sentences); those pieces are prose, not
    # lines, and share a window even with a date in them (until 2026-12-07 each was read alone)
    text3 = ("Three CAF personnel were injured in an IED blast triggered by Maoist cadres in Bijapur District on "
             "February 6 reports The Asian Age Injured constables Nitesh Dewangan and Bhaluram Toppo were returning "
             "to their base camp on February 6 after a search operation in the Kutru area of the District Deputy "
             "Superintendent of Police Khoman Singh said The Maoists had planted the device on a road used by the "
             "troops since 2019 and it went off under the second vehicle\nJapan 2 Syria 1")
    words3 = words_with_offsets(text3)
    segments3 = sentence_segments(text3, [(a, b) for _, a, b in words3])
    assert [(words3[a][0], shares) for a, _, shares in segments3] == [
        ("Three", True), ("Injured", True), ("The", True), ("Japan", False)]
    assert sentence_windows([1] * len(words3), segments3, 128, 4) == [(0, len(words3) - 4), (len(words3) - 4,
                                                                                             len(words3))]
    # over the budget: the sentences part, and one longer than it slides within itself
    assert sentence_windows(ones, segments, 10, 2) == [(0, 4), (4, 10), (10, 19), (19, 29), (29, 33), (33, 37)]
    assert sentence_windows(ones, segments, 6, 2) == [(0, 4), (4, 10), (10, 16), (14, 19), (19, 25), (23, 29),
                                                      (29, 33), (33, 37)]
    assert sentence_segments(*words_text(["Gen", ".", "Ali", "left", "."])) == [(0, 2, True), (2, 5, True)]
    tagger = Tagger.load(str(tiny_tagger_dir), device="cpu")
    rows = ["Japan 2 Syria 1", "China 0 Qatar 1 Idlib"]
    together = tagger.tag(["\n".join(rows)])[0]
    alone = [tagger.tag([row])[0] for row in rows]
    shift = len(rows[0]) + 1
    assert [(e.label, e.start, e.end, round(e.score, 5)) for e in together] == \
        [(e.label, e.start, e.end, round(e.score, 5)) for e in alone[0]] + \
        [(e.label, e.start + shift, e.end + shift, round(e.score, 5)) for e in alone[1]]
    assert together  # (the tiny model tags "Idlib")
    # words that fit one window (a sentence of an evaluation file) are one window, as before
    words = "Maj . Gen . Ali said".split()
    assert tagger.tag_words([words]) == [[tagger.tag_list[i] for i in viterbi_tags(
        predict_word_probs(tagger.model, tagger.tokenizer, [words])[0], tagger.tag_list)]]


def test_briefer_trains_generates_and_resumes(_tiny_briefer_dir, tiny_briefer_dir, data_dir):
    _, report = _tiny_briefer_dir
    assert report["steps"] == 30 and (tiny_briefer_dir / "checkpoint" / "state.safetensors").is_file()
    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=16)
    out = briefer.brief([clean("Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey.")])
    assert isinstance(out[0]["text"], str) and out[0]["used"] == [0, 1]
    # resume two more steps from the checkpoint through the CLI
    cmd = [sys.executable, "-m", "conflictbrief.cli", "train", "briefer", "--train", str(data_dir / "pairs.jsonl"),
           "--output", str(tiny_briefer_dir), "--resume", "tiny_model={}", "max_steps=32", "eval=[]",
           "batch_size=4", "max_new_tokens=8", "num_beams=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stderr and "at step 30" in done.stderr
    metrics = json.loads((tiny_briefer_dir / "metrics.json").read_text())
    assert metrics["steps"] == 32 and metrics["train_seconds"] > report["train_seconds"] > 0  # summed over runs
    card = (tiny_briefer_dir / "README.md").read_text()
    assert "32 of 32 steps" in card
    first_card = (_tiny_briefer_dir[0] / "README.md").read_text()
    assert "30 of 30 steps" in first_card and "pairs.jsonl |" in first_card
    # its eval row has brief minus lead-3 with an interval, as history.jsonl has it
    assert re.search(r"pairs\.jsonl \|.*\| [+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\] \| \d+ \|", first_card)
    evaluations = [json.loads(line) for line in (_tiny_briefer_dir[0] / "history.jsonl").read_text().splitlines()]
    assert all("rougeL_vs_lead3" in v for e in evaluations for v in e.values() if isinstance(v, dict))



def test_a_briefer_reads_as_many_source_tokens_as_it_was_trained_with(tiny_briefer_dir, tiny_tagger_dir):
    # Until 2026-12-07 every loaded briefer read 256 tokens of salient sentences, whatever its
    # training_config.yaml said: a model trained on 128 tokens was fed twice as much at inference.
    import yaml

    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.model.loading import ModelLoadError

    article = clean(" ".join(f"Shelling hit district number {i} of Idlib province overnight, officials said."
                             for i in range(40)))
    saved = tiny_briefer_dir / "training_config.yaml"
    config = yaml.safe_load(saved.read_text())
    assert config["max_source_length"] == 256 and Briefer.load(str(tiny_briefer_dir)).max_source_length == 256
    config["max_source_length"] = 64
    saved.write_text(yaml.safe_dump(config))
    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=4)
    assert briefer.max_source_length == 64
    used_64 = briefer.brief([article])[0]["used"]
    used_256 = Briefer.load(str(tiny_briefer_dir), device="cpu", max_source_length=256, max_new_tokens=4) \
        .brief([article])[0]["used"]
    assert 2 <= len(used_64) < len(used_256) < 40
    pipeline = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu")
    assert pipeline.models["briefer"]["source_tokens"] == 64
    saved.unlink()  # no training config (a model from elsewhere): its own limit, 512 positions here
    assert Briefer.load(str(tiny_briefer_dir)).max_source_length == 512
    saved.write_text("max_source_length: many\n")
    with pytest.raises(ModelLoadError, match="training_config.yaml: max_source_length 'many' is not a number"):
        Briefer.load(str(tiny_briefer_dir))
    saved.write_text("max_source_length: [\n")
    with pytest.raises(ModelLoadError, match="training_config.yaml: not a training config"):
        Briefer.load(str(tiny_briefer_dir))

def test_a_seq2seq_briefer_reads_the_lead_of_each_report_of_an_event(tiny_briefer_dir):
    from conflictbrief.inference.briefer import source_for

    reports = [" ".join(f"Report {r} says shelling hit district number {i} of Idlib province overnight."
                        for i in range(12)) for r in "ABC"]
    tokenizer = Briefer.load(str(tiny_briefer_dir)).tokenizer
    joined, used, sentences = source_for(clean("\n\n".join(reports)), tokenizer, 64)
    assert [sentences[i][:8] for i in used] == ["Report A"] * len(used)  # one article: its start
    _, used, sentences = source_for(clean(reports), tokenizer, 64)
    assert {sentences[i][:8] for i in used} == {"Report A", "Report B", "Report C"}
    assert {0, 12, 24} <= set(used)  # the three leads, then what the budget leaves room for


def test_cli_train_rejects_bad_data_before_training(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Idlib", "entities": [{"start": 0, "end": 5, "label": "Town"}]}\n')
    done = subprocess.run([sys.executable, "-m", "conflictbrief.cli", "train", "tagger", "--train", str(bad),
                           "--output", str(tmp_path / "o"), "tiny_model={}"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "bad.jsonl:1: unknown label 'Town'" in done.stderr


def test_generation_is_confined_to_the_article_vocabulary(tiny_briefer_dir):
    from conflictbrief.inference.briefer import common_token_ids

    free = Briefer.load(str(tiny_briefer_dir), device="cpu", constrain_to_source=False, max_new_tokens=20,
                        num_beams=2, no_repeat_ngram_size=0)
    confined = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=20, num_beams=2,
                            no_repeat_ngram_size=0)
    # The tiny model was trained on other articles: left free it writes their words.
    sources = ["Talks in Moscow ended without agreement on Monday.", "Turkey hosts 3.5 million refugees."]
    tok, common = confined.tokenizer, common_token_ids(confined.tokenizer)
    free_out, confined_out = free.generate_raw(sources), confined.generate_raw(sources)
    outside = lambda text, src: set(tok(text, add_special_tokens=False)["input_ids"]) - common - set(  # noqa: E731
        tok(src, add_special_tokens=False)["input_ids"])
    assert any(outside(o, s) for o, s in zip(free_out, sources))
    assert all(o and not outside(o, s) for o, s in zip(confined_out, sources))


def test_headline_pairs_are_taught_as_headline_sep_brief():
    from transformers import AutoTokenizer

    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.briefer import featurize
    from conflictbrief.training.config import BrieferConfig

    tok = AutoTokenizer.from_pretrained(base_model_path())
    pairs = [{"text": "Troops left Mosul.", "brief": "Troops left.", "headline": "Mosul withdrawal"},
             {"text": "Troops left Mosul.", "brief": "Troops left.", "headline": None}]
    with_head, plain = featurize(pairs, tok, BrieferConfig())
    assert tok.decode(with_head["labels"], skip_special_tokens=True) == "mosul withdrawal | | | troops left."
    assert tok.decode(plain["labels"], skip_special_tokens=True) == "troops left."
    off = featurize(pairs[:1], tok, BrieferConfig(headline=False))[0]
    assert tok.decode(off["labels"], skip_special_tokens=True) == "troops left."


def test_shared_source_cache_gives_the_same_beams(tiny_briefer_dir):
    # Skipping the cross-attention reorder is exact: every beam of an article holds the same encoder states.
    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=20, num_beams=3,
                           no_repeat_ngram_size=0)
    sources = ["Syrian forces shelled Idlib on Monday.", "Turkey hosts 3.5 million Syrian refugees, officials said.",
               "Talks in Moscow ended without agreement."]
    assert briefer.generate_raw(sources) == briefer.generate_raw(sources, cache=None)
    assert len(briefer.generate_raw(sources, use_cache=False)) == 3  # no cache handed to generate then
    grouped = briefer.generate_raw(sources)
    briefer.group_beams = False  # each beam with its own copy of the source's keys and values
    assert briefer.generate_raw(sources) == grouped
    assert briefer.model.decoder.config._attn_implementation == "sdpa"  # restored after generation


def test_lean_beam_search_writes_what_transformers_generate_writes(tiny_briefer_dir):
    # The lean search (article columns only, finished articles leave the batch) against model.generate, with the
    # article-vocabulary constraint on and off and several stopping and n-gram settings.
    from conflictbrief.inference import beam

    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", batch_size=4)
    sources = ["Syrian forces shelled Idlib on Monday.", "Turkey hosts 3.5 million Syrian refugees, officials said.",
               "Talks in Moscow ended without agreement.", "Mosul", "Rebels said 12 fighters died near Aleppo and "
               "Hama after a week of shelling by government forces and their allies."]
    runs = 0
    for settings in ({"num_beams": 2, "max_new_tokens": 24, "no_repeat_ngram_size": 3},
                     {"num_beams": 3, "max_new_tokens": 16, "no_repeat_ngram_size": 2, "early_stopping": False},
                     {"num_beams": 4, "max_new_tokens": 12, "no_repeat_ngram_size": 0, "length_penalty": 0.5,
                      "early_stopping": "never"}):
        for constrained in (True, False):
            briefer.constrain_to_source = constrained
            briefer.lean_beams = False
            expected = briefer.generate_raw(sources, **settings)
            briefer.lean_beams = True
            assert beam.lean_settings(briefer.model, settings) is not None
            assert briefer.generate_raw(sources, **settings) == expected, (settings, constrained)
            runs += 1
    assert runs == 6
    enc = briefer.tokenizer(sources, padding=True, return_tensors="pt")
    config = beam.lean_settings(briefer.model, {"num_beams": 3, "max_new_tokens": 20})
    pruned = beam.beam_search(briefer.model, enc["input_ids"], enc["attention_mask"], config)
    assert torch.equal(pruned, beam.beam_search(briefer.model, enc["input_ids"], enc["attention_mask"], config,
                                                prune=False))


def test_lean_beam_search_scores_bfloat16_candidates_in_float32(tiny_briefer_dir):
    from conflictbrief.inference import beam

    model = Briefer.load(str(tiny_briefer_dir), device="cpu").model.to(torch.bfloat16)
    head = model.get_output_embeddings()
    seen = []
    original_bmm = torch.bmm
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "bmm", lambda a, b: seen.append(a.dtype) or original_bmm(a, b))
        tok = Briefer.load(str(tiny_briefer_dir), device="cpu").tokenizer
        enc = tok(["Syrian forces shelled Idlib on Monday.", "Turkey hosts 3.5 million refugees."], padding=True,
                  return_tensors="pt")
        config = beam.lean_settings(model, {"num_beams": 3, "max_new_tokens": 12})
        allowed = torch.zeros((2, head.out_features), dtype=torch.bool)
        allowed[:, enc["input_ids"].unique()] = True
        out = beam.beam_search(model, enc["input_ids"], enc["attention_mask"], config, allowed=allowed)
    assert seen and set(seen) == {torch.float32}  # candidate logits recomputed in float32, every step
    assert out.shape[0] == 2 and allowed.gather(1, out).all()  # still confined to the article's tokens
    assert not head._forward_hooks  # the hook that reads the output layer's input is removed
    seen.clear()
    beam.beam_search(model, enc["input_ids"], enc["attention_mask"], config, allowed=allowed, precise_logits=False)
    assert not seen


def test_lean_beam_search_leaves_other_settings_to_transformers(tiny_briefer_dir):
    from conflictbrief.inference.beam import lean_settings

    model = Briefer.load(str(tiny_briefer_dir), device="cpu").model
    assert lean_settings(model, {"num_beams": 4}) is not None
    for other in ({"num_beams": 1}, {"num_beams": 4, "do_sample": True}, {"num_beams": 4, "repetition_penalty": 1.2},
                  {"num_beams": 4, "num_return_sequences": 2}, {"num_beams": 4, "min_new_tokens": 5},
                  {"num_beams": 4, "use_cache": False}):
        assert lean_settings(model, other) is None, other


def test_grouped_cross_attention_equals_attention_over_repeated_source_rows():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from conflictbrief.inference.briefer import grouped_sdpa_attention

    torch.manual_seed(0)
    articles, beams, heads, length, dim = 3, 4, 2, 7, 8
    query = torch.randn(articles * beams, heads, 1, dim)
    key, value = torch.randn(articles, heads, length, dim), torch.randn(articles, heads, length, dim)
    mask = torch.ones(articles, 1, 1, length, dtype=torch.bool)
    mask[0, ..., 5:] = False  # the first article is padded
    module = torch.nn.Module()
    module.is_causal = False
    rep = lambda t: t.repeat_interleave(beams, dim=0)  # noqa: E731 - how transformers expands for beams
    want, _ = sdpa_attention_forward(module, query, rep(key), rep(value), rep(mask), scaling=0.3)
    got, _ = grouped_sdpa_attention(module, query, key, value, rep(mask), scaling=0.3)
    assert got.shape == want.shape == (articles * beams, 1, heads, dim)
    assert torch.allclose(got, want, atol=1e-6)
    same, _ = grouped_sdpa_attention(module, query, rep(key), rep(value), rep(mask), scaling=0.3)
    assert torch.equal(same, want)  # one row per beam: plain SDPA


def test_repair_bio_makes_valid_iob2_and_moves_a_preposition_out_of_an_entity():
    from conflictbrief.inference.tagger import repair_bio

    assert repair_bio(["I-Person", "I-Person", "O", "I-Location"]) == ["B-Person", "I-Person", "O", "B-Location"]
    words = ["south", "of", "the", "city", "of", "Idlib"]
    tags = ["O", "B-Location", "I-Location", "I-Location", "I-Location", "I-Location"]
    assert repair_bio(tags, words) == ["O", "O", "B-Location", "I-Location", "I-Location", "I-Location"]
    assert repair_bio(tags) == tags  # without words only the IOB2 repair
    assert repair_bio(["I-Weapon", "I-Weapon"], ["and", "missiles"]) == ["O", "B-Weapon"]
    words = ["the", "country", "'", "s", "military", "and", "Lobo", "'", "s"]
    tags = ["O", "O", "O", "B-Organisation", "I-Organisation", "O", "B-Person", "O", "B-Person"]
    assert repair_bio(tags, words) == ["O", "O", "O", "O", "B-Organisation", "O", "B-Person", "O", "O"]
    assert repair_bio(["O", "B-Quantity", "I-Quantity", "O"], ["at", "least", "50,000", "fled"]) == \
        ["B-Quantity", "I-Quantity", "I-Quantity", "O"]
    assert repair_bio(["B-Person", "I-Person", "I-Person", "O", "B-Location", "I-Location"],
                      ["imam", "of", "the", "mosque", "is", "Tocoa"]) == ["B-Person", "O", "O", "O", "O", "B-Location"]
    assert repair_bio(["B-Organisation", "O"], ["IS", "fighters"]) == ["B-Organisation", "O"]


def test_viterbi_keeps_one_consistent_entity_where_argmax_would_split_it():
    from conflictbrief.inference.tagger import viterbi_tags

    tags = ["O", "B-Organisation", "I-Organisation", "B-Location", "I-Location"]
    # "the Syrian Army": per-word argmax is O, B-Organisation, I-Location (a broken entity); the best valid
    # sequence keeps the organisation whole
    probs = torch.tensor([[0.9, 0.02, 0.02, 0.04, 0.02],
                          [0.1, 0.5, 0.05, 0.3, 0.05],
                          [0.1, 0.05, 0.4, 0.0, 0.45]])
    assert [tags[i] for i in probs.argmax(-1)] == ["O", "B-Organisation", "I-Location"]
    assert [tags[i] for i in viterbi_tags(probs, tags)] == ["O", "B-Organisation", "I-Organisation"]
    # a sentence may not open with I-X, however likely
    assert [tags[i] for i in viterbi_tags(torch.tensor([[0.1, 0.3, 0.6, 0.0, 0.0]]), tags)] == ["B-Organisation"]
    assert viterbi_tags(torch.tensor([[0.9, 0.1, 0.0, 0.0, 0.0]]), tags) == [0]


def test_no_entity_begins_or_ends_on_a_punctuation_mark_and_no_article_is_an_entity_alone():
    from conflictbrief.inference.tagger import repair_bio

    # what the shipped tagger made on re3d dev: "3rd Battalion ,", ", Mosul district", "," and a lone "a"
    # Weapon before an untagged "VBIED"
    assert repair_bio(["B-Organisation", "I-Organisation", "I-Organisation", "B-Organisation"],
                      ["3rd", "Battalion", ",", "6th"]) == ["B-Organisation", "I-Organisation", "O", "B-Organisation"]
    assert repair_bio(["O", "B-Location", "I-Location", "I-Location"], ["in", ",", "Mosul", "district"]) == \
        ["O", "O", "B-Location", "I-Location"]
    assert repair_bio(["B-Location"], [","]) == ["O"]
    assert repair_bio(["B-Weapon", "O", "O"], ["a", "VBIED", ","]) == ["O", "O", "O"]
    assert repair_bio(["B-Weapon", "B-Weapon"], ["The", "VBIED"]) == ["O", "B-Weapon"]
    # on news: "HSBC’" and "'Elizabeth"
    assert repair_bio(["B-Organisation", "I-Organisation", "O"], ["HSBC", "’", "s"]) == ["B-Organisation", "O", "O"]
    assert repair_bio(["B-Person", "I-Person"], ["'", "Elizabeth"]) == ["O", "B-Person"]
    # a hyphen may end an entity (the text path joins "al -" + "Numan") but never begins one ("-19")
    assert repair_bio(["B-Quantity", "I-Quantity"], ["-", "19"]) == ["O", "B-Quantity"]
    assert repair_bio(["B-Location", "I-Location"], ["al", "-"]) == ["B-Location", "I-Location"]
    # kept: an article inside an entity, punctuation inside one, "%", and "@" of a handle
    assert repair_bio(["B-Weapon", "I-Weapon"], ["a", "VBIED"]) == ["B-Weapon", "I-Weapon"]
    assert repair_bio(["B-Location", "I-Location", "I-Location"], ["Karrada", ",", "Baghdad"]) == \
        ["B-Location", "I-Location", "I-Location"]
    assert repair_bio(["B-Quantity", "I-Quantity"], ["20", "%"]) == ["B-Quantity", "I-Quantity"]
    assert repair_bio(["B-Organisation", "I-Organisation"], ["@", "UKinIraq"]) == ["B-Organisation", "I-Organisation"]
    # one rule may expose another: "'s party" loses the apostrophe, then the possessive's "s"
    assert repair_bio(["B-Organisation", "I-Organisation", "I-Organisation"], ["'", "s", "party"]) == \
        ["O", "O", "B-Organisation"]
    # without words nothing of this applies
    assert repair_bio(["B-Location"]) == ["B-Location"]


def test_a_person_named_in_full_keeps_that_label_where_the_text_names_them_again():
    from conflictbrief.inference.tagger import decode_entities, person_consistent_tags
    from conflictbrief.training.readers import words_with_offsets

    id2label = {0: "O", 1: "B-Person", 2: "I-Person", 3: "B-Organisation", 4: "I-Organisation", 5: "B-Location",
                6: "I-Location"}
    ids = {v: k for k, v in id2label.items()}

    def decode(text, tags, score=0.95, consistent=True):
        words = words_with_offsets(text)
        tags = tags.split()
        assert len(tags) == len(words), [w for w, _, _ in words]
        probs = torch.full((len(words), 7), 0.005)
        probs[range(len(words)), [ids[t] for t in tags]] = score
        found = decode_entities(text, words, probs, id2label, person="Person" if consistent else None)
        return [(e.label, e.text, e.score) for e in found]

    # what the shipped tagger did in the seed article and in CoNLL-2003 test documents: the surname alone as an
    # Organisation or a Location
    text = "President Bashar al-Assad spoke. Forces of al-Assad took Idlib. Assad met Fawaz Bitar. Bitar left."
    tags = ("B-Person I-Person I-Person I-Person I-Person O O B-Organisation O B-Organisation I-Organisation "
            "I-Organisation O B-Location O B-Organisation O B-Person I-Person O B-Location O O")
    found = decode(text, tags)
    assert [(label, t) for label, t, _ in found] == [
        ("Person", "President Bashar al-Assad"), ("Organisation", "Forces"), ("Person", "al-Assad"),
        ("Location", "Idlib"), ("Organisation", "Assad"), ("Person", "Fawaz Bitar"), ("Person", "Bitar")]
    assert all(score == 0.95 for _, _, score in found)  # a relabelled mention keeps the score the model gave it
    assert [label for label, _, _ in decode(text, tags, consistent=False)] == \
        ["Person", "Organisation", "Organisation", "Location", "Organisation", "Person", "Location"]
    # a full name the model is unsure of, one word, or a text without capitals is no evidence
    assert [label for label, _, _ in decode(text, tags, score=0.85)][-1] == "Location"
    assert [label for label, _, _ in decode("Bitar spoke. Bitar left.", "B-Person O O B-Location O O")] == \
        ["Person", "Location"]
    assert [label for label, _, _ in decode("fawaz bitar spoke. bitar left.", "B-Person I-Person O O B-Location O O")
            ] == ["Person", "Location"]
    # the same rule on words (``Tagger.tag_words``); a surname that begins a longer name ("Kemeys Folly", a house)
    # and a full name ("Hull KR", which the model called a Person once) keep their labels; so does all of it for
    # a model without a person label
    words = ["Peter", "Munk", "of", "Barrick", "said", "Munk", "is", "in", "Munk", "Hall", "near", "Hull", "KR", ","]
    tags = ["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "O", "O", "B-LOC", "O", "O", "B-ORG", "I-ORG", "O"]

    def words_rule(tags, person="PER", score=0.95):
        return person_consistent_tags(tags, words, lambda a, b: " ".join(words[a:b]), [score] * len(tags), person)

    assert words_rule(tags) == [*tags[:5], "B-PER", *tags[6:]]
    assert words_rule(tags, person=None) == tags
    assert words_rule(tags, score=0.89) == tags
    hull = [*tags[:11], "B-PER", "I-PER", "O"]  # "Hull KR" a Person too: no surname ("KR"), nothing changes
    assert words_rule(hull) == [*hull[:5], "B-PER", *hull[6:]]
    words = ["Kleiner", "Perkins", "hired", "her", ";", "Kleiner", "Perkins", "said"]
    tags = ["B-PER", "I-PER", "O", "O", "O", "B-ORG", "I-ORG", "O"]
    assert words_rule(tags) == tags
    # the last word of a full name is a name, not an acronym ("Janice Atkinson MEP")
    words = ["Janice", "Atkinson", "MEP", "said", "the", "MEP", "left"]
    tags = ["B-PER", "I-PER", "I-PER", "O", "O", "B-ORG", "O"]
    assert words_rule(tags) == tags


def test_money_cut_apart_by_the_word_split_comes_back_as_one_entity():
    from conflictbrief.inference.tagger import decode_entities
    from conflictbrief.training.readers import words_with_offsets

    id2label = {0: "O", 1: "B-Money", 2: "I-Money", 3: "B-Quantity", 4: "I-Quantity"}
    # what the shipped tagger did inside news articles: "£" and "5million" as two entities, "£" alone, and
    # "£2" then "989" with the comma between left out
    for text, tags, want in (("It paid £5million for it", "O O B-Money B-Money O O", ["£5million"]),
                             ("It paid £276million.", "O O B-Money O O", ["£276million"]),
                             ("his £2,989 in", "O B-Money I-Money O B-Money O", ["£2,989"]),
                             ("about £2,000 a month", "O B-Money I-Money I-Money I-Money I-Money O", ["£2,000"]),
                             # a space between: two entities stay two
                             ("from £5 to £10 a day", "O B-Money I-Money O B-Money I-Money O O",
                              ["£5", "£10"]),
                             ("2 000 people", "B-Quantity B-Quantity O", ["2", "000"]),
                             # the digits after the comma are another entity: the comma joins neither
                             ("On 17,2015 cases", "O B-Quantity O B-Money O", ["17", "2015"])):
        words = words_with_offsets(text)
        tags = tags.split()
        assert len(tags) == len(words), [w for w, _, _ in words]
        probs = torch.full((len(words), 5), 0.01)
        probs[range(len(words)), [{v: k for k, v in id2label.items()}[t] for t in tags]] = 0.9
        found = decode_entities(text, words, probs, id2label)
        assert [e.text for e in found] == want, text
        assert all(e.label == ("Quantity" if text[0] == "2" or e.text == "17" else "Money") for e in found)
        if text.startswith("On"):  # each scores its own words' tags, not the comma's
            assert [e.score for e in found] == [0.9, 0.9]
    # a joined word scores the probability of the tag it now has (0.01 here), not of the O it had
    words = words_with_offsets("It paid £276million.")
    probs = torch.full((len(words), 5), 0.01)
    probs[range(len(words)), [0, 0, 1, 0, 0]] = 0.9
    assert decode_entities("It paid £276million.", words, probs, id2label)[0].score == round((0.9 + 0.01) / 2, 4)


def test_a_name_cut_in_two_at_a_space_is_one_entity():
    from conflictbrief.inference.tagger import decode_entities, join_split_names
    from conflictbrief.training.readers import words_with_offsets

    id2label = {0: "O", 1: "B-Person", 2: "I-Person", 3: "B-Location", 4: "I-Location", 5: "B-Organisation",
                6: "I-Organisation"}
    ids = {v: k for k, v in id2label.items()}

    def decode(text, tags, score=0.9):
        words = words_with_offsets(text)
        tags = tags.split()
        assert len(tags) == len(words), [w for w, _, _ in words]
        probs = torch.full((len(words), 7), 0.01)
        probs[range(len(words)), [ids[t] for t in tags]] = score
        for i, tag in enumerate(tags):  # the other tag of the same label: what a joined word scores
            if tag != "O":
                probs[i, ids[("I-" if tag[0] == "B" else "B-") + tag[2:]]] = 0.05
        return [(e.label, e.text, e.score) for e in decode_entities(text, words, probs, id2label, person="Person")]

    # what the shipped tagger did in InSight Crime articles: a title cut off the name, a place name cut in two
    assert decode("President Evo Morales spoke.", "B-Person B-Person I-Person O O") == \
        [("Person", "President Evo Morales", round((0.9 + 0.05 + 0.9) / 3, 4))]  # "Evo" scores its I-Person
    assert [t for _, t, _ in decode("El Salvador registered 58 murders", "B-Location B-Location O O O")] == \
        ["El Salvador"]
    # kept apart: a possessive ("Lebanon's" + "Hezbollah"), a word in lower case on either side ("the young man"
    # + "he", as re3d has them), a line break, two labels, and a comma between
    for text, tags, want in (
            ("Lebanon's Hezbollah fired", "B-Organisation I-Organisation I-Organisation B-Organisation O",
             ["Lebanon's", "Hezbollah"]),
            ("the young man he said", "B-Person I-Person I-Person B-Person O", ["the young man", "he"]),
            ("Rebels in Idlib\nAleppo fell", "O O B-Location B-Location O", ["Idlib", "Aleppo"]),
            ("The Syrian Observatory said", "B-Location I-Location B-Organisation O", ["The Syrian", "Observatory"]),
            ("Idlib , Aleppo", "B-Location O B-Location", ["Idlib", "Aleppo"]),
            # a subheading run into its text (InSight Crime): the capitalised "The" begins a sentence
            ("the Best Corner of America The 323 kilometers of coast", "O B-Location I-Location I-Location "
             "I-Location B-Location I-Location I-Location O O", ["Best Corner of America", "The 323 kilometers"])):
        assert [t for _, t, _ in decode(text, tags)] == want, text
    # after a surname took the Person label of the full name: "Chong" Person + "Coronado" Organisation (news)
    assert [(label, t) for label, t, _ in decode(
        "Ernesto Chong Coronado is a racer . Chong Coronado left",
        "B-Person I-Person I-Person O O O O B-Person B-Organisation O", score=0.95)][1:] == \
        [("Person", "Chong Coronado")]
    # on words (``Tagger.tag_words``, CoNLL/BIO data): the same rule, without line breaks to know of
    assert join_split_names(["B-Person", "B-Person", "I-Person", "O"], ["President", "Jacques", "Chirac", "said"]) \
        == ["B-Person", "I-Person", "I-Person", "O"]
    assert join_split_names(["B-Person", "B-Person"], ["goalkeeper", "Bitar"]) == ["B-Person", "B-Person"]
    assert join_split_names(["B-Location", "B-Location"], ["Idlib", "Aleppo"], sentence_starts={1}) == \
        ["B-Location", "B-Location"]
    # nor across the cut of a run-on (text that lost its punctuation, as SATP's): "... reports The Asian Age" |
    # "Injured constables ..."
    text = ("Maoists attacked a police camp in the district on the night of February 6 and fired at the guards "
            "for two hours before they fled into the forest leaving behind arms and explosives which the forces "
            "recovered in a search of the area on the next day reports The Asian Age Injured constables were "
            "taken to a hospital in the town where they are being treated")
    words = [w for w, _, _ in words_with_offsets(text)]
    tags = ["O"] * len(words)
    age = words.index("Age")
    tags[age - 2: age + 3] = ["B-Organisation", "I-Organisation", "I-Organisation", "B-Organisation",
                              "I-Organisation"]
    assert [t for _, t, _ in decode(text, " ".join(tags))] == ["The Asian Age", "Injured constables"]


def test_an_entity_takes_in_the_partner_of_a_bracket_it_leaves_open():
    from conflictbrief.inference.tagger import snap_span

    text = "said the Royal United Services Institute (RUSI) on Monday"
    start, end = text.index("the"), text.index(")")
    assert text[slice(*snap_span(text, start, end))] == "the Royal United Services Institute (RUSI)"
    text = "two (Special Forces) regiments"
    start, end = text.index("Special"), len(text)
    assert text[slice(*snap_span(text, start, end))] == "(Special Forces) regiments"
    text = "Tim (Henman said"  # no partner beside it: left as it is
    assert text[slice(*snap_span(text, 0, len("Tim (Henman")))] == "Tim (Henman"


def test_a_spaced_hyphen_leaves_an_entity_and_a_joining_one_does_not():
    from conflictbrief.inference.tagger import decode_entities
    from conflictbrief.training.readers import words_with_offsets

    id2label = {0: "O", 1: "B-Organisation", 2: "I-Organisation"}
    for text, tags, want in (("The al-Qaeda group", "O B I I I", ["al-Qaeda group"]),
                             ("Said al - Qaeda group", "O B I I I", ["al - Qaeda group"]),
                             ("Near 7000 - mostly men", "O B I O O", ["7000"]),
                             ("Near 7000-odd men", "O B I O O", ["7000-odd"])):
        words = words_with_offsets(text)
        assert len(words) == 5, words
        probs = torch.zeros(len(words), 3)
        probs[range(len(words)), [{"O": 0, "B": 1, "I": 2}[t] for t in tags.split()]] = 1.0
        assert [e.text for e in decode_entities(text, words, probs, id2label)] == want, text


def test_restricted_output_layer_is_exact_for_greedy_and_left_out_of_beam_search(tiny_briefer_dir):
    from conflictbrief.inference.briefer import RestrictedOutput

    full = torch.nn.Linear(4, 6)
    hidden = torch.randn(4, 1, 4)  # rows x one position
    out = RestrictedOutput(full, torch.tensor([0, 2, 5]))(hidden)
    assert torch.allclose(out[..., [0, 2, 5]], full(hidden)[..., [0, 2, 5]])
    assert out[..., [1, 3, 4]].isneginf().all()

    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=20, no_repeat_ngram_size=0)
    layer = briefer.model.get_output_embeddings()
    calls = []
    layer.register_forward_hook(lambda *a: calls.append(1))
    sources = ["Syrian forces shelled Idlib on Monday.", "Turkey hosts 3.5 million Syrian refugees, officials said."]
    restricted = briefer.generate_raw(sources, num_beams=1)
    assert not calls and briefer.model.get_output_embeddings() is layer  # swapped in, then put back
    briefer.restrict_output = False
    assert briefer.generate_raw(sources, num_beams=1) == restricted and calls
    calls.clear()
    briefer.restrict_output = True
    briefer.generate_raw(sources, num_beams=2)
    assert calls  # beam search scores with the full layer


def test_entities_cover_whole_hyphenated_names_and_drop_stray_brackets():
    from conflictbrief.inference.tagger import decode_entities
    from conflictbrief.training.readers import words_with_offsets

    text = "Forces of President al-Assad and Russian-backed units reached Maarat al-Numan, 33 km (20 miles) away."
    words = words_with_offsets(text)
    # Forces of President al - Assad and Russian - backed units reached Maarat al - Numan , 33 km ( 20 miles ) away .
    tags = ("O O O B-Person B-Organisation B-Person O B-Nationality O O O O B-Organisation I-Organisation "
            "I-Organisation B-Person O O O O B-Quantity I-Quantity I-Quantity O O").split()
    assert len(tags) == len(words)
    id2label = dict(enumerate(sorted(set(tags))))
    label2id = {v: k for k, v in id2label.items()}
    probs = torch.zeros(len(words), len(id2label))
    probs[range(len(words)), [label2id[t] for t in tags]] = 1.0
    found = [(e.label, e.text, text[e.start:e.end]) for e in decode_entities(text, words, probs, id2label)]
    assert [(label, t) for label, t, _ in found] == [
        ("Person", "al-Assad"), ("Nationality", "Russian"), ("Organisation", "Maarat al-Numan"),
        ("Quantity", "20 miles")]
    assert all(t == sliced for _, t, sliced in found)


def test_case_feature_reaches_the_uncased_model_through_token_types(data_dir, tmp_path):
    from conflictbrief.inference.tagger import encode_words
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    config = TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=4)],
                          output_dir=str(tmp_path / "cased"), batch_size=8, learning_rate=3e-3, max_steps=10,
                          log_every=1000, case_feature=True)
    train_tagger(config, log=lambda m: None)
    assert json.loads((tmp_path / "cased" / "config.json").read_text())["case_feature"] is True
    assert "case feature: on" in (tmp_path / "cased" / "README.md").read_text()   # the model card says so
    model, tok = load_tagger(str(tmp_path / "cased"), device="cpu")
    [window] = encode_words(tok, ["The", "UN", "in", "idlib"], 16, 4, case=True)
    assert window.token_types == [0] + [1] * len(tok.tokenize("The UN")) + [0] * len(tok.tokenize("in idlib")) + [0]
    # the uncased tokenizer gives "Idlib" and "idlib" the same ids; only the case bit tells them apart
    upper, lower = predict_word_probs(model, tok, [["shelled", "Idlib"], ["shelled", "idlib"]])
    assert not torch.allclose(upper[1], lower[1])
    model.config.case_feature = False  # the same weights without the feature: no difference
    upper, lower = predict_word_probs(model, tok, [["shelled", "Idlib"], ["shelled", "idlib"]])
    assert torch.equal(upper[1], lower[1])


def test_case_bits_are_dropped_where_capitals_say_nothing():
    from conflictbrief.inference.tagger import case_types

    assert case_types(["Syrian", "forces", "shelled", "Idlib", "on", "Monday", "."]) == [1, 0, 0, 1, 0, 1, 0]
    assert case_types("REBELS SHELLED IDLIB ON MONDAY".split()) == [0] * 5       # ALL CAPS
    assert case_types("Rebels Shell Idlib As Talks Fail".split()) == [0] * 6     # Title Case headline
    assert case_types(["Bashar", "al-Assad"]) == [1, 0]                           # too short to judge


def test_case_dropout_hides_case_bits_from_a_share_of_examples(tmp_path):
    from transformers import BertTokenizerFast

    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.readers import to_dataset
    from conflictbrief.training.tagger import featurize

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "idlib", "was", "shelled"]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    rows = [{"id": str(i), "tokens": ["Idlib", "was", "shelled"], "tags": ["B-Location", "O", "O"], "mapping": None}
            for i in range(200)]
    schema = LabelSchema.from_yaml(None)

    def capitalised(dropout):
        feats = featurize(to_dataset(rows), tok, schema, 16, 4, case=True, case_dropout=dropout, seed=1)
        return sum(t[1] for t in feats["token_types"])

    assert capitalised(0.0) == 200
    assert 140 < capitalised(0.25) < 180   # about 150 keep their bits; repeats of one example differ



def test_evaluation_of_a_span_file_windows_its_text_as_tag_does(tiny_tagger_dir):
    # A span file (or a Label Studio export) has the text with its line breaks: evaluate tagger reads it in
    # the windows Tagger.tag makes of that text, table rows apart, not in windows of its words alone.
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.readers import spans_to_example
    from conflictbrief.training.tagger import evaluate_tagger, text_segments

    tagger = Tagger.load(str(tiny_tagger_dir), device="cpu")
    text = "Japan 2 Syria 1\nChina 0 Qatar 1 Idlib"
    found = tagger.tag([text])[0]
    assert found
    example = spans_to_example(text, [(e.start, e.end, e.label) for e in found], LabelSchema.from_yaml(None), None,
                               "mine.jsonl:1")
    assert text_segments(example) == [(0, 4, False), (4, 9, False)]
    assert evaluate_tagger(tagger, [example])["f1"] == 1.0  # the gold is what tag() found in the text
    assert text_segments({**example, "tokens": example["tokens"][1:]}) is None  # words that are not the text's
    assert text_segments({"tokens": ["Idlib"], "tags": ["B-Location"], "mapping": None}) is None  # CoNLL

def test_a_long_training_example_is_windowed_by_its_sentences_as_evaluation_windows_it():
    from transformers import AutoTokenizer

    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.readers import to_dataset
    from conflictbrief.training.tagger import featurize

    tok = AutoTokenizer.from_pretrained(base_model_path())
    sentence = ["Aleppo", "was", "shelled", "again", "."]  # 6 subwords
    tags = ["B-Location", "O", "O", "O", "O"]
    rows = [{"id": "a", "tokens": sentence * 5, "tags": tags * 5, "mapping": None},  # 30 subwords
            {"id": "b", "tokens": sentence, "tags": tags, "mapping": None}]
    feats = featurize(to_dataset(rows), tok, LabelSchema.from_yaml(None), 14, 4)  # 12 subwords a window
    start = [tok.cls_token_id, tok("Aleppo", add_special_tokens=False)["input_ids"][0]]
    # two sentences a window (12 subwords), none cut, no overlap; a sentence that fits is one window as before
    assert [len(ids) for ids in feats["input_ids"]] == [14, 14, 8, 8]
    assert all(ids[:2] == start and ids[-1] == tok.sep_token_id for ids in feats["input_ids"])

def test_training_windows_a_span_record_as_tag_windows_its_text(tmp_path):
    # A record read from a text (span file, Label Studio, Doccano) is trained on in the windows Tagger.tag makes
    # of that text, line breaks included: a table row alone, prose sentences together; its mention-replaced
    # copies keep those sentences, moved with the mentions.
    from transformers import AutoTokenizer

    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training.config import DataFile
    from conflictbrief.training.readers import to_dataset
    from conflictbrief.training.tagger import featurize, load_examples, moved_segments

    text = "Japan 2 Syria 1\nShelling hit Aleppo. Rebels left Idlib."
    spans = [{"start": 0, "end": 5, "label": "Location"}, {"start": 8, "end": 13, "label": "Location"},
             {"start": 29, "end": 35, "label": "Location"}, {"start": 49, "end": 54, "label": "Location"}]
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"text": text, "entities": spans}) + "\n")
    schema = LabelSchema.from_yaml(None)
    original, *copies = load_examples([DataFile(str(f), augment=3)], schema, seed=1)
    assert original["segments"] == [(0, 4, False), (4, 8, True), (8, 12, True)]
    tok = AutoTokenizer.from_pretrained(base_model_path())
    [row_window, prose_window] = featurize(to_dataset([original]), tok, schema, 64, 8)["input_ids"]
    assert tok.decode(row_window[1:-1]) == "japan 2 syria 1"  # alone, as tag() reads it
    assert tok.decode(prose_window[1:-1]) == "shelling hit aleppo. rebels left idlib."
    assert any(c["tokens"] != original["tokens"] for c in copies)
    for copy in copies:
        first_row = copy["tokens"][: copy["segments"][0][1]]
        assert first_row[-1] == "1" and copy["segments"][-1][1] == len(copy["tokens"])
        assert len(featurize(to_dataset([copy]), tok, schema, 64, 8)) == 2
    # a sentence boundary inside a replaced mention goes to the new mention's end
    assert moved_segments([(0, 3, True), (3, 6, True)], [(2, 4, 2, 3)]) == [(0, 3, True), (3, 5, True)]
    assert moved_segments([(0, 4, False), (4, 9, True)], [(0, 1, 0, 2)]) == [(0, 5, False), (5, 10, True)]
    assert moved_segments(None, [(0, 1, 0, 2)]) is None


def test_weight_average_is_the_mean_of_the_last_epochs_weights(tmp_path, data_dir, monkeypatch):
    # average_epochs: N evaluates, at the end, the mean of the trainable weights at the ends of the last N
    # epochs, and keeps it like any evaluation; the snapshots on disk go once it is done, and a finished run
    # resumed does not average again.
    from conflictbrief.training import tagger as training
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.loop import WeightAverage, epoch_end_steps

    assert epoch_end_steps(10, 4, 2) == [8, 10] and epoch_end_steps(8, 4, 5) == [4, 8]
    assert epoch_end_steps(8, 4, 0) == []
    layer = torch.nn.Linear(2, 2)
    layer.bias.requires_grad_(False)  # frozen weights are not averaged (nor stored)
    average = WeightAverage(tmp_path / "avg", [2, 3])
    for step, value in ((1, 5.0), (2, 1.0), (3, 2.0)):
        torch.nn.init.constant_(layer.weight, value)
        average.snapshot(layer, step)  # step 1 is not one of the averaged steps
    assert average.missing() == [] and sorted(p.name for p in (tmp_path / "avg").iterdir()) == [
        "step-2.safetensors", "step-3.safetensors"]
    bias = layer.bias.clone()
    average.load_into(layer)
    assert torch.equal(layer.weight, torch.full((2, 2), 1.5)) and torch.equal(layer.bias, bias)
    average.clear()
    assert not (tmp_path / "avg").exists()

    seen = []  # the classifier weights each evaluation read
    evaluate = training.evaluate_tagger
    monkeypatch.setattr(training, "evaluate_tagger",
                        lambda t, *a, **k: seen.append(t.model.classifier.weight.detach().clone()) or evaluate(t, *a, **k))
    spans = str(data_dir / "spans.jsonl")
    config = TaggerConfig(tiny_model=TinyModel(), train=[DataFile(spans, repeat=4)], eval=DataFile(spans),
                          output_dir=str(tmp_path / "out"), batch_size=8, learning_rate=3e-3, epochs=3,
                          average_epochs=2, log_every=1000)
    report = training.train_tagger(config, log=lambda m: None)
    history = report["history"]
    assert [h.get("averaged_epochs") for h in history] == [None, None, None, 2]
    assert history[-1]["step"] == history[-2]["step"] == report["total_steps"]
    assert len(seen) == 4 and torch.allclose(seen[3], (seen[1] + seen[2]) / 2, atol=1e-6)
    assert not (tmp_path / "out" / "average").exists()
    assert report["best"] == max(history, key=lambda h: h["macro_f1"]) | {"per_label": report["best"]["per_label"],
                                                                          "label_errors": report["best"]["label_errors"]}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "The mean of the weights at the ends of the last 2 epochs" in card
    # the card says what the evaluations that were not kept scored: the kept one is their maximum
    mean = sum(h["macro_f1"] for h in history[:3]) / 3
    assert (f"best of 4 evaluations of this eval set, which flatters it. The final weights scored micro F1 "
            f"{history[2]['f1']:.4f}, macro F1 {history[2]['macro_f1']:.4f}; the last 3 evaluations averaged") in card
    assert f"macro F1 {mean:.4f}." in card
    again = training.train_tagger(config, resume=True, log=lambda m: None)
    assert len(again["history"]) == 4 and len(seen) == 4

    # without an eval set the latest model is kept: the average
    report = training.train_tagger(dataclasses.replace(config, eval=None, output_dir=str(tmp_path / "noeval")),
                                   log=lambda m: None)
    assert report["best"] == {"step": report["total_steps"], "averaged_epochs": 2}
    card = (tmp_path / "noeval" / "README.md").read_text()
    assert (f"step {report['total_steps']}, the mean of the weights at the ends of the last 2 epochs)" in card
            and "F1 None" not in card)


def test_training_evaluates_in_the_windows_tag_reads_and_no_window_outgrows_the_positions(tmp_path, data_dir,
                                                                                         monkeypatch):
    # The evaluations of train tagger select the model and fill its card: they read as tag() reads (WINDOW
    # subwords), not in training's max_length, which differ on an article of a span file or a Label Studio
    # export. And a model with fewer positions than a window gets windows it can take (it raised IndexError).
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from conflictbrief.inference import tagger as tagger_module
    from conflictbrief.model.loading import base_model_path
    from conflictbrief.training import tagger as training
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel

    seen = []
    evaluate = training.evaluate_tagger
    monkeypatch.setattr(training, "evaluate_tagger", lambda t, *a, **k: seen.append(t.max_length) or evaluate(t, *a, **k))
    spans = str(data_dir / "spans.jsonl")
    training.train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(spans)], eval=DataFile(spans),
                                       output_dir=str(tmp_path / "out"), max_length=32, max_steps=1,
                                       log_every=1000), log=lambda m: None)
    assert seen == [tagger_module.WINDOW]

    tok = AutoTokenizer.from_pretrained(base_model_path())
    model = BertForTokenClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=32,
                                                  max_position_embeddings=40, num_labels=3,
                                                  id2label={0: "O", 1: "B-Location", 2: "I-Location"}))
    tagger = Tagger(model.eval(), tok)
    assert tagger.max_length == 40
    [entities] = tagger.tag(["Shelling hit the town of Maarat al-Numan again on Monday. " * 12])
    assert all(0 <= e.start < e.end for e in entities)


def test_position_limits_and_the_briefer_lengths_they_bound(tmp_path, data_dir):
    from transformers import BartConfig, BertConfig, EncoderDecoderConfig, RobertaConfig, T5Config

    from conflictbrief.model.loading import position_limit, seq2seq_position_limits
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, ConfigError, DataFile, TinyModel

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # roberta-base
    assert position_limit(BartConfig(max_position_embeddings=1024)) == 1024  # BART's offset is its own
    assert position_limit(T5Config()) is None  # relative positions
    pair = EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(max_position_embeddings=512),
                                                             BertConfig(max_position_embeddings=128))
    assert seq2seq_position_limits(pair) == (512, 128)
    pairs = str(data_dir / "pairs.jsonl")
    base = dict(tiny_model=TinyModel(), train=[DataFile(pairs)], output_dir=str(tmp_path / "b"), max_steps=1)
    for key, value, said in (("max_source_length", 600, "max_source_length 600: the encoder"),
                             ("max_target_length", 513, "max_target_length 513: the decoder"),
                             ("max_new_tokens", 512, r"max_new_tokens 512 \(with the start token, 513\): the decoder")):
        with pytest.raises(ConfigError, match=said + r".* at most 512 tokens"):
            train_briefer(BrieferConfig(**base, **{key: value}), log=lambda m: None)
    from conflictbrief.training.config import MlmConfig
    from conflictbrief.training.mlm import train_mlm

    with pytest.raises(ConfigError, match=r"max_length 600: minilm reads at most 512 tokens .* give max_length=512"):
        train_mlm(MlmConfig(tiny_model=TinyModel(), train=[DataFile(pairs)], output_dir=str(tmp_path / "m"),
                            max_length=600, max_steps=1), log=lambda m: None)


def test_mention_replacement_swaps_whole_mentions_within_a_label():
    import random

    from conflictbrief.training.tagger import mention_spans, replace_mentions

    rows = [
        {"id": "a", "tokens": ["Shelling", "hit", "Maarat", "al-Numan", "."], "mapping": None,
         "tags": ["O", "O", "B-Location", "I-Location", "O"]},
        {"id": "b", "tokens": ["Rebels", "left", "Idlib", "on", "Monday"], "mapping": None,
         "tags": ["O", "O", "B-Location", "O", "B-Temporal"]},
        {"id": "c", "tokens": ["Partly", "annotated", "Aleppo"], "mapping": "conll", "tags": [None, "O", "B-Location"]},
    ]
    assert mention_spans(rows[1]["tags"]) == [(2, 3, "Location"), (4, 5, "Temporal")]
    assert mention_spans(["B-Person", "I-Person", "I-Location", "O"]) == [(0, 2, "Person"), (2, 3, "Location")]
    out = replace_mentions(rows, 20, random.Random(0))
    assert len(out) == 40 and {r["id"] for r in out} >= {"a#mr0", "b#mr19"}   # "c" has gaps: left out
    locations = {tuple(r["tokens"][s:e]) for r in out for s, e, label in mention_spans(r["tags"]) if label == "Location"}
    assert locations == {("Maarat", "al-Numan"), ("Idlib",)}                  # swapped, never cut or mixed
    assert any(r["tokens"][2:4] == ["Idlib", "."] for r in out if r["id"].startswith("a"))
    assert all(len(r["tokens"]) == len(r["tags"]) for r in out)
    assert all(r["tokens"][-1] == "Monday" for r in out if r["id"].startswith("b"))  # only one Temporal


def test_mention_replacement_also_draws_from_an_outside_list_of_mentions(tmp_path):
    import random

    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.readers import DataError
    from conflictbrief.training.tagger import load_examples, mention_spans, read_outside_mentions, \
        replace_mentions, train_tagger

    schema = LabelSchema.from_yaml(None)
    places = tmp_path / "places.tsv"
    places.write_text("# GeoNames\nLocation\tKafr Nabl\n\nLocation\tJisr al-Shughur\nPerson\tAbu Ali\n")
    outside = read_outside_mentions(str(places), schema)
    jisr = ("Jisr", "al", "-", "Shughur")  # split into words as the tagger splits a text
    assert outside == {"Location": [["Kafr", "Nabl"], list(jisr)], "Person": [["Abu", "Ali"]]}
    rows = [{"id": "b", "tokens": ["Rebels", "left", "Idlib", "on", "Monday"], "mapping": None,
             "tags": ["O", "O", "B-Location", "O", "B-Temporal"]}]
    out = replace_mentions(rows, 400, random.Random(0), outside=outside, outside_share=0.5)
    seen = [tuple(r["tokens"][s:e]) for r in out for s, e, label in mention_spans(r["tags"]) if label == "Location"]
    # half kept, a quarter from the file (Idlib), a quarter from the outside list
    assert 0.4 < seen.count(("Idlib",)) / len(seen) < 0.85 and set(seen) == {
        ("Idlib",), ("Kafr", "Nabl"), jisr}
    assert all(r["tokens"][-1] == "Monday" for r in out)  # Temporal is not in the list: as before
    assert replace_mentions(rows, 5, random.Random(1)) == replace_mentions(rows, 5, random.Random(1), outside={})

    for text, problem in (("Location Kafr Nabl\n", "1: expected 'Label<TAB>mention'"),
                          ("Location\t\n", "1: expected 'Label<TAB>mention'"),
                          ("Location\tAleppo\nTown\tHoms\n", "2: unknown label 'Town'"), ("\n", "no mentions")):
        places.write_text(text)
        with pytest.raises(DataError, match=problem):
            read_outside_mentions(str(places), schema)
    spans = tmp_path / "s.jsonl"
    spans.write_text(json.dumps({"text": "Rebels left Idlib.", "entities": [
        {"start": 12, "end": 17, "label": "Location"}]}) + "\n")
    places.write_text("Location Kafr Nabl\n")
    with pytest.raises(DataError, match="places.tsv:1: expected"):  # read with the data, before any training
        load_examples([DataFile(str(spans), augment=1, outside_mentions=str(places))], schema)
    with pytest.raises(ConfigError, match="train.0.outside_mentions .*give the file augment: N"):
        train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(spans), outside_mentions=str(places))],
                                  output_dir=str(tmp_path / "m")), log=lambda m: None)
    with pytest.raises(ConfigError, match="outside_share .*between 0 and 1"):
        train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(spans), augment=1,
                                  outside_mentions=str(places), outside_share=1.5)],
                                  output_dir=str(tmp_path / "m")), log=lambda m: None)
    places.write_text("Location\tKafr Nabl\n")
    train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(spans), augment=2,
                              outside_mentions=str(places), outside_share=0.25)],
                              output_dir=str(tmp_path / "m"), max_steps=1), log=lambda m: None)
    assert f"2 mention-replaced copies (swaps for a label of `{places}` drawn from it 0.25 of the time)" in \
        (tmp_path / "m" / "README.md").read_text()


def test_cropping_cuts_annotated_examples_into_short_pieces_between_entities():
    import random

    from conflictbrief.training.tagger import crop_examples, mention_spans

    words = ("Russian jets struck Maarat al-Numan and the town of Kafr Nabl in southern Idlib province on "
             "Monday , killing 12 civilians , the Syrian Observatory for Human Rights said .").split()
    tags = ["B-MilitaryPlatform", "I-MilitaryPlatform", "O", "B-Location", "I-Location", "O"] + \
        ["B-Location"] + ["I-Location"] * 8 + ["O", "B-Temporal", "O", "O"] + ["B-Organisation", "I-Organisation"] + \
        ["O"] + ["B-Organisation"] + ["I-Organisation"] * 5 + ["O", "O"]
    assert len(words) == len(tags)
    rows = [{"id": "a", "tokens": words, "tags": tags, "mapping": None},
            {"id": "c", "tokens": ["Partly", "annotated", "Aleppo", "and", "Homs", "today"], "mapping": "conll",
             "tags": [None, "O", "B-Location", "O", "B-Location", "O"]}]
    out = crop_examples(rows, 3, random.Random(0))
    assert {r["id"].split("#")[0] for r in out} == {"a"}                    # "c" has gaps: left out
    for k in range(3):
        pieces = [r for r in out if r["id"].startswith(f"a#crop{k}.")]
        assert len(pieces) >= 2
        assert sum((p["tokens"] for p in pieces), []) == words             # consecutive, nothing lost
        assert sum((p["tags"] for p in pieces), []) == tags                # no entity cut: the tags rejoin
        for p in pieces:
            assert not p["tags"][0].startswith("I-")                        # a piece never opens inside one
            assert len(p["tokens"]) >= 4 or p is pieces[-1]
            assert len(p["tokens"]) <= 16 or any(t.startswith("I-") for t in p["tags"])
    spans = {tuple(r["tokens"][s:e]) for r in out for s, e, _ in mention_spans(r["tags"])}
    assert ("the", "town", "of", "Kafr", "Nabl", "in", "southern", "Idlib", "province") in spans
    assert crop_examples(rows, 3, random.Random(0)) == out                  # seeded


def test_an_entity_never_runs_over_a_blank_line():
    from conflictbrief.inference.tagger import decode_entities
    from conflictbrief.training.readers import words_with_offsets

    text = "People fled to the camp\n\nIdlib\nGovernorate reported shelling."
    words = words_with_offsets(text)
    # People fled to the camp | Idlib Governorate | reported shelling .
    tags = "O O O B-Location I-Location I-Location I-Location O O O".split()
    id2label = {0: "O", 1: "B-Location", 2: "I-Location"}
    probs = torch.zeros(len(words), 3)
    probs[range(len(words)), [{"O": 0, "B-Location": 1, "I-Location": 2}[t] for t in tags]] = 1.0
    found = [e.text for e in decode_entities(text, words, probs, id2label)]
    assert found == ["the camp", "Idlib\nGovernorate"]   # a single newline (a wrapped line) does not split


def test_augmentation_and_case_dropout_settings_out_of_range_stop_before_training(data_dir, tmp_path):
    from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    spans = str(data_dir / "spans.jsonl")
    base = dict(tiny_model=TinyModel(), output_dir=str(tmp_path / "t"), max_steps=1)
    with pytest.raises(ConfigError, match=r"train\.0\.augment \(.*spans\.jsonl\): must be 0 or more"):
        train_tagger(TaggerConfig(train=[DataFile(spans, augment=-1)], **base), log=lambda m: None)
    with pytest.raises(ConfigError, match="eval.augment"):
        train_tagger(TaggerConfig(train=[DataFile(spans)], eval=DataFile(spans, augment=1), **base),
                     log=lambda m: None)
    with pytest.raises(ConfigError, match="eval.crop: cropping is for training files"):
        train_tagger(TaggerConfig(train=[DataFile(spans)], eval=DataFile(spans, crop=1), **base),
                     log=lambda m: None)
    with pytest.raises(ConfigError, match=r"train\.0\.crop \(.*spans\.jsonl\): must be 0 or more"):
        train_tagger(TaggerConfig(train=[DataFile(spans, crop=-2)], **base), log=lambda m: None)
    with pytest.raises(ConfigError, match="case_dropout: must be between 0 and 1"):
        train_tagger(TaggerConfig(train=[DataFile(spans)], case_dropout=1.5, **base), log=lambda m: None)
    with pytest.raises(ConfigError, match="label_weight_power: must be 0 or more, got -1"):
        train_tagger(TaggerConfig(train=[DataFile(spans)], label_weight_power=-1, **base), log=lambda m: None)
    assert not (tmp_path / "t").exists()


def test_bf16_mixed_precision_trains_both_models_and_a_bad_value_stops_first(data_dir, tmp_path):
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import forward_precision, train_tagger

    layer, x = torch.nn.Linear(2, 2), torch.ones(1, 2)
    precision = forward_precision("bf16", torch.device("cpu"))
    for _ in range(2):  # built once per training run, entered at every step
        with precision:
            assert layer(x).dtype == torch.bfloat16
    with forward_precision("no", torch.device("cpu")):
        assert layer(x).dtype == torch.float32
    with pytest.MonkeyPatch.context() as mp:  # a CPU without bfloat16 units: still runs, with a warning
        mp.setattr("conflictbrief.model.loading.cpu_has_fast_bf16", lambda: False)
        with pytest.warns(RuntimeWarning, match="runs emulated, slower than float32"):
            forward_precision("bf16", torch.device("cpu"))
    spans, pairs = DataFile(str(data_dir / "spans.jsonl")), DataFile(str(data_dir / "pairs.jsonl"))
    quiet = lambda m: None  # noqa: E731
    tagger = train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[spans], output_dir=str(tmp_path / "t"),
                                       max_steps=3, mixed_precision="bf16"), log=quiet)
    assert tagger["steps"] == 3
    assert Tagger.load(str(tmp_path / "t"), device="cpu").model.dtype == torch.float32  # saved in float32
    briefer = train_briefer(BrieferConfig(tiny_model=TinyModel(), train=[pairs], output_dir=str(tmp_path / "b"),
                                          max_steps=2, batch_size=4, max_new_tokens=4, num_beams=1,
                                          mixed_precision="bf16"), log=quiet)
    assert briefer["steps"] == 2 and briefer["best"] is not None
    with pytest.raises(ConfigError, match="mixed_precision: must be one of no, bf16, fp16, got 'fp8'"):
        train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[spans], output_dir=str(tmp_path / "x"),
                                  mixed_precision="fp8"), log=quiet)
    assert not (tmp_path / "x").exists()


def test_fp16_loss_scaling_skips_an_overflowing_step_and_its_schedule_and_resumes_its_scale(tmp_path):
    """fp16 (for GPUs without bfloat16) scales the loss; a step whose gradients overflow is skipped, and so is
    its learning-rate step; the scale travels with the checkpoint. Checked on the CPU, where GradScaler runs."""
    from types import SimpleNamespace

    from conflictbrief.training.loop import LossScaling, load_checkpoint, make_optimizer, save_checkpoint

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model, x = torch.nn.Linear(3, 2), torch.ones(4, 3)
    params, optimizer, scheduler = make_optimizer(model, SimpleNamespace(weight_decay=0.0, learning_rate=0.1,
                                                                         warmup_ratio=0.0), 10)
    scaling = LossScaling("fp16", cpu)
    start = [p.detach().clone() for p in model.parameters()]
    scaling.backward(model(x).pow(2).mean())
    assert model.weight.grad.abs().max() > 100  # scaled (by 65,536) until unscaled for the update
    scaling.update(params, optimizer, scheduler)
    assert scheduler.last_epoch == 1
    assert not any(torch.equal(a, b) for a, b in zip(start, model.parameters()))
    taken = [p.detach().clone() for p in model.parameters()]
    scaling.backward(model(x).sum() * float("inf"))
    scaling.update(params, optimizer, scheduler)
    assert all(torch.equal(a, b) for a, b in zip(taken, model.parameters()))  # skipped ...
    assert scheduler.last_epoch == 1 and scaling.state()["scale"] == 32768.0  # ... with its schedule step; backed off
    assert model.weight.grad is None or not model.weight.grad.any()
    save_checkpoint(tmp_path / "ck", model, optimizer, scheduler, 2, None, 0.0, scaling=scaling)
    again = LossScaling("fp16", cpu)
    load_checkpoint(tmp_path / "ck", model, optimizer, scheduler, again)
    assert again.state()["scale"] == 32768.0
    plain = LossScaling("no", cpu)  # bf16 and float32: a plain backward pass and optimiser step
    plain.backward(model(x).pow(2).mean())
    plain.update(params, optimizer, scheduler)
    assert plain.state() is None and scheduler.last_epoch == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there: fp16 is allowed")
def test_fp16_without_a_gpu_stops_before_data_is_read(tmp_path):
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    missing = DataFile(str(tmp_path / "no-such-file.jsonl"))
    for train, config in ((train_tagger, TaggerConfig), (train_briefer, BrieferConfig)):
        with pytest.raises(ConfigError, match="mixed_precision: fp16 is for a GPU .* on a CPU use bf16"):
            train(config(tiny_model=TinyModel(), train=[missing], output_dir=str(tmp_path / "x"),
                         mixed_precision="fp16"), log=lambda m: None)
    assert not (tmp_path / "x").exists()


def test_fp16_briefer_training_runs_and_resumes_with_its_loss_scale(data_dir, tmp_path, monkeypatch):
    """The trainer's fp16 path end to end, on the CPU (float16 autocast and GradScaler run there; the GPU check
    is lifted for the test): steps are taken, the checkpoint holds the scale, --resume goes on from it."""
    from conflictbrief.training import briefer as briefer_module, tagger as tagger_module
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    for module in (briefer_module, tagger_module):
        monkeypatch.setattr(module, "check_mixed_precision", lambda mixed_precision: None)
    config = BrieferConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "pairs.jsonl"))],
                           output_dir=str(tmp_path / "b"), max_steps=2, batch_size=4, max_new_tokens=4, num_beams=1,
                           mixed_precision="fp16", eval_every=100)
    assert train_briefer(config, log=lambda m: None)["steps"] == 2
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["loss_scaling"]["scale"] > 0
    lines = []
    report = train_briefer(dataclasses.replace(config, max_steps=4), resume=True, log=lines.append)
    assert report["steps"] == 4 and any("resumed from" in line and "at step 2" in line for line in lines)
    tagger = train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"))],
                                       output_dir=str(tmp_path / "t"), max_steps=2, mixed_precision="fp16"),
                          log=lambda m: None)  # through accelerate's backward
    assert tagger["steps"] == 2
    assert json.loads((tmp_path / "t" / "checkpoint" / "state.json").read_text())["loss_scaling"]["scale"] > 0


def test_cli_evaluate_tagger_prints_one_json_object_with_the_issue_keys(tiny_tagger_dir, data_dir, tmp_path):
    extra = tmp_path / "pronouns.jsonl"  # a gold pronoun mention: scored with --mentions all, not with names
    extra.write_text(json.dumps({"text": "He said Syrian forces shelled Idlib on Monday with barrel bombs.",
                                 "entities": [{"start": 0, "end": 2, "label": "Person"},
                                              {"start": 30, "end": 35, "label": "Location"}]}) + "\n")
    results = {}
    for mentions in ("all", "names"):
        done = subprocess.run([sys.executable, "-m", "conflictbrief.cli", "evaluate", "tagger", "--model",
                               str(tiny_tagger_dir), "--data", str(extra), "--device", "cpu", "--mentions", mentions,
                               *(["--model-labels"] if mentions == "names" else [])],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results[mentions] = json.loads(done.stdout)
    for r in results.values():
        assert {"precision", "recall", "f1", "macro_f1", "per_label"} <= set(r)
        assert {"precision", "recall", "f1", "support"} <= set(r["per_label"]["Location"])
    assert results["all"]["mentions"] == "all" and results["all"]["per_label"]["Person"]["support"] == 1
    assert results["names"]["mentions"] == "names" and "Person" not in results["names"]["per_label"]
    # the JSON says whether a surname on its own took the full name's Person label (``person_consistent_tags``)
    assert results["all"]["consistent_names"] is True and results["names"]["consistent_names"] is False


def test_min_score_leaves_out_low_scored_entities_in_tag_and_tag_words(tiny_tagger_dir):
    from conflictbrief.inference.tagger import drop_low_score_tags

    tags = ["B-Person", "I-Person", "O", "B-Location"]
    assert drop_low_score_tags(tags, [0.9, 0.5, 1.0, 0.6], 0.65) == ["B-Person", "I-Person", "O", "O"]
    text = "Syrian forces shelled Idlib on Monday with barrel bombs."
    everything = Tagger.load(str(tiny_tagger_dir), device="cpu").tag([text])[0]
    assert everything
    cut = sorted(e.score for e in everything)[len(everything) // 2]
    kept = Tagger.load(str(tiny_tagger_dir), device="cpu", min_score=cut).tag([text])[0]
    assert kept == [e for e in everything if e.score >= cut]
    words = text.replace(".", " .").split()
    assert Tagger.load(str(tiny_tagger_dir), device="cpu", min_score=1.0).tag_words([words]) == [["O"] * len(words)]
    with pytest.raises(ValueError, match="min_score"):
        Tagger.load(str(tiny_tagger_dir), device="cpu", min_score=2)


def test_lean_beam_search_gives_freed_memory_back_after_the_first_step_and_half_way(tiny_briefer_dir, monkeypatch):
    from conflictbrief.inference import beam

    calls = []
    monkeypatch.setattr(beam, "release_free_memory", lambda: calls.append(1) or True)
    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu")
    enc = briefer.tokenizer(["Syrian forces shelled Idlib on Monday.", "Talks in Moscow ended."], padding=True,
                            return_tensors="pt")
    config = beam.lean_settings(briefer.model, {"num_beams": 2, "max_new_tokens": 12, "early_stopping": "never"})
    out = beam.beam_search(briefer.model, enc["input_ids"], enc["attention_mask"], config, prune=False)
    assert out.shape[1] == 13 and len(calls) == 2  # never stops early: steps 1 and 6 of 12


def test_distillation_teaches_the_teachers_tags_and_checks_teachers_first(_tiny_tagger_dir, data_dir, tmp_path):
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import teacher_probs, train_tagger
    from conflictbrief.training.readers import read_tagger_file

    teacher = str(_tiny_tagger_dir[0])
    schema = LabelSchema.from_yaml()
    spans = read_tagger_file(data_dir / "spans.jsonl", schema)
    model, tok = load_tagger(teacher, device="cpu")
    alone = predict_word_probs(model, tok, [e["tokens"] for e in spans])
    averaged = teacher_probs([teacher, teacher], spans, schema, 128, 32, 8, log=lambda m: None)
    assert [torch.tensor(a) for a in averaged][0].shape == alone[0].shape
    assert all(torch.allclose(torch.tensor(a), b, atol=1e-5) for a, b in zip(averaged, alone))
    repeated = teacher_probs([teacher], spans * 3, schema, 128, 32, 8, log=lambda m: None)  # predicted once each
    assert len(repeated) == 6 and all(torch.allclose(torch.tensor(a), b, atol=1e-5)
                                      for a, b in zip(repeated, alone * 3))

    # Gold that says "no entities": only the teacher's soft targets can teach the student any entity.
    blank = tmp_path / "blank.jsonl"
    blank.write_text("".join(json.dumps({"text": json.loads(line)["text"], "entities": []}) + "\n"
                             for line in (data_dir / "spans.jsonl").read_text().splitlines()))
    base = dict(tiny_model=TinyModel(), train=[DataFile(str(blank), repeat=4)],
                eval=DataFile(str(data_dir / "spans.jsonl")), batch_size=8, learning_rate=3e-3, warmup_ratio=0.0,
                max_steps=120, log_every=1000, select_metric="f1", teachers=[teacher])
    quiet = lambda m: None  # noqa: E731
    taught = train_tagger(TaggerConfig(output_dir=str(tmp_path / "kd"), distill_weight=1.0, **base), log=quiet)
    gold_only = train_tagger(TaggerConfig(output_dir=str(tmp_path / "gold"), distill_weight=0.0, **base), log=quiet)
    assert taught["best"]["f1"] >= 0.8, taught["best"]
    assert gold_only["best"]["f1"] == 0.0
    # Unlabelled text carries no gold loss at all, so half weight on the teachers is enough there.
    lines = tmp_path / "sentences.txt"
    lines.write_text("".join(json.loads(line)["text"] + "\n"
                             for line in (data_dir / "spans.jsonl").read_text().splitlines()))
    unlabelled = DataFile(str(lines), format="lines", unlabelled=True, repeat=4)
    from conflictbrief.training.tagger import read_unlabelled
    first = read_unlabelled(DataFile(str(lines), format="lines", limit=1), log=quiet)  # limit counts sentences
    assert [r["tokens"][:2] for r in first] == [["Syrian", "forces"]]
    from_text = train_tagger(TaggerConfig(output_dir=str(tmp_path / "text"), distill_weight=0.5,
                                          **{**base, "train": [unlabelled]}), log=quiet)
    assert from_text["best"]["f1"] >= 0.8, from_text["best"]
    card = (tmp_path / "text" / "README.md").read_text()
    assert f"distilled from: `{teacher}` (distill_weight 0.5)" in card and "unlabelled: taught by the teachers" in card
    with pytest.raises(ConfigError, match=r"train\.0\.unlabelled \(.*sentences\.txt\): .* name them in 'teachers:'"):
        train_tagger(TaggerConfig(output_dir=str(tmp_path / "x"), **{**base, "train": [unlabelled], "teachers": []}),
                     log=quiet)

    with pytest.raises(ConfigError, match="distill_weight: must be between 0 and 1, got 1.5"):
        train_tagger(TaggerConfig(output_dir=str(tmp_path / "x"), **{**base, "teachers": [teacher]},
                                  distill_weight=1.5), log=quiet)
    labels = tmp_path / "labels.yaml"
    labels.write_text("labels:\n  Location: a place\n")
    places = tmp_path / "places.jsonl"
    places.write_text(json.dumps({"text": "They fled Idlib.", "entities": [{"start": 10, "end": 15,
                                                                           "label": "Location"}]}) + "\n")
    with pytest.raises(ConfigError, match=r"teachers: .* predicts the tags .* same label schema"):
        train_tagger(TaggerConfig(tiny_model=TinyModel(), labels=str(labels), train=[DataFile(str(places))],
                                  output_dir=str(tmp_path / "y"), max_steps=1, teachers=[teacher]), log=quiet)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_rare_labels_weigh_more_and_positions_that_may_be_o_weigh_one(data_dir, tmp_path):
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import label_weights, partial_label_loss, train_tagger

    schema = LabelSchema(("Location", "Money", "Weapon"))
    examples = [{"tags": ["B-Location", "I-Location", "O"], "mapping": None}] * 8 + \
               [{"tags": ["B-Weapon", "O"], "mapping": None}] * 2 + [{"tags": ["B-Money"], "mapping": None}] + \
               [{"tags": ["B-Money"] * 50, "mapping": "conll"}]  # mapped data does not count
    weights = label_weights(examples, schema, 1.0)  # counts 8 / 1 / 2, median 2
    assert weights[schema.tag2id["O"]] == 1 and weights[schema.tag2id["B-Location"]] == 1  # never below 1
    assert weights[schema.tag2id["I-Money"]] == 2 and weights[schema.tag2id["B-Weapon"]] == 1
    assert torch.equal(label_weights(examples, schema, 0.0), torch.ones(len(schema.tags)))

    logits = torch.randn(1, 3, len(schema.tags))
    allowed = torch.zeros(1, 3, len(schema.tags), dtype=torch.bool)
    allowed[0, 0, schema.tag2id["B-Money"]] = True
    allowed[0, 1, schema.tag2id["B-Location"]] = True
    allowed[0, 2, [schema.tag2id["O"], schema.tag2id["B-Money"]]] = True  # may be O: weighs 1
    each = torch.stack([partial_label_loss(logits[:, k:k + 1], allowed[:, k:k + 1]) for k in range(3)])
    assert torch.allclose(partial_label_loss(logits, allowed, weights), (2 * each[0] + each[1] + each[2]) / 4)
    assert torch.allclose(partial_label_loss(logits, allowed, torch.ones(len(schema.tags))),
                          partial_label_loss(logits, allowed))
    logs = []  # in training: every label of the two sentences occurs once, so all weigh 1
    train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"))], max_steps=2,
                              output_dir=str(tmp_path / "t"), label_weight_power=0.5), log=logs.append)
    assert "label weights: Organisation 1.00, Location 1.00" in "\n".join(logs)


def test_briefer_resume_without_a_checkpoint_stops_before_reading_data(tmp_path):
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile, TinyModel
    from conflictbrief.training.readers import DataError

    config = BrieferConfig(tiny_model=TinyModel(), train=[DataFile(str(tmp_path / "missing.jsonl"))],
                           output_dir=str(tmp_path / "b"))
    with pytest.raises(DataError, match="--resume: no checkpoint in .*checkpoint"):
        train_briefer(config, resume=True, log=lambda m: None)
    with pytest.raises(DataError, match="missing.jsonl"):  # without --resume the data is read and checked
        train_briefer(config, log=lambda m: None)


def test_a_model_of_the_other_kind_or_a_file_as_export_target_is_a_clear_error(tiny_tagger_dir, tiny_briefer_dir,
                                                                              tmp_path):
    # They were tracebacks: transformers' ValueError "Unrecognized configuration class", a FileExistsError.
    from conflictbrief.model.loading import ModelLoadError, export_compact, load_briefer, load_tagger

    with pytest.raises(ModelLoadError, match="a tagger is a token classifier; a briefer directory is a seq2seq"):
        load_tagger(str(tiny_briefer_dir))
    with pytest.raises(ModelLoadError, match="a briefer is a seq2seq model; a tagger directory is a token"):
        load_briefer(str(tiny_tagger_dir))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="exists and is not a folder"):
        export_compact(tiny_tagger_dir, "tagger", tmp_path / "file")


def test_a_missing_model_directory_is_named_as_one(tmp_path):
    # It was handed to the Hub client, whose answer was "Repo id must be in the form 'repo_name' or ...".
    from conflictbrief.model.loading import ModelLoadError, load_briefer, load_tagger, resolve_ref

    for ref in (str(tmp_path / "nothing"), "./runs/nothing", "runs/a/b"):
        with pytest.raises(ModelLoadError, match=f"^{ref}: no such model directory$"):
            load_tagger(ref)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_briefer(str(tmp_path / "nothing"))
    assert resolve_ref("facebook/bart-base", "briefer") == "facebook/bart-base"  # Hub names pass through
    assert resolve_ref("bert-base-uncased", "tagger") == "bert-base-uncased"
    assert resolve_ref(str(tmp_path), "tagger") == str(tmp_path)


def train_own_label_tagger(tmp_path, out):
    """A tiny tagger trained for 2 steps on one sentence in a schema of its own (Actor, Place) into ``out``;
    returns (its labels.yaml, the data)."""
    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    labels = tmp_path / "labels.yaml"
    labels.write_text("labels:\n  Actor: an armed group\n  Place: a place\n")
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps({"text": "The Taliban attacked Kabul.", "entities": [
        {"start": 4, "end": 11, "label": "Actor"}, {"start": 21, "end": 26, "label": "Place"}]}) + "\n")
    train_tagger(TaggerConfig(tiny_model=TinyModel(), labels=str(labels), train=[DataFile(str(data))],
                              output_dir=str(out), max_steps=2), log=lambda m: None)
    return labels, data


def test_cli_evaluates_a_tagger_trained_on_its_own_labels(tmp_path, capsys):
    # The data was read with the packaged schema whatever the model's labels: "unknown label 'Actor'".
    from conflictbrief.cli import main

    labels, data = train_own_label_tagger(tmp_path, tmp_path / "model")
    assert main(["evaluate", "tagger", "--model", str(tmp_path / "model"), "--data", str(data),
                 "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {label: v["support"] for label, v in report["per_label"].items()} == {"Actor": 1, "Place": 1}
    assert main(["evaluate", "tagger", "--model", str(tmp_path / "model"), "--data", str(data), "--device", "cpu",
                 "--labels", str(labels)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "tagger", "--model", str(tmp_path / "model"), "--data", str(data), "--device", "cpu",
                 "--labels", str(Path(__file__).resolve().parent.parent / "configs" / "labels.yaml")]) == 2
    assert "are not the model's ['Actor', 'Place']" in capsys.readouterr().err


def test_loading_a_model_from_disk_draws_no_weight_bar_and_keeps_the_callers_setting(tiny_tagger_dir, capfd):
    from transformers.utils import logging as hf_logging

    from conflictbrief.model.loading import load_tagger

    assert hf_logging.is_progress_bar_enabled()
    load_tagger(str(tiny_tagger_dir), device="cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        load_tagger(str(tiny_tagger_dir), device="cpu")
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


def test_tagger_training_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(data_dir, tmp_path):
    """A run stopped by its time limit after its first step and resumed with --resume replays the data order
    and the dropout's random state, so it ends where one uninterrupted run ends; the history spans both."""
    from safetensors.torch import load_file

    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.readers import DataError
    from conflictbrief.training.tagger import train_tagger

    def config(out, **kw):
        return TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=4)],
                            eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(out), batch_size=4,
                            learning_rate=3e-3, warmup_ratio=0.1, epochs=3, save_every=5, log_every=1000, **kw)

    with pytest.raises(DataError, match="--resume: no checkpoint in"):
        train_tagger(config(tmp_path / "none"), resume=True)
    whole = train_tagger(config(tmp_path / "whole"), log=lambda m: None)
    first = train_tagger(config(tmp_path / "parts", time_limit_minutes=1e-6), log=lambda m: None)
    assert first["steps"] == 1 and not first["finished"] and "not finished" in (tmp_path / "parts" / "README.md").read_text()
    logs = []
    second = train_tagger(config(tmp_path / "parts"), resume=True, log=logs.append)
    assert any("resumed from" in m and m.endswith("at step 1") for m in logs)
    assert whole["finished"] and second["finished"] and second["steps"] == whole["steps"] > 5
    final = [load_file(str(tmp_path / d / "checkpoint" / "state.safetensors")) for d in ("whole", "parts")]
    names = [k for k in final[0] if k.startswith("model.")]
    assert names and all(torch.equal(final[0][k], final[1][k]) for k in names)
    assert [h["step"] for h in second["history"]] == [1] + [h["step"] for h in whole["history"]]
    assert second["train_seconds"] >= first["train_seconds"]
    # a fresh run in the same directory starts a fresh history
    assert train_tagger(config(tmp_path / "parts"), log=lambda m: None)["history"] == whole["history"]


def test_resume_lists_config_changes_in_the_log_and_card_and_refuses_another_model(data_dir, tmp_path):
    """--resume compares the config with the one that wrote the checkpoint: a change of the model (base, size,
    labels) stops before any data is read; other changes are logged, kept across resumes and listed in
    metrics.json and the model card; time limits and logging are free to change and not listed."""
    from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    def config(**kw):
        base = dict(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=2)],
                    eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(tmp_path / "run"), batch_size=4,
                    learning_rate=3e-3, epochs=2, log_every=1000)
        return TaggerConfig(**{**base, **kw})

    first = train_tagger(config(time_limit_minutes=1e-6), log=lambda m: None)
    assert first["steps"] == 1 and first["config_changes"] == []
    with pytest.raises(ConfigError, match=r"another model: tiny_model was .*\"hidden_size\": 32.*now .*48"):
        train_tagger(config(tiny_model=TinyModel(hidden_size=48), train=[DataFile(str(tmp_path / "absent.jsonl"))]),
                     resume=True)
    logs = []
    second = train_tagger(config(learning_rate=2e-3, eval_every=3), resume=True, log=logs.append)
    assert second["finished"]
    assert second["config_changes"] == ["at step 1: learning_rate: 0.003 -> 0.002",
                                        "at step 1: eval_every: null -> 3 (evaluation only)"]
    said = [m for m in logs if m.startswith("config changes since this run began")]
    assert len(said) == 1 and "learning_rate: 0.003 -> 0.002" in said[0] and "not those one uninterrupted" in said[0]
    card = (tmp_path / "run" / "README.md").read_text()
    assert "## Config changes on --resume" in card and "- at step 1: learning_rate: 0.003 -> 0.002" in card
    # a later resume with the last run's config keeps the earlier changes and adds none
    third = train_tagger(config(learning_rate=2e-3, eval_every=3), resume=True, log=lambda m: None)
    assert third["config_changes"] == second["config_changes"]
    assert third["history"] == second["history"]  # a finished run resumed is not evaluated again
    # a fresh run in the same directory has none
    assert train_tagger(config(), log=lambda m: None)["config_changes"] == []
    assert "Config changes" not in (tmp_path / "run" / "README.md").read_text()


def test_training_log_has_no_shard_writing_bar_and_the_kept_model_is_safetensors(data_dir, tmp_path, capfd):
    """Each evaluation that keeps a better model saves it; transformers 5 drew a "Writing model shards" bar for
    every save into the training log. The caller's progress-bar setting stays as it was."""
    from transformers.utils import logging as hf_logging

    from conflictbrief.training.config import DataFile, TaggerConfig, TinyModel
    from conflictbrief.training.tagger import train_tagger

    hf_logging.enable_progress_bar()
    train_tagger(TaggerConfig(tiny_model=TinyModel(), train=[DataFile(str(data_dir / "spans.jsonl"))],
                              eval=DataFile(str(data_dir / "spans.jsonl")), output_dir=str(tmp_path / "t"),
                              batch_size=2, epochs=2, log_every=1000), log=lambda m: None)
    assert hf_logging.is_progress_bar_enabled()
    assert "Writing model shards" not in capfd.readouterr().err
    assert (tmp_path / "t" / "model.safetensors").is_file() and not list((tmp_path / "t").glob("*.bin"))


def test_each_briefer_eval_file_is_scored_on_its_own_pairs_under_its_own_name(tmp_path, monkeypatch):
    """Two NeuS files of one name in two folders (pair ids ``val.source:N``) were each scored on the pairs of
    both; a file in the working directory was named "/file"."""
    from conflictbrief.training.briefer import eval_names, train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile, TinyModel

    monkeypatch.chdir(tmp_path)
    for folder, n in (("a", 2), ("b", 3)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "val.source").write_text("".join(
            f"TITLE=> Clashes {i}. ARTICLE=> Fighting near Homs killed {i + 3} people on Monday.\n" for i in range(n)))
        (tmp_path / folder / "val.target").write_text("".join(
            f"TITLE=> Clashes. ARTICLE=> {i + 3} people were killed near Homs.\n" for i in range(n)))
    (tmp_path / "pairs.csv").write_text("text,brief\n\"Troops entered Idlib. Talks stalled.\",Troops entered Idlib.\n")
    report = train_briefer(BrieferConfig(
        tiny_model=TinyModel(), train=[DataFile("pairs.csv")], output_dir="out", batch_size=2, max_steps=1,
        eval=[DataFile("a/val.source"), DataFile("b/val.source"), DataFile("pairs.csv")], eval_limit=10,
        max_new_tokens=4, num_beams=1), log=lambda m: None)
    assert {k: v["n"] for k, v in report["best"].items() if isinstance(v, dict)} == \
        {"a/val.source": 2, "b/val.source": 3, "pairs.csv": 1}
    same = [DataFile("x/gpt4/val.jsonl"), DataFile("y/gpt4/val.jsonl"), DataFile("z.jsonl"), DataFile("z.jsonl", limit=5)]
    assert eval_names(same) == ["x/gpt4/val.jsonl", "y/gpt4/val.jsonl", "z.jsonl#3", "z.jsonl#4"]


def test_greedy_generation_of_a_beam_search_model_does_not_warn_of_its_beam_flags(tiny_briefer_dir, caplog):
    """The training evaluation generates greedily (num_beams=1) with a model whose generation config holds
    beam settings (early_stopping); transformers warned "generation flags are not valid" in every training log."""
    import logging as std_logging

    from conflictbrief.inference.beam import lean_settings

    briefer = Briefer.load(str(tiny_briefer_dir), device="cpu", max_new_tokens=6)
    assert briefer.model.generation_config.early_stopping is True and briefer.model.generation_config.num_beams > 1
    std_logging.Logger.warning_once.cache_clear()  # transformers says it once per process
    with caplog.at_level(std_logging.WARNING):
        briefer.brief([clean("Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey.")],
                      num_beams=1)
    assert not [r for r in caplog.records if "not valid" in r.getMessage()]
    assert lean_settings(briefer.model, {"num_beams": 1}) is None
    assert lean_settings(briefer.model, {}) is not None  # beams: the lean search still runs them


def test_entity_errors_sort_every_mistake_the_scores_count():
    from conflictbrief.training.metrics import entity_errors, entity_scores, label_errors

    tokens = [["Russian", "jets", "struck", "the", "town", "of", "Idlib", "on", "Monday"], ["He", "left", "."]]
    gold = [["B-Nationality", "O", "O", "B-Location", "I-Location", "I-Location", "I-Location", "O", "B-Temporal"],
            ["B-Person", "O", "O"]]
    pred = [["B-Organisation", "O", "O", "O", "O", "O", "B-Location", "O", "O"],
            ["B-Person", "O", "B-Weapon"]]
    counts, records = entity_errors(tokens, gold, pred, ["a:1", "a:2"])
    assert counts == {"missed": 1, "spurious": 1, "wrong_label": 1, "wrong_span": 1}
    assert records == [
        {"id": "a:1", "text": " ".join(tokens[0]), "missed": [{"text": "Monday", "label": "Temporal"}], "spurious": [],
         "wrong_label": [{"text": "Russian", "gold": "Nationality", "predicted": "Organisation"}],
         "wrong_span": [{"gold": "the town of Idlib", "predicted": "Idlib", "label": "Location"}]},
        {"id": "a:2", "text": "He left .", "missed": [], "spurious": [{"text": ".", "label": "Weapon"}],
         "wrong_label": [], "wrong_span": []}]
    # the counts add up to the scores: 1 right of 4 gold and of 4 predicted entities
    scores = entity_scores(gold, pred)
    right = 4 - counts["missed"] - counts["wrong_label"] - counts["wrong_span"]
    predicted = right + counts["spurious"] + counts["wrong_label"] + counts["wrong_span"]
    assert right == 1 and (scores["recall"], scores["precision"]) == (right / 4, right / predicted)
    assert entity_errors(tokens, gold, gold) == ({"missed": 0, "spurious": 0, "wrong_label": 0, "wrong_span": 0}, [])
    # by label: what each label lost, and what it was taken for
    assert label_errors(records) == {
        "Location": {"missed": 0, "spurious": 0, "wrong_span": 1, "labelled_as": {}},
        "Nationality": {"missed": 0, "spurious": 0, "wrong_span": 0, "labelled_as": {"Organisation": 1}},
        "Temporal": {"missed": 1, "spurious": 0, "wrong_span": 0, "labelled_as": {}},
        "Weapon": {"missed": 0, "spurious": 1, "wrong_span": 0, "labelled_as": {}}}
    more = [{"missed": [], "spurious": [], "wrong_span": [], "wrong_label": [
        {"text": t, "gold": "Location", "predicted": p} for t, p in (("Iraq", "Organisation"), ("Raqqa", "Person"),
                                                                     ("Syria", "Organisation"))]}]
    assert list(label_errors(more)["Location"]["labelled_as"].items()) == [("Organisation", 2), ("Person", 1)]
    assert label_errors([]) == {}



def test_tagger_card_says_what_each_label_missed_and_was_taken_for(tmp_path):
    from conflictbrief.training.config import TaggerConfig
    from conflictbrief.training.tagger import write_model_card

    scores = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    best = {"step": 3, "f1": 0.5, "per_label": {"Location": scores, "Person": scores},
            "label_errors": {"Location": {"missed": 1, "spurious": 2, "wrong_span": 3,
                                          "labelled_as": {"Organisation": 4, "Person": 1}}}}
    write_model_card(tmp_path, TaggerConfig(reinit_layers=1), {"best": best, "train_seconds": 1.0, "steps": 3})
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "- reinit_layers: 1 (the base's top layers started from fresh weights)" in card
    assert "| label | precision | recall | f1 | support | missed | spurious | other extent | taken for |" in card
    assert "| Location | 0.5 | 0.5 | 0.5 | 2 | 1 | 2 | 3 | Organisation 4, Person 1 |" in card
    assert "| Person | 0.5 | 0.5 | 0.5 | 2 | 0 | 0 | 0 | |" in card

def test_cli_evaluate_tagger_writes_the_sentences_with_mistakes(tiny_tagger_dir, data_dir, tmp_path, capsys):
    from conflictbrief.cli import main

    out = tmp_path / "errors.jsonl"
    assert main(["evaluate", "tagger", "--model", str(tiny_tagger_dir), "--data", str(data_dir / "spans.jsonl"),
                 "--device", "cpu", "--dtype", "float32", "--errors", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    counts = report["entity_errors"]
    assert report["errors_file"] == str(out) and set(counts) == {"missed", "spurious", "wrong_label", "wrong_span"}
    assert sum(counts.values()) == sum(len(r[k]) for r in records for k in counts)
    by_label = report["label_errors"]
    assert sum(c[k] for c in by_label.values() for k in ("missed", "spurious", "wrong_span")) + sum(
        n for c in by_label.values() for n in c["labelled_as"].values()) == sum(counts.values())
    assert all(r["id"].startswith(str(data_dir / "spans.jsonl")) for r in records)
    assert main(["evaluate", "briefer", "--data", str(data_dir / "pairs.jsonl"), "--errors", str(out)]) == 2
    assert "--errors is for evaluate tagger" in capsys.readouterr().err
    assert main(["evaluate", "briefer", "--data", str(data_dir / "pairs.jsonl"), "--model-labels"]) == 2
    assert "--model-labels is for evaluate tagger" in capsys.readouterr().err


def test_cli_evaluate_briefer_writes_each_brief_beside_its_reference(data_dir, tmp_path, capsys):
    from conflictbrief.cli import main
    from conflictbrief.training.readers import read_brief_file

    out = tmp_path / "briefs.jsonl"
    assert main(["evaluate", "briefer", "--data", str(data_dir / "pairs.jsonl"), "--device", "cpu", "--dtype",
                 "float32", "--briefs", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    pairs = read_brief_file(data_dir / "pairs.jsonl")
    assert report["briefs_file"] == str(out) and len(records) == len(pairs) == report["n"]
    assert [r["reference"] for r in records] == [p["brief"] for p in pairs]
    assert all(r["brief"] and 0 <= r["rougeL"] <= 1 and set(r["origins"]) == {"extracted"} for r in records)
    # the paired comparison with lead-3 counts the same articles the records show
    paired, diffs = report["rougeL_vs_lead3"], [r["rougeL"] - r["lead3_rougeL"] for r in records]
    assert paired["better"] == sum(d > 1e-9 for d in diffs) and paired["worse"] == sum(d < -1e-9 for d in diffs)
    assert paired["better"] + paired["worse"] + paired["same"] == report["n"]
    assert abs(paired["mean_difference"] - sum(diffs) / len(diffs)) < 1e-3
    assert paired["ci95"][0] <= paired["mean_difference"] <= paired["ci95"][1]
    assert main(["evaluate", "tagger", "--data", str(data_dir / "spans.jsonl"), "--briefs", str(out)]) == 2
    assert "--briefs is for evaluate briefer" in capsys.readouterr().err


def test_paired_difference_tells_a_steady_gain_from_a_draw():
    from conflictbrief.training.metrics import paired_difference

    steady = paired_difference([0.5 + 0.01 * (i % 3) for i in range(200)], [0.48] * 200)
    assert steady["better"] == 200 and steady["worse"] == steady["same"] == 0
    assert 0 < steady["ci95"][0] <= steady["mean_difference"] <= steady["ci95"][1]
    # half the articles gain what the other half lose: the interval holds 0
    draw = paired_difference([0.6, 0.4] * 100 + [0.5] * 10, [0.4, 0.6] * 100 + [0.5] * 10)
    assert draw["mean_difference"] == 0 and draw["ci95"][0] < 0 < draw["ci95"][1]
    assert (draw["better"], draw["worse"], draw["same"]) == (100, 100, 10)
    assert paired_difference([0.3, 0.7], [0.1, 0.2]) == paired_difference([0.3, 0.7], [0.1, 0.2])  # seeded
    assert paired_difference([], [])["mean_difference"] is None


def test_a_byte_level_bpe_base_gets_each_word_with_its_leading_space(data_dir, tmp_path):
    """A RoBERTa-style base (byte-level BPE) marks a word after a space ("Ġforces"). Words given one by one
    were cut into pieces without it ("f", "or", "ces"), which such a model never sees inside a sentence."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    from conflictbrief.inference.tagger import Tagger, subwords_per_word
    from conflictbrief.model.loading import word_tokenizer
    from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig
    from conflictbrief.training.tagger import train_tagger

    texts = [r["text"] for r in map(json.loads, (data_dir / "spans.jsonl").read_text().splitlines())] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                               cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    base = tmp_path / "base"
    tok.save_pretrained(base)
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=140, pad_token_id=tok.pad_token_id)
                 ).save_pretrained(base)
    words = ["Syrian", "forces", "shelled", "Idlib"]
    tokenizer = word_tokenizer(str(base))
    pieces = [tokenizer.convert_ids_to_tokens(p) for p in subwords_per_word(tokenizer, words)]
    assert [p[0][0] for p in pieces] == ["Ġ"] * 4
    assert [t for p in pieces for t in p] == tokenizer.tokenize(" ".join(words))  # as inside the sentence
    config = TaggerConfig(base_model=str(base), train=[DataFile(str(data_dir / "spans.jsonl"), repeat=4)],
                          output_dir=str(tmp_path / "out"), batch_size=4, max_steps=2, log_every=1000)
    with pytest.raises(ConfigError, match=r"max_length 256: .* reads at most 138 tokens .* give max_length=138"):
        train_tagger(config, log=lambda m: None)  # 140 positions, numbered after the padding index (1)
    train_tagger(dataclasses.replace(config, max_length=138), log=lambda m: None)
    tagger = Tagger.load(str(tmp_path / "out"), device="cpu")
    assert tagger.max_length == 138
    assert [tagger.tokenizer.convert_ids_to_tokens(p) for p in subwords_per_word(tagger.tokenizer, words)] == pieces
    assert isinstance(tagger.tag(["Syrian forces shelled Idlib on Monday."])[0], list)


def test_training_files_whose_names_are_not_utf8(tmp_path, monkeypatch):
    """A training file named in Latin-1 bytes (a Linux file system allows them) stopped `train tagger` in the
    held-out split's seed, then in the datasets conversion of the example ids, then in the model card; `train
    briefer` in the model card (2026-12-06). The cards name it with the bytes escaped as the example ids do
    ("caf\\xe9.jsonl"; they wrote "caf\\udce9.jsonl" until 2026-12-06)."""
    import os

    from conflictbrief.cli import main

    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xe9.jsonl")  # "caf\udce9.jsonl"
    Path(name).write_text("".join(json.dumps({"text": f"Shelling hit Idlib on day {i}.", "brief": "Idlib was hit.",
                                              "entities": [{"start": 13, "end": 18, "label": "Location"}]}) + "\n"
                                  for i in range(10)))
    config = str(Path(__file__).resolve().parents[1] / "configs")
    assert main(["train", "tagger", "--config", config + "/tagger.yaml", "--train", name, "--eval-fraction", "0.2",
                 "--output", "t", "tiny_model={}", "max_steps=2"]) == 0
    assert "caf\\xe9.jsonl" in (tmp_path / "t" / "README.md").read_text(encoding="utf-8")
    assert main(["train", "briefer", "--config", config + "/briefer.yaml", "--train", name, "--eval-fraction", "0.2",
                 "--output", "b", "tiny_model={}", "max_steps=1"]) == 0
    assert (tmp_path / "b" / "model.safetensors").exists()
    assert "caf\\xe9.jsonl" in (tmp_path / "b" / "README.md").read_text(encoding="utf-8")


def test_printable_spells_file_system_bytes_and_other_lone_surrogates_apart():
    import os

    from conflictbrief.training.readers import printable

    assert printable(os.fsdecode(b"caf\xe9 \xff.jsonl")) == "caf\\xe9 \\xff.jsonl"
    assert printable("half an emoji \ud83d, caf\u00e9") == "half an emoji \\ud83d, caf\u00e9"


def test_train_tagger_maps_command_line_files_in_another_schema(tmp_path, monkeypatch, capsys):
    """A Label Studio project on the NER template (PER/ORG/LOC) exports labels of another schema. `evaluate
    tagger` had --mapping; `train tagger --train export.json` stopped with "unknown label 'PER'" and pointed to a
    --mapping it did not have (the config's files take 'mapping:', the command line's files nothing)."""
    from conflictbrief.cli import main

    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"text": f"Ahmed Ali fled Idlib on day {i}.", "entities": [
        {"start": 0, "end": 9, "label": "PER"}, {"start": 15, "end": 20, "label": "LOC"}]}) + "\n"
        for i in range(10)))
    config = str(Path(__file__).resolve().parents[1] / "configs" / "tagger.yaml")
    monkeypatch.chdir(tmp_path)
    train = ["train", "tagger", "--config", config, "--train", str(data), "--eval", str(data), "--output", "out",
             "tiny_model={}", "max_steps=2"]
    assert main(train) == 2
    assert "unknown label 'PER'" in capsys.readouterr().err
    assert main(train + ["--mapping", "conll"]) == 0
    saved = (tmp_path / "out" / "training_config.yaml").read_text()
    assert saved.count("mapping: conll") == 2  # the train file and the eval file
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(report["best"]["per_label"]) == {"Person", "Location"}
    assert main(train + ["--mapping", "nosuch"]) == 2
    assert "unknown mapping 'nosuch'" in capsys.readouterr().err
    assert main(["train", "tagger", "--config", config, "--mapping", "conll", "tiny_model={}"]) == 2
    assert "--mapping applies to the --train and --eval files" in capsys.readouterr().err
    assert main(["train", "briefer", "--train", str(data), "--mapping", "conll"]) == 2
    assert "train tagger takes it, not train briefer" in capsys.readouterr().err


def test_eval_fraction_holds_out_part_of_the_training_data(tmp_path, monkeypatch, capsys):
    """A user with one labelled file had to split it by hand; and `--train mine.jsonl` with the shipped config
    stopped on the config's eval file ("../shared/data/conflibert/re3d/dev.txt: no such file") with no word of
    what to do. `--eval-fraction 0.2` holds out a fifth of each training file, before augmentation."""
    from conflictbrief.cli import main
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.briefer import train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile, TinyModel
    from conflictbrief.training.readers import DataError, hold_out
    from conflictbrief.training.tagger import load_examples

    rows = list(range(10))
    kept, held = hold_out(rows, 0.2, 42, "f")
    assert len(held) == 2 and sorted(kept + held) == rows and hold_out(rows, 0.2, 42, "f") == (kept, held)
    assert hold_out(rows, 0.2, 42, "/elsewhere/f") == (kept, held)  # a resume from another folder: the same
    assert len(hold_out(rows, 0.01, 42, "f")[1]) == 1 and len(hold_out(rows, 0.99, 42, "f")[0]) == 1
    with pytest.raises(DataError, match="f: 1 example\\(s\\): too few to hold out"):
        hold_out([0], 0.5, 42, "f")
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"text": f"Shelling hit Idlib on day {i}.", "entities": [
        {"start": 13, "end": 18, "label": "Location"}]}) + "\n" for i in range(10)))
    held = []
    examples = load_examples([DataFile(str(data), augment=2)], LabelSchema.from_yaml(None), 42, print, 0.2, held)
    assert len(held) == 2 and len(examples) == 8 * 3  # 8 kept, and 2 mention-replaced copies of each
    assert not {tuple(h["tokens"]) for h in held} & {tuple(e["tokens"]) for e in examples}
    # the command line, with the shipped config whose eval file is not there
    config = str(Path(__file__).resolve().parents[1] / "configs" / "tagger.yaml")
    monkeypatch.chdir(tmp_path)
    train = ["train", "tagger", "--config", config, "--train", str(data), "--output", "out", "tiny_model={}",
             "max_steps=2", "train.0.augment=0"]
    assert main(train) == 2
    assert "dev.txt: no such file (the eval file; give another with --eval FILE, hold out a share of the " \
           "training data with --eval-fraction 0.1, or train without evaluation: eval=null)" in capsys.readouterr().err
    assert main(train + ["--eval-fraction", "0.2"]) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["eval_examples"] == 2 and report["best"]["f1"] is not None
    assert "- eval: 2 examples held out of the training files (eval_fraction 0.2, seed 42)" in \
        (tmp_path / "out" / "README.md").read_text()
    assert main(train + ["--eval-fraction", "0.2", "--eval", str(data)]) == 2
    assert "--eval and --eval-fraction" in capsys.readouterr().err
    assert main(train + ["--eval-fraction", "0"]) == 2  # it would drop the config's eval and evaluate on nothing
    assert "--eval-fraction: a share above 0 and below 1 (0.1 holds out a tenth), got 0" in capsys.readouterr().err
    assert main(train + ["--eval", str(data), str(data)]) == 2  # the second was quietly not used
    assert "train tagger takes one --eval file, got 2" in capsys.readouterr().err
    # the briefer: a "held-out" eval set
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"text": f"Shelling hit Idlib on day {i}. Many fled.",
                                         "brief": f"Idlib was shelled on day {i}."}) + "\n" for i in range(10)))
    report = train_briefer(BrieferConfig(tiny_model=TinyModel(), train=[DataFile(str(pairs))], eval_fraction=0.3,
                                         output_dir=str(tmp_path / "b"), max_steps=1, batch_size=2),
                           log=lambda m: None)
    assert report["best"]["held-out"]["n"] == 3 and report["eval_fraction"] == 0.3


def test_training_goes_on_from_the_shipped_tagger_and_from_a_tagger_of_other_labels(tmp_path, capfd):
    # `base_model: default` stopped with "no file named model.safetensors" (the default is a compact delta), and
    # a tagger of other labels with "You set `ignore_mismatched_sizes` to `False`".
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import DataFile, TaggerConfig
    from conflictbrief.training.tagger import build_model, train_tagger

    shipped, _ = load_tagger("default", device="cpu")
    schema = LabelSchema.from_yaml(None)
    model, tokenizer = build_model(TaggerConfig(base_model="default"), schema, log=lambda m: None)
    assert model.config.id2label == shipped.config.id2label and model.dtype == torch.float32
    for (name, mine), theirs in zip(model.state_dict().items(), shipped.state_dict().values()):
        assert torch.equal(mine, theirs.float()), name
    from transformers import AutoTokenizer

    from conflictbrief.model.loading import base_model_path
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(base_model_path()).get_vocab()
    # trained further, exported compactly again, loaded as the default is: the same tagger
    from conflictbrief.model.loading import export_compact

    spans = tmp_path / "re3d.jsonl"
    spans.write_text(json.dumps({"text": "Rebels shelled Kafr Nabl on Monday.", "entities": [
        {"start": 15, "end": 24, "label": "Location"}, {"start": 28, "end": 34, "label": "Temporal"}]}) + "\n")
    train_tagger(TaggerConfig(base_model="default", train=[DataFile(str(spans))], output_dir=str(tmp_path / "more"),
                              max_steps=1), log=lambda m: None)
    capfd.readouterr()
    export_compact(tmp_path / "more", "tagger", tmp_path / "more-compact")
    assert "Loading weights" not in capfd.readouterr().err
    texts = ["Syrian forces shelled Idlib on Monday.", "Residents of Kafr Nabl fled."]
    full, compact = Tagger.load(str(tmp_path / "more"), device="cpu"), Tagger.load(str(tmp_path / "more-compact"),
                                                                                     device="cpu")
    assert [[(e.label, e.start, e.end) for e in ents] for ents in full.tag(texts)] == \
        [[(e.label, e.start, e.end) for e in ents] for ents in compact.tag(texts)]

    _, data = train_own_label_tagger(tmp_path, tmp_path / "own")
    first, _ = load_tagger(str(tmp_path / "own"), device="cpu")
    more = tmp_path / "more.yaml"  # a label more, and the old ones in another order
    more.write_text("labels:\n  Vehicle: a vehicle\n  Place: a place\n  Actor: an armed group\n")
    logged = []
    second, _ = build_model(TaggerConfig(base_model=str(tmp_path / "own"), labels=str(more)),
                            LabelSchema.from_yaml(str(more)), log=logged.append)
    old, new = first.config.label2id, second.config.label2id
    assert set(new) == set(old) | {"B-Vehicle", "I-Vehicle"} and new != old
    for tag, i in old.items():
        assert torch.equal(second.classifier.weight[new[tag]], first.classifier.weight[i]), tag
        assert second.classifier.bias[new[tag]] == first.classifier.bias[i]
    assert second.classifier.bias[new["B-Vehicle"]] == 0
    layer = "bert.encoder.layer.0.output.dense.weight"
    assert torch.equal(second.state_dict()[layer], first.state_dict()[layer])
    assert logged and "new labels: Vehicle; left out: none" in logged[0]
    capfd.readouterr()
    report = train_tagger(TaggerConfig(base_model=str(tmp_path / "own"), labels=str(more),
                                       train=[DataFile(str(data))], output_dir=str(tmp_path / "second"),
                                       max_steps=2), log=lambda m: None)
    assert report["best"]["step"] == 2
    assert "Loading weights" not in capfd.readouterr().err  # the training log has no bar of the base's loading
    assert load_tagger(str(tmp_path / "second"), device="cpu")[0].config.num_labels == 7  # O and B-/I- of 3 labels


def test_briefer_training_goes_on_from_a_trained_briefer_and_an_encoder_needs_warm_start(tiny_briefer_dir,
                                                                                        data_dir, tmp_path):
    # A briefer as base_model with the shipped config (warm_start: true) stopped in transformers with "Unrecognized
    # configuration class EncoderDecoderConfig for this kind of AutoModel" and a list of 600 configs.
    from conflictbrief.model.loading import load_briefer
    from conflictbrief.training.briefer import build_model, train_briefer
    from conflictbrief.training.config import BrieferConfig, ConfigError, DataFile

    logged = []
    model, _ = build_model(BrieferConfig(base_model=str(tiny_briefer_dir)), log=logged.append)
    trained, _ = load_briefer(str(tiny_briefer_dir), device="cpu")
    for (name, mine), theirs in zip(model.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(mine, theirs), name
    assert logged == [f"base {tiny_briefer_dir}: a seq2seq model, fine-tuned as it is (warm_start is for encoders)"]
    report = train_briefer(BrieferConfig(base_model=str(tiny_briefer_dir),
                                         train=[DataFile(str(data_dir / "pairs.jsonl"))],
                                         output_dir=str(tmp_path / "more"), max_steps=2, max_new_tokens=8),
                           log=lambda m: None)
    assert report["best"]["step"] == 2
    with pytest.raises(ConfigError, match="an encoder, not a seq2seq model; warm_start=true"):
        build_model(BrieferConfig(base_model="minilm", warm_start=False))
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import TaggerConfig
    from conflictbrief.training.tagger import build_model as build_tagger
    with pytest.raises(ConfigError, match="a seq2seq model \\(a briefer\\); a tagger starts from an encoder"):
        build_tagger(TaggerConfig(base_model=str(tiny_briefer_dir)), LabelSchema.from_yaml(None))



def test_briefer_training_goes_on_from_a_compact_export(data_dir, tmp_path):
    """A compact briefer (`conflictbrief export`: a float16 delta over a MiniLM BERT2BERT, no tokenizer of its
    own) as base_model is rebuilt as load_briefer rebuilds it and trains on; checked by hand only until
    2026-12-06."""
    from transformers import AutoTokenizer

    from conflictbrief.model.loading import base_model_path, export_compact, load_briefer, save_model, \
        warm_start_briefer
    from conflictbrief.training.briefer import build_model, train_briefer
    from conflictbrief.training.config import BrieferConfig, DataFile

    model = warm_start_briefer(base_model_path())
    with torch.no_grad():  # a stand-in for training
        model.decoder.cls.predictions.bias.add_(0.5)
    save_model(model, AutoTokenizer.from_pretrained(base_model_path()), tmp_path / "full")
    export_compact(tmp_path / "full", "briefer", tmp_path / "compact")
    logged = []
    built, tokenizer = build_model(BrieferConfig(base_model=str(tmp_path / "compact")), log=logged.append)
    assert logged == [f"base {tmp_path / 'compact'}: a seq2seq model, fine-tuned as it is "
                      "(warm_start is for encoders)"]
    assert tokenizer.vocab_size == 30522 and next(built.parameters()).dtype == torch.float32
    for (name, mine), theirs in zip(built.state_dict().items(), load_briefer(str(tmp_path / "compact"),
                                                                             device="cpu")[0].state_dict().values()):
        assert torch.equal(mine, theirs.float()), name
    assert torch.allclose(built.decoder.cls.predictions.bias, model.decoder.cls.predictions.bias, atol=1e-3)
    report = train_briefer(BrieferConfig(base_model=str(tmp_path / "compact"),
                                         train=[DataFile(str(data_dir / "pairs.jsonl"))],
                                         output_dir=str(tmp_path / "more"), max_steps=1, max_new_tokens=4,
                                         max_source_length=64, max_target_length=16),
                           log=lambda m: None)
    assert report["best"]["step"] == 1
    assert (tmp_path / "more" / "model.safetensors").exists()



def test_reinit_layers_starts_the_top_layers_of_an_encoder_afresh_and_refuses_a_tagger():
    from conflictbrief.model.labels import LabelSchema
    from conflictbrief.training.config import ConfigError, TaggerConfig
    from conflictbrief.training.tagger import build_model

    schema = LabelSchema.from_yaml(None)
    torch.manual_seed(0)
    plain, _ = build_model(TaggerConfig(), schema, log=lambda m: None)
    logged = []
    torch.manual_seed(0)
    fresh, _ = build_model(TaggerConfig(reinit_layers=2), schema, log=logged.append)
    assert logged == ["reinit_layers: the top 2 of 6 layers of minilm start from fresh random weights"]
    mine, theirs = fresh.state_dict(), plain.state_dict()
    kept = [k for k in mine if not k.startswith(("bert.encoder.layer.4.", "bert.encoder.layer.5."))]
    assert all(torch.equal(mine[k], theirs[k]) for k in kept if not k.startswith("classifier."))
    for i in (4, 5):
        dense = mine[f"bert.encoder.layer.{i}.intermediate.dense.weight"]
        assert not torch.equal(dense, theirs[f"bert.encoder.layer.{i}.intermediate.dense.weight"])
        assert abs(dense.std().item() - 0.02) < 0.002 and not mine[f"bert.encoder.layer.{i}.output.dense.bias"].any()
        assert torch.equal(mine[f"bert.encoder.layer.{i}.output.LayerNorm.weight"], torch.ones(384))
    with pytest.raises(ConfigError, match="reinit_layers=1: base_model default is a tagger"):
        build_model(TaggerConfig(base_model="default", reinit_layers=1), schema)
    with pytest.raises(ConfigError, match="reinit_layers=7: base_model minilm has 6 layers"):
        build_model(TaggerConfig(reinit_layers=7), schema)

def test_overrides_written_after_the_train_and_eval_files_are_overrides(tmp_path, monkeypatch, capsys):
    # `--eval dev.txt epochs=3` read "epochs=3" as a second eval file ("train tagger takes one --eval file, got
    # 2"); after --train, as a training file ("epochs=3: no such file").
    from conflictbrief.cli import main

    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"text": f"Ahmed Ali fled Idlib on day {i}.", "entities": [
        {"start": 0, "end": 9, "label": "Person"}, {"start": 15, "end": 20, "label": "Location"}]}) + "\n"
        for i in range(6)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd=name.jsonl").write_text(data.read_text())  # a file that exists stays a file
    assert main(["train", "tagger", "--output", "out", "--train", str(data), "odd=name.jsonl", "tiny_model={}",
                 "--eval", str(data), "max_steps=2", "seed=7"]) == 0
    saved = (tmp_path / "out" / "training_config.yaml").read_text()
    assert "max_steps: 2" in saved and "seed: 7" in saved and "path: odd=name.jsonl" in saved
    with pytest.raises(SystemExit):
        main(["train", "tagger", "--train", "epochs=1", "tiny_model={}"])
    assert "--train: expected at least one file, got only key=value overrides: epochs=1" in capsys.readouterr().err
