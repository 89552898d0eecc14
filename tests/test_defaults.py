"""The shipped defaults on the user's seed article (offline, from the committed weights)."""
import re
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_e4a46dad2f541596.txt"


@pytest.fixture(scope="module")
def default_pipeline():
    from conflictbrief import Pipeline

    return Pipeline.load(device="cpu")


def test_default_tagger_finds_idlib_and_maarat_al_numan_with_raw_offsets(default_pipeline):
    raw = SEED.read_text(encoding="utf-8")
    result = default_pipeline.analyze(raw, id=SEED.name)
    locations = [e for e in result.entities if e.label == "Location"]
    # re3d, the schema's corpus, annotates the whole phrase ("the northwest province of Idlib" is one Location),
    # and the default follows it: "Idlib" must be a Location or the head of one.
    assert any(re.search(r"\bIdlib$", e.text) for e in locations), locations
    # the spelling "Maarat al-Numan" or a variant of it ("Maaret al-Nouman", "Marat al-Numan")
    assert any(re.fullmatch(r"Maa?r[ae]t al-N(?:ou|u|o)man", e.text) for e in locations), locations
    for e in result.entities:
        if "&" not in raw[e.raw_start:e.raw_end]:
            assert raw[e.raw_start:e.raw_end] == e.text
    import hashlib

    from conflictbrief.model.loading import default_model_dir
    delta = (default_model_dir("tagger") / "delta.safetensors").read_bytes()
    assert result.models["tagger"]["weights"] == hashlib.sha256(delta).hexdigest()[:12]  # the shipped weights


def test_default_brief_is_multi_sentence_cased_and_its_numbers_are_in_the_seed(default_pipeline):
    from conflictbrief.inference.guards import numbers_in, supported_values

    raw = SEED.read_text(encoding="utf-8")
    result = default_pipeline.analyze(raw)
    assert 2 <= len(result.brief) <= 5
    assert all(s.text[0].isupper() for s in result.brief)
    assert any(w[0].isupper() for s in result.brief for w in s.text.split()[1:]), "names keep their casing"
    values = supported_values(result.text)
    assert all(m.values & values for s in result.brief for m in numbers_in(s.text))
    assert all(s.sources for s in result.brief)


def test_default_output_leaves_out_bare_pronoun_and_determiner_mentions(default_pipeline):
    from conflictbrief.inference.tagger import BARE_WORDS

    text = default_pipeline.analyze(SEED.read_text(encoding="utf-8")).text
    names = [e.text for e in default_pipeline.analyze(text).entities]
    everything = [e.text for e in default_pipeline.tagger.__class__(
        default_pipeline.tagger.model, default_pipeline.tagger.tokenizer, mentions="all").tag([text])[0]]
    bare = [t for t in everything if all(w.lower() in BARE_WORDS for w in re.findall(r"\w+", t))]
    assert bare, "the model tags some bare mentions on the seed ('its', 'The', 'some')"
    assert [t for t in everything if t not in bare] == names


def test_version_names_the_default_weights_as_results_do(default_pipeline, capsys):
    from conflictbrief.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("conflictbrief ") and "torch 2." in out[0] and "transformers " in out[0]
    assert out[1].endswith(f"weights {default_pipeline.models['tagger']['weights']}")
    assert out[2] == "default briefer: none installed (briefs are extracted article sentences)"
