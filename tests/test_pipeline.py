import json
import threading

import pytest
import torch

from conflictbrief.inference.clean import clean
from conflictbrief.inference.pipeline import InputError

RAW = "date 2020-01-27 %MINIFYHTML2e%\n\nSyrian forces shelled Idlib on Monday. About 120,000 people fled & # 39;."


def test_analyze_result_is_typed_json_and_offsets_slice_raw(tiny_pipeline):
    r = tiny_pipeline.analyze(RAW, id="a")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["id"] == "a" and d["date"] == "2020-01-27"
    for e in r.entities:
        assert r.text[e.start:e.end] == e.text
        assert clean(RAW[e.raw_start:e.raw_end]).text == e.text.strip()  # debris maps to its debris
    assert 1 <= len(r.brief) <= 5
    for s in r.brief:
        assert s.origin in ("generated", "extracted")
        assert all(0 <= i < len(r.sentences) for i in s.sources)


def test_batch_keeps_order_and_reports_bad_items(tiny_pipeline):
    items = [("a", RAW), ("b", ""), ("c", 7), ("d", RAW)]
    out = list(tiny_pipeline.analyze_batch(items, batch_size=2))
    assert [r.id for r in out] == ["a", "b", "c", "d"]
    assert out[1].error and "empty" in out[1].error and "int" in out[2].error and out[3].error is None
    with pytest.raises(InputError, match="record 'x': text must be a string"):
        tiny_pipeline.analyze(None, id="x")
    # dicts as services hold them; a malformed item is one error result and the stream goes on (a 3-tuple
    # stopped it with a ValueError)
    out = list(tiny_pipeline.analyze_batch([{"id": "e", "text": RAW}, ("f", RAW, "extra"), {"id": "g"}, RAW]))
    assert [r.id for r in out] == ["e", None, "g", None]
    assert out[0].error is None and out[3].error is None
    assert "an (id, text) pair" in out[1].error and "got a tuple of 3" in out[1].error
    assert out[2].error == "record 'g': text must be a string (or a list of the reports of one event), got NoneType"


def test_concurrent_callers_get_their_own_results(tiny_pipeline):
    expected = tiny_pipeline.analyze(RAW).to_dict()
    got, errors = [], []

    def call():
        try:
            got.append(tiny_pipeline.analyze(RAW).to_dict())
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    strip = lambda d: {k: v for k, v in d.items() if k != "timings"}  # noqa: E731
    assert all(strip(g) == strip(expected) for g in got)


def test_batch_results_equal_one_at_a_time(tiny_pipeline):
    # analyze_batch sorts a pool of articles by length and tags all briefs of the pool in one pass;
    # each result must still be exactly what the article gets alone.
    texts = [RAW, "Turkey hosts 3.5 million Syrian refugees. Talks in Moscow ended. " * 3, RAW + " More shelling.",
             "Syrian forces shelled Idlib on Monday."]
    strip = lambda d: {k: v for k, v in d.items() if k != "timings"}  # noqa: E731
    alone = [strip(tiny_pipeline.analyze(t).to_dict()) for t in texts]
    batched = [strip(r.to_dict()) for r in tiny_pipeline.analyze_batch(texts, batch_size=2, pool=2)]
    assert batched == alone


def test_int8_pipeline_quantises_linear_layers(tiny_tagger_dir, tiny_briefer_dir):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.model.loading import ModelLoadError, parse_dtype

    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu", dtype="int8")
    assert any(isinstance(m, QLinear) for m in p.tagger.model.modules())
    assert any(isinstance(m, QLinear) for m in p.briefer.model.modules())
    r = p.analyze(RAW)
    assert r.error is None and r.models["dtype"] == "int8" and 1 <= len(r.brief) <= 5
    with pytest.raises(ModelLoadError, match="unknown dtype 'fp8'"):
        parse_dtype("fp8")


def test_bfloat16_pipeline_on_cpu_and_float16_refused_there(tiny_tagger_dir, tiny_briefer_dir):
    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.model.loading import ModelLoadError, cpu_has_fast_bf16

    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu", dtype="bfloat16")
    assert next(p.tagger.model.parameters()).dtype == torch.bfloat16
    assert next(p.briefer.model.parameters()).dtype == torch.bfloat16
    r = p.analyze(RAW)
    assert r.error is None and r.models["dtype"] == "bfloat16" and 1 <= len(r.brief) <= 5
    assert all(0.0 <= e.score <= 1.0 for e in r.entities)  # scores come back as float32 probabilities
    assert isinstance(cpu_has_fast_bf16(), bool)
    with pytest.raises(ModelLoadError, match="float16 is for GPU; on CPU use bfloat16"):
        Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu", dtype="float16")
    with pytest.MonkeyPatch.context() as mp:  # a CPU without bfloat16 units: it loads, and says it is slow
        mp.setattr("conflictbrief.model.loading.cpu_has_fast_bf16", lambda: False)
        with pytest.warns(RuntimeWarning, match="no AMX or AVX512-BF16 units: bfloat16 runs emulated"):
            Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu", dtype="bfloat16")


def test_headline_is_split_guarded_and_reported(tiny_pipeline, monkeypatch):
    from conflictbrief.inference.briefer import split_headline

    assert split_headline("syrian forces shell idlib | | | about 120,000 fled.") == (
        "syrian forces shell idlib", "about 120,000 fled.")
    assert split_headline("no headline here.") == (None, "no headline here.")
    text = "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey. Aid groups warned."

    def fake(headline):
        def brief(articles, **_):
            return [{"text": "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey.",
                     "headline": headline, "raw": "...", "used": [0, 1], "sentences": []} for _ in articles]
        return brief

    monkeypatch.setattr(tiny_pipeline.briefer, "brief", fake("Syrian forces shelled Idlib"))
    r = tiny_pipeline.analyze(text)
    assert r.headline == "Syrian forces shelled Idlib" and len(r.brief) == 2
    monkeypatch.setattr(tiny_pipeline.briefer, "brief", fake("Syrian forces killed 300 in Idlib"))
    r = tiny_pipeline.analyze(text)
    assert r.headline is None and len(r.brief) == 2
    assert r.guards["removed"][0] == {"sentence": "Syrian forces killed 300 in Idlib",
                                      "reason": "unsupported_number", "items": ["300"], "headline": True}


def test_short_articles_still_get_a_brief_and_a_warning(tiny_pipeline):
    sources = ["Idlib was shelled.", "More than 300 people fled.", "Aid groups said the roads to the border were full."]
    picked = [b.text for b in tiny_pipeline._extract(sources, set(), 3)]
    # Sentences of 6-60 words first; shorter ones (but not under 4 words: headings, bylines) fill in.
    assert picked == ["More than 300 people fled.", "Aid groups said the roads to the border were full."]
    assert tiny_pipeline._short(tiny_pipeline._extract(sources[:1], set(), 3))[0].startswith("short brief: 0")


def test_questions_only_fill_in_and_a_long_lead_is_kept(tiny_pipeline):
    from conflictbrief.inference.briefer import is_question

    assert is_question("How do they manage to get away with it?") and is_question('"Who is to blame?"')
    assert not is_question('"Who is to blame?" the minister asked.')
    sources = ["Why does Latin America have the highest female murder rates?",
               "El Salvador heads the list with 8.9 homicides per 100,000 women.",
               "Colombia follows with 6.3, and Guatemala with 6.2 in the same year.",
               "How do these criminal activities increase the victimization of women?",
               "The report was published by the Small Arms Survey in Geneva."]
    assert [b.sources for b in tiny_pipeline._extract(sources, set(), 3)] == [[1], [2], [4]]
    assert [b.sources for b in tiny_pipeline._extract(sources[:4], set(), 3)] == [[0], [1], [2]]  # one must fill in
    # A report's lead carries the event: it may run to 90 words (LEAD_WORDS), another sentence to 60.
    lead = ("A suicide bomber detonated an explosive laden vehicle near the house of a pro Government militant "
            "commander Maulvi Nabi, killing at least nine persons, including four children, three of them being "
            "girls, and injuring 13 others, in a war of attrition between two militant outfits in Speen Tall area "
            "of Orakzai Agency in Federally Administered Tribal Areas (FATA) on July 21, reported Dawn.")
    later = "Officials said the " + " ".join(["attack was"] * 30) + " condemned."
    sources = [lead, "This is basically between two militant groups, the administrator told the media.", later,
               "An official said that Maulvi Nabi had waged a war against another outfit.",
               "Maulvi Nabi is not anti state, the official said."]
    assert len(lead.split()) == 63 and len(later.split()) > 60
    assert [b.sources for b in tiny_pipeline._extract(sources, set(), 3)] == [[0], [1], [3]]
    assert [b.sources for b in tiny_pipeline._extract(sources[1:], set(), 3)] == [[0], [2], [3]]  # [1]: no lead


def test_extracted_sentences_are_neutralised_or_passed_over(tiny_pipeline):
    sources = ["Regime forces shelled the town of Maarat al-Numan on Monday.",
               "Terrorists attacked a checkpoint near the town on Sunday night.",
               "Residents said a brutal bombardment had cut the road to the border.",
               "Aid groups said the roads to the border were full of families."]
    substituted = []
    picked = tiny_pipeline._extract(sources, set(), 3, substituted)
    assert [(b.text, b.sources) for b in picked] == [
        ("Government forces shelled the town of Maarat al-Numan on Monday.", [0]),
        ("Residents said a bombardment had cut the road to the border.", [2]),
        ("Aid groups said the roads to the border were full of families.", [3])]
    assert substituted == [{"term": "Regime", "neutral": "Government"}, {"term": "brutal", "neutral": ""}]


def test_share_buttons_are_never_brief_sentences_and_lower_cased_sentences_get_a_capital(tiny_pipeline):
    sources = ["Facebook Twitter Linkedin Mail", "hyderabad: three persons were injured in police firing on friday.",
               "five rounds were fired in the air near the police station.",
               "the mob also set afire seven scooters parked at the station."]
    picked = tiny_pipeline._extract(sources, set(), 3)
    assert [b.sources for b in picked] == [[1], [2], [3]]
    assert picked[1].text == "Five rounds were fired in the air near the police station."


def test_text_that_is_not_english_prose_gets_a_warning(tiny_pipeline):
    spanish = ("El ejército sirio bombardeó la ciudad de Idlib el lunes, según fuentes locales. Miles de personas "
               "huyeron hacia la frontera con Turquía en las últimas horas del día, mientras los hospitales de la "
               "zona pedían ayuda urgente a las organizaciones internacionales.")
    english = ("Syrian government forces shelled the town of Maarat al-Numan on Monday, residents said. More than "
               "300 families fled towards the Turkish border overnight, and the hospitals in the area asked the "
               "aid agencies for help as the shelling went on.")
    warned = [any("does not read as English" in w for w in r.warnings)
              for r in tiny_pipeline.analyze_batch([spanish, english, "Idlib was shelled on Monday."])]
    assert warned == [True, False, False]  # the last is too short to tell


def test_a_sentence_that_repeats_a_picked_one_is_passed_over(tiny_pipeline):
    # News pages repeat their lead in a summary box: "... a major study has warned." / "... warns today."
    sources = ["Daily paracetamol could raise the risk of heart attacks, stroke and early death, a major study has "
               "warned.",
               "Daily paracetamol could raise the risk of heart attacks, stroke and early death, a major study warns "
               "today.",
               "Patients prescribed high doses for long periods were up to 63 per cent more likely to die.",
               "The researchers reviewed eight studies of more than 665,000 people."]
    picked = tiny_pipeline._extract(sources, set(), 3)
    assert [b.sources for b in picked] == [[0], [2], [3]]


def test_wire_notes_before_a_story_are_left_out_of_extracted_sentences(tiny_pipeline):
    sources = ["(SUBS: REPEATS TO FIX SLUG) British politicians questioned the adoption of a boy on Thursday.",
               "ISSUED AT 16:00 SAST BY THE SOUTH AFRICAN WEATHER SERVICE.",  # capitals in a cased article
               "By Rob Woollard (PICTURE) Aircraft will again scour a rugged region of Nevada on Thursday.",
               "UN OCHA Director Mark Lowcock said aid was blocked at the border."]
    picked = tiny_pipeline._extract(sources, set(), 3)
    assert [(b.text, b.sources) for b in picked] == [
        ("British politicians questioned the adoption of a boy on Thursday.", [0]),
        ("Aircraft will again scour a rugged region of Nevada on Thursday.", [2]),
        ("UN OCHA Director Mark Lowcock said aid was blocked at the border.", [3])]


def test_a_short_line_without_end_punctuation_is_no_extracted_sentence(tiny_pipeline):
    # a page's <h1> or a headline line in sentence case, in an article whose sentences end in punctuation
    sources = ["Thousands flee as Assad forces push into Idlib",
               "Syrian forces shelled Idlib on Monday, and thousands of people fled toward Turkey.",
               "The Syrian Observatory said the army was close to Maarat al-Numan by the evening.",
               "Rescue workers said dozens of homes were destroyed in the town of Saraqib."]
    assert [b.sources for b in tiny_pipeline._extract(sources, set(), 3)] == [[1], [2], [3]]


def test_a_one_line_article_in_capitals_is_briefed_at_once(tiny_pipeline):
    # GLOCON wire headlines: the headline-tail rule took exponential time on them (minutes: a hung batch job)
    import time

    from conflictbrief.inference.briefer import strip_lead_note

    line = "EGYPTIAN FOREIGN MINISTRY DENIES REPORTS OF PREPARATIONS FOR EXTENDED SYRIAN OPPOSITION MEETING IN CAIRO"
    started = time.perf_counter()
    assert strip_lead_note(line) == line
    assert strip_lead_note(line + " " + line) == line + " " + line
    assert strip_lead_note("ANTITRUST DISPUTE ENDS Two companies agreed on Monday to settle the case.") == (
        "Two companies agreed on Monday to settle the case.")
    assert [b.sources for b in tiny_pipeline._extract([line], set(), 3)] == [[0]]
    assert time.perf_counter() - started < 1


def test_auto_dtype_is_bfloat16_only_on_a_cpu_with_amx(tiny_tagger_dir, monkeypatch):
    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.model import loading

    monkeypatch.setattr(loading, "cpu_has_amx", lambda: True)
    assert loading.auto_dtype("cpu") == torch.bfloat16
    assert loading.parse_dtype("auto", "cpu") == torch.bfloat16
    assert loading.auto_dtype(torch.device("cuda")) is None  # GPUs: float32 unless asked (none was measured)
    assert loading.parse_dtype("auto") is None and loading.parse_dtype("float32", "cpu") == torch.float32
    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu")  # the default is auto
    assert next(p.tagger.model.parameters()).dtype == torch.bfloat16 and p.models["dtype"] == "bfloat16"
    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu", dtype=None)
    assert next(p.tagger.model.parameters()).dtype == torch.float32 and p.models["dtype"] == "float32"

    monkeypatch.setattr(loading, "cpu_has_amx", lambda: False)
    assert loading.auto_dtype("cpu") is None
    p = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu")
    assert next(p.tagger.model.parameters()).dtype == torch.float32 and p.models["dtype"] == "float32"


_FRAGMENTED_HEAP = """
import ctypes
from conflictbrief.inference.heap import release_free_memory
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: 64 KiB blocks come from the heap, as in a long job
libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: free() alone gives nothing back
blocks = [libc.malloc(64 << 10) for _ in range(3200)]  # 200 MiB
for b in blocks:
    ctypes.memset(b, 1, 64 << 10)
for b in blocks[:-1]:  # the last one stays live at the top of the heap: the heap cannot simply shrink
    libc.free(b)
before = rss_mib()
print(release_free_memory(), round(before - rss_mib()))
"""


def test_free_heap_memory_goes_back_to_the_system():
    import subprocess
    import sys

    from conflictbrief.inference.heap import release_free_memory

    if not sys.platform.startswith("linux"):
        assert release_free_memory() is False
        return
    # In a child process: the allocator settings it needs would stay in this one.
    done = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    released, mib = done.stdout.split()
    assert released == "True" and int(mib) > 100, done.stdout


def test_default_batch_size_follows_the_dtype(tiny_tagger_dir, tiny_briefer_dir):
    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.model.loading import default_batch_size

    assert default_batch_size(torch.bfloat16) == 32 and default_batch_size(None) == 16
    assert default_batch_size("int8") == 16
    wide = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu", dtype="bfloat16")
    assert wide.batch_size == 32 and wide.briefer.batch_size == 32 and wide.tagger.batch_size == 64
    narrow = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=str(tiny_briefer_dir), device="cpu", dtype=None)
    assert narrow.batch_size == 16 and narrow.briefer.batch_size == 16
    named = Pipeline.load(tagger=str(tiny_tagger_dir), briefer=None, device="cpu", dtype="bfloat16", batch_size=8)
    assert named.batch_size == 8 and named.tagger.batch_size == 16


def test_one_function_analyses_with_the_default_pipeline_loaded_once(tiny_pipeline, monkeypatch):
    """`conflictbrief.analyze(text)`: the default pipeline is loaded by the first call, whichever thread makes
    it, and shared by the rest."""
    import threading

    import conflictbrief
    from conflictbrief.inference import pipeline

    loads = []

    def load(*args, **kwargs):
        loads.append((args, kwargs))
        return tiny_pipeline

    monkeypatch.setattr(pipeline.Pipeline, "load", load)
    monkeypatch.setattr(pipeline, "_shared", None)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(conflictbrief.analyze(RAW, id=f"t{i}")))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [((), {})] and sorted(r.id for r in results) == ["t0", "t1", "t2", "t3"]
    assert results[0].to_dict()["entities"] == tiny_pipeline.analyze(RAW).to_dict()["entities"]
    with pytest.raises(pipeline.InputError):
        conflictbrief.analyze("   ")


def test_the_reports_of_one_event_each_give_their_lead_to_an_extracted_brief(tiny_pipeline):
    from conflictbrief.inference.briefer import salience
    from conflictbrief.inference.pipeline import Pipeline

    left = ("Government forces shelled the town of Maarat al-Numan on Monday, residents said. The shelling went on "
            "into the night as families packed their cars. Aid groups said the roads north were full.")
    right = ("Rebels said they had pushed back an army assault near Maarat al-Numan on Monday. Their commanders "
             "said two villages had been retaken by the evening.")
    centre = "More than 300 families fled Maarat al-Numan towards the Turkish border overnight, the UN said."
    extractive = Pipeline(tiny_pipeline.tagger, None, tiny_pipeline.guard, extractive=True)
    one = extractive.analyze("\n\n".join([left, right, centre]))
    assert one.reports == [] and [b.sources for b in one.brief] == [[0], [1], [2]]  # one article: its lead
    r = extractive.analyze([left, right, centre], id="event")
    assert r.reports == [0, r.text.index("Rebels"), r.text.index("More than")]
    assert r.text == one.text and [b.sources for b in r.brief] == [[0], [3], [5]]  # each report's lead
    assert [b.report for b in r.brief] == [0, 1, 2] and {b.report for b in one.brief} == {None}
    blank = extractive.analyze([left, " ", centre])  # a brief sentence names its report as given: blanks count
    assert [b.report for b in blank.brief if b.sources[0] >= 3] == [2] and blank.to_dict()["brief"][0]["report"] == 0
    assert [e.text for e in r.entities] == [e.text for e in one.entities]
    for e in r.entities:  # raw offsets count in the reports joined by a blank line
        assert "\n\n".join([left, right, centre])[e.raw_start:e.raw_end] == e.text
        assert r.reports[e.report] <= e.start < (r.reports + [len(r.text)])[e.report + 1]  # the report it is in
    assert r.entities and {e.report for e in one.entities} == {None}
    assert salience(["A first sentence of four.", "A second one of the same.", "A third one here now."], [2])[2] \
        > salience(["A first sentence of four.", "A second one of the same.", "A third one here now."])[2]
    results = list(extractive.analyze_batch([("a", [left, right]), {"id": "b", "text": [left, 7]}, ("c", [])]))
    assert [len(x.reports) for x in results[:1]] == [2]
    assert results[1].error == "record 'b': report 2 of 2 must be a string, got int"
    assert results[2].error.startswith("record 'c': text is an empty list")
    with pytest.raises(InputError, match="above the limit of 100"):
        Pipeline(tiny_pipeline.tagger, None, tiny_pipeline.guard, extractive=True, max_chars=100).analyze(
            [left[:60], left[:60]])
