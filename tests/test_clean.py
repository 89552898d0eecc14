import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conflictbrief.inference.clean import clean, split_sentences

DIRT = ["& # 39;", "&#39;", ",quot;", "&quot;", "%MINIFYHTML2e77ef298cc376979faf3962b7ae160f11%", "<b>", "</p>",
        "  ", "\n\n\n", "\u00a0", "ﬁ", "Idlib", "al-Numan", " 120,000 ", ".", "\x00", "é", "\u200b",
        "â€™", "Ã©", "â€", "\x9d", "aEUR(tm)", "aEUR",
        "THE ARMY SAID THAT ABOUT 50 PEASANTS WERE TAKEN BY THE\n", "A CEASE-\n", "GUERRILLAS IN SAN MIGUEL.\n",
        "<nav>", "</nav>", "<article>", "</article>", '<div class="share">', "</div>", "<main>", "</main>"]


def raw_of(c, clean_piece: str) -> str:
    """The raw text under the first occurrence of ``clean_piece`` in ``c.text``."""
    i = c.text.index(clean_piece)
    return c.raw[slice(*c.raw_span(i, i + len(clean_piece)))]


def test_seed_debris_is_repaired():
    raw = ("date 2020-01-27 %MINIFYHTML2e77ef298cc376979faf3962b7ae160f11%\n\nfled into \"the unknown,quot; "
           "to escape\n\n& # 39; Completely destroyed & # 39;")
    c = clean(raw)
    assert c.date == "2020-01-27"
    assert c.text == "fled into \"the unknown\" to escape\n\n'Completely destroyed'"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(DIRT) | st.text(max_size=5), max_size=30))
def test_offset_map_stays_inside_and_maps_back(pieces):
    raw = "".join(pieces)
    c = clean(raw)
    assert len(c.starts) == len(c.ends) == len(c.text)
    for i, ch in enumerate(c.text):
        s, e = c.starts[i], c.ends[i]
        assert 0 <= s <= e <= len(raw)
        if e - s == 1 and raw[s] == ch:
            continue
        assert e > s, "every clean character comes from some raw character"
    for i in range(len(c.text)):  # ASCII letters and digits of the raw text are never altered
        if c.ends[i] - c.starts[i] == 1 and raw[c.starts[i]].isascii() and raw[c.starts[i]].isalnum():
            assert raw[c.starts[i]] == c.text[i]


def test_raw_span_slices_the_same_surface():
    raw = "<p>Shelling&nbsp;hit   Maarat al-Numan &amp; Idlib.</p>"
    c = clean(raw)
    assert raw_of(c, "Maarat al-Numan") == "Maarat al-Numan"


def test_sentences_keep_abbreviations_and_split_lines():
    text = "The U.S. envoy met Gen. Smith on Monday. Talks failed.\nIdlib\nMore fighting?"
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans == ["The U.S. envoy met Gen. Smith on Monday.", "Talks failed.", "Idlib", "More fighting?"]


def test_mojibake_is_repaired_with_offsets_into_the_raw_text():
    raw = "Itâ€™s a â€œtestâ€\x9d in SÃ£o Paulo; Â£5. Café and naïve stay as they are."
    c = clean(raw)
    assert c.text == "It’s a “test” in São Paulo; £5. Café and naïve stay as they are."
    assert raw_of(c, "São Paulo") == "SÃ£o Paulo"
    # the same mojibake folded to ASCII by a second bad pass (as in some news archives)
    assert clean("the governmentaEUR(tm)s aEUR~communalaEUR(tm) and aEURoesecularaEUR parties").text == \
        "the government’s ‘communal’ and “secular” parties"


def test_a_lower_cased_article_is_still_split_into_sentences():
    text = ("hyderabad: three persons were injured in police firing on friday. five rounds were fired in the air. "
            "the mob also set afire seven scooters parked at the station.")
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "hyderabad: three persons were injured in police firing on friday.", "five rounds were fired in the air.",
        "the mob also set afire seven scooters parked at the station."]
    cased = "The talks ended at 5 p.m. and the envoys left. Fighting resumed."  # p.m. before lower case: no end
    assert [cased[s:e] for s, e in split_sentences(cased)] == ["The talks ended at 5 p.m. and the envoys left.",
                                                               "Fighting resumed."]
    # two sentences and a share line (IndiaPoliceEvents): one lower-case start is enough where capitals are
    # this rare, and a quotation mark may close the sentence before its full stop
    first = ('new delhi: mohammed aslam alias bhure, on whose petition the supreme court on wednesday directed not to '
             'allow any puja at ayodhya, said, "it is the victory of secularism and rule of law".')
    second = ("bhure, escorted by security personnel and his supporters, had a tough time as he was mobbed by over "
              "50-odd cameramen who wanted him to pose for a photograph as he came out of the court.")
    short = f"{first} {second} Facebook Twitter Linkedin Mail"
    assert [short[s:e] for s, e in split_sentences(short)] == [first, second, "Facebook Twitter Linkedin Mail"]
    once = "The envoy arrived at approx. two in the afternoon. Talks began. Fighting resumed."
    assert len(split_sentences(once)) == 3  # in cased text one such full stop is an abbreviation's


def test_doubled_single_quotes_become_quotation_marks_or_one_apostrophe():
    c = clean("the court''s powers: modi termed as ‘‘barbaric’’ the killing; he said ''there was firing''.")
    assert c.text == "the court's powers: modi termed as “barbaric” the killing; he said \"there was firing\"."
    assert raw_of(c, "“") == "‘‘"


def test_archive_date_lines_become_the_date():
    c = clean("This story is from March 9, 2002  vadodara: its citizens say the city recovers.")
    assert (c.date, c.text) == ("2002-03-09", "vadodara: its citizens say the city recovers.")
    assert raw_of(c, "vadodara") == "vadodara"
    assert clean("Published: 29 March 2013. The army said.").date == "2013-03-29"
    assert clean("Published: 41 March 2013. The army said.").date is None  # not a date: left as it is
    assert clean("The army said. This story is from March 9, 2002").date is None  # only at the start


def test_hard_wrapped_text_is_unwrapped_into_whole_sentences():
    # MUC-4 style wire copy: fixed-width lines that break mid-sentence and mid-word, a heading, paragraphs.
    raw = ("ARMY REPORT\n"
           "THE ARCE BATTALION COMMAND HAS REPORTED THAT ABOUT 50\n"
           "PEASANTS OF VARIOUS AGES HAVE BEEN KIDNAPPED BY GUERRILLAS OF THE\n"
           "FARABUNDO MARTI NATIONAL LIBERATION FRONT (FMLN) IN SAN MIGUEL\n"
           "DEPARTMENT.  ACCORDING TO THAT GARRISON, THE MASS KIDNAPPING TOOK\n"
           "PLACE ON 30 DECEMBER IN SAN LUIS DE LA REINA AFTER A BROKEN CEASE-\n"
           "FIRE.\n\n   THE ARMY SAID THE PEASANTS WERE RELEASED ON 2 JANUARY.\n")
    c = clean(raw)
    sentences = [c.text[s:e] for s, e in split_sentences(c.text)]
    assert sentences == [
        "ARMY REPORT",
        "THE ARCE BATTALION COMMAND HAS REPORTED THAT ABOUT 50 PEASANTS OF VARIOUS AGES HAVE BEEN KIDNAPPED BY "
        "GUERRILLAS OF THE FARABUNDO MARTI NATIONAL LIBERATION FRONT (FMLN) IN SAN MIGUEL DEPARTMENT.",
        "ACCORDING TO THAT GARRISON, THE MASS KIDNAPPING TOOK PLACE ON 30 DECEMBER IN SAN LUIS DE LA REINA AFTER "
        "A BROKEN CEASE-FIRE.",
        "THE ARMY SAID THE PEASANTS WERE RELEASED ON 2 JANUARY."]
    # a name across a line break maps back to the raw lines
    assert raw_of(c, "SAN MIGUEL DEPARTMENT") == "SAN MIGUEL\nDEPARTMENT"


def test_a_short_first_line_of_a_hard_wrapped_paragraph_is_joined():
    # MUC-4: the dateline was cut from the first line, which is short and ends mid-sentence
    raw = ("THE NEW SECOND IN COMMAND OF THE 3D\n"
           "INFANTRY REGIMENT BASED AT LA TABLADA, MAJOR HECTOR MUSIO, WILL BE\n"
           "INSTALLED THIS AFTERNOON.  HE REPLACES MAJOR HORACIO FERNANDEZ CUTIELLO\n"
           "WHO WAS KILLED DURING THE ATTACK ON THE 3D REGIMENT ON 23 JANUARY.\n\n"
           "   MUSIO WILL BE THE ACTING COMMANDING OFFICER BECAUSE COMMANDER JORGE\n"
           "SAMUDIO WAS INJURED ON 23 JANUARY WHILE HEADING A GROUP OF OFFICERS.\n")
    c = clean(raw)
    assert [c.text[s:e] for s, e in split_sentences(c.text)][0] == (
        "THE NEW SECOND IN COMMAND OF THE 3D INFANTRY REGIMENT BASED AT LA TABLADA, MAJOR HECTOR MUSIO, WILL BE "
        "INSTALLED THIS AFTERNOON.")


def test_paragraph_per_line_articles_are_not_unwrapped():
    # Scraped articles put one paragraph per line; the lines end with a full stop and stay apart.
    raw = ("Syria talks collapse\n"
           "Government forces shelled Maarat al-Numan on Monday, residents said.\n"
           "More than 300 families fled north towards the Turkish border overnight.\n"
           "The United Nations said aid convoys had been suspended until further notice.\n")
    c = clean(raw)
    assert c.text == raw.strip()
    assert len(split_sentences(c.text)) == 4


def test_wire_datelines_end_the_preamble_and_are_never_brief_sentences():
    from conflictbrief.inference.briefer import salience

    text = ("Truck driver indicted in crash NEW BRUNSWICK, N.J. (AP) — A grand jury on Wednesday indicted a "
            "truck driver accused of crashing into a van. He pleaded not guilty.")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["Truck driver indicted in crash NEW BRUNSWICK, N.J. (AP) —",
                         "A grand jury on Wednesday indicted a truck driver accused of crashing into a van.",
                         "He pleaded not guilty."]
    assert salience(sentences)[0] < 0 < salience(sentences)[1]
    text = "PYONGYANG, March 11 (Xinhua) -- The top leader has issued an order. It was reported."
    assert [text[s:e] for s, e in split_sentences(text)][1] == "The top leader has issued an order."
    text = "The United Nations (UN) - which met on Monday - said it would send aid. More later."
    assert len(split_sentences(text)) == 2  # an abbreviation in a sentence is no dateline
    text = "INVENTORY REPORT By GILLIAN WONG Oil prices fell Wednesday in Asia. Prices rose later."
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences[:2] == ["INVENTORY REPORT By GILLIAN WONG", "Oil prices fell Wednesday in Asia."]
    assert salience(sentences)[0] < 0


def test_dollar_escape_is_repaired():
    c = clean("Gold opened at US{dollar}431.30 a troy ounce.")
    assert c.text == "Gold opened at US$431.30 a troy ounce."
    assert raw_of(c, "$") == "{dollar}"


def test_lone_surrogates_are_dropped_with_offsets_kept():
    # Half an emoji from a JSON "\\ud83d" escape: the tokenizers cannot encode it (it stopped a batch job).
    raw = "\ud83d Shelling in Gaza \U0001F4A5 killed 2.\udca5"
    c = clean(raw)
    assert c.text == "Shelling in Gaza \U0001F4A5 killed 2."
    assert raw_of(c, "Gaza") == "Gaza" and raw_of(c, "\U0001F4A5") == "\U0001F4A5"
    c.text.encode("utf-8")  # no surrogate left


def test_invisible_format_characters_are_dropped():
    # A soft hyphen splits a name for the tagger; a direction override shows a brief reversed.
    c = clean("Mos\u00adul fell. \u202eShelling hit Homs.\u202c Zero\u200bwidth \u2066isolate\u2069.")
    assert c.text == "Mosul fell. Shelling hit Homs. Zerowidth isolate."
    assert raw_of(c, "Mosul") == "Mos\u00adul"


def test_text_without_punctuation_is_cut_before_sentence_starters():
    # ConfliBERT's SATP documents lost their punctuation; one 90-word "sentence" gave no brief at all.
    text = ("Two militants were killed in two separate encounters between militants and Security Forces in "
            "Kupwara and Shopian Districts on May 17 reports The Daily Excelsior A senior Police officer said "
            "that one militant was killed in an encounter in a forest area of Kupwara District They said that "
            "the identity of the militant is yet to be established while other members of the group fled "
            "under the cover of darkness More troops have been rushed to the area to track the members of the "
            "group")
    starts = [text[s:e].split()[0] for s, e in split_sentences(text)]
    assert starts == ["Two", "A", "They", "More"]  # not at "reports The Daily Excelsior"
    punctuated = text.replace(" A senior", ". A senior")  # punctuated text is split at its full stops only
    assert len(split_sentences(punctuated)) == 2


def test_text_without_punctuation_is_cut_after_the_paper_a_report_cites():
    # SATP's first sentences end on the paper's name, and no starter word need follow it: before 2026-12-07
    # such a record stayed one run-on, and 34 of SATP's 1,550 records got no brief at all.
    text = ("Three Chhattisgarh Armed Force CAF personnel were injured in an Improvised Explosive Device IED blast "
            "triggered by Communist Party of India Maoist CPI Maoist cadres in Bijapur District on February 6 "
            "reports The Asian Age Injured constables Nitesh Dewangan Anil Dhruv and Bhaluram Toppo were "
            "returning to their base camp after conducting search operation in Kutru area reported The Times of "
            "India Two more persons sustained injuries reports The Express Tribune 3 others were unhurt")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert [s.split()[0] for s in sentences] == ["Three", "Injured", "Two", "3"]
    ends = ("reports The Asian Age", "reported The Times of India", "reports The Express Tribune")
    assert all(s.endswith(end) for s, end in zip(sentences, ends))  # after the last word of the name
    assert len(split_sentences(" ".join(text.split()[:55]))) == 1  # 60 words or fewer: a sentence as it is


def test_a_title_run_into_its_story_is_split_and_a_title_is_never_a_brief_sentence():
    from conflictbrief.inference.briefer import is_title, salience

    c = clean("How Much Is Guatemala Arming the Zetas?Guatemala admits that its military trained gangs. "
              "Venezuela 's capital registered 3,218 homicides in 2012.The police said so.")
    sentences = [c.text[s:e] for s, e in split_sentences(c.text)]
    assert sentences == ["How Much Is Guatemala Arming the Zetas?", "Guatemala admits that its military trained gangs.",
                         "Venezuela's capital registered 3,218 homicides in 2012.", "The police said so."]
    assert raw_of(c, "? ") == "?"
    assert salience(sentences)[0] < 0 < salience(sentences)[1]
    assert is_title("US Adds Guatemalan Drug Queen to Blacklist.")
    assert not is_title("President Barack Obama and Prime Minister David Cameron met.")
    assert not is_title("Syrian Observatory for Human Rights said Monday.")
    c = clean("Colombia's BACRIM: On the Road to Extinction?A report by Daniel Rico says so.")
    assert [c.text[s:e] for s, e in split_sentences(c.text)][1] == "A report by Daniel Rico says so."


def test_a_whole_html_page_keeps_its_text_and_paragraphs_only():
    raw = ("<html><head><title>Idlib</title><style>body{color:red}</style><script type=\"text/javascript\">"
           "var x = 1; if (a < b) {go();}</script></head><body><p>Syrian forces shelled Idlib.</p><br/>"
           "<p>More fled <b>north</b> today.</p></body></html>")
    c = clean(raw)  # the <head> and its <title> go with the page's boilerplate (test_page.py)
    assert c.text == "Syrian forces shelled Idlib.\n\nMore fled north today."
    assert [c.text[s:e] for s, e in split_sentences(c.text)] == ["Syrian forces shelled Idlib.", "More fled north today."]
    assert raw_of(c, "north") == "north"


def test_reports_of_one_event_are_one_text_that_knows_where_each_starts():
    c = clean(["<p>Shelling hit Idlib on Monday.</p>", "  ", "date 2020-01-27\nRescuers said &quot;12&quot; died."])
    assert c.text == "Shelling hit Idlib on Monday.\n\ndate 2020-01-27\nRescuers said \"12\" died."
    assert c.reports == (0, c.text.index("date"))  # the blank report is none; a header inside is text
    assert c.report_inputs == (0, None, c.text.index("date"))  # each as given, the blank one counted
    assert [c.report_of(o) for o in (0, c.text.index("Monday"), c.text.index("died"))] == [0, 0, 2]
    tagged = clean(["Idlib was shelled.", "<br><p></p>", "Rescuers said twelve died."])  # no clean text of its own
    assert tagged.report_inputs == (0, None, tagged.text.index("Rescuers"))
    assert tagged.report_of(tagged.text.index("twelve")) == 2 and clean("One article.").report_of(0) is None
    assert c.raw == "<p>Shelling hit Idlib on Monday.</p>\n\n  \n\ndate 2020-01-27\nRescuers said &quot;12&quot; died."
    assert clean(["One report only."]).reports == () == clean("One article.").reports
    with pytest.raises(TypeError, match="report 2 of 2 must be a string, got int"):
        clean(["Idlib was shelled.", 12])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(DIRT) | st.text(max_size=5), max_size=12).map("".join), min_size=1,
                max_size=4))
@example(["& # 39;", "\x850"])  # U+0085 is a space to str.strip, and cleaning keeps it: no report starts on it
def test_each_clean_character_lies_in_the_report_it_is_counted_in(reports):
    c = clean(reports)
    firsts = [sum(len(r) + 2 for r in reports[:k]) for k in range(len(reports))]  # raw start of each report

    def report_of(raw_at):
        return max(k for k, f in enumerate(firsts) if f <= raw_at)

    assert list(c.reports) == sorted(set(c.reports)) and all(0 <= o < len(c.text) for o in c.reports)
    bounds = list(c.reports) + [len(c.text)]
    for a, b in zip(bounds, bounds[1:]):
        assert {report_of(c.starts[i]) for i in range(a, b) if not c.text[i].isspace()} <= {report_of(c.starts[a])}
        assert c.text[a].strip()
    if c.reports:
        assert sorted({report_of(c.starts[o]) for o in c.reports}) == [report_of(c.starts[o]) for o in c.reports]
        assert len(c.report_inputs) == len(reports) and set(c.reports) == set(c.report_inputs) - {None}
        for i, ch in enumerate(c.text):  # report_of names the report each clean character came from
            if not ch.isspace() and i >= c.reports[0]:
                assert c.report_of(i) == report_of(c.starts[i])
    else:
        assert c.report_inputs == ()
