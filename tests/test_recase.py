"""Briefs of articles written in capitals: sentence case with capitals on the tagger's names."""
from types import SimpleNamespace

from conflictbrief.inference.recase import bracketed_acronyms, is_upper_cased, name_words, recase


def ents(text, *spans):
    return [SimpleNamespace(label=label, start=text.index(s), end=text.index(s) + len(s)) for label, s in spans]


def test_names_acronyms_months_and_sentence_starts_keep_capitals():
    text = ("THE NATIONAL POLICE REPORTED ON 11 JANUARY THAT OVER 15,000 PEOPLE WERE ARRESTED IN LIMA BY THE "
            "AUTHORITIES AND THE FMLN. HE SAID THE DIJIN WAS ON THE OUTSKIRTS OF SAN ISIDRO.")
    found = ents(text, ("Organisation", "THE NATIONAL POLICE"), ("Location", "LIMA"),
                 ("Organisation", "THE AUTHORITIES"), ("Organisation", "FMLN"), ("Person", "HE"),
                 ("Location", "THE OUTSKIRTS OF SAN ISIDRO"))
    out = recase(text, found, acronyms={"DIJIN"})
    # "police" and "authorities" are generic group nouns: such an organisation stays in lower case.
    assert out == ("The national police reported on 11 January that over 15,000 people were arrested in Lima by the "
                   "authorities and the FMLN. He said the DIJIN was on the outskirts of San Isidro.")
    assert len(out) == len(text) and out.lower() == text.lower()


def test_a_tagger_with_its_own_label_names_recases_the_same():
    # CoNLL / OntoNotes label names (a user's own tagger) stand for the same kinds of name
    text = "THE NATIONAL POLICE ARRESTED 15 PEOPLE IN LIMA AND THE FMLN SAID SO. PERUVIAN OFFICER JUAN DIAZ WAS HELD."
    spans = (("THE NATIONAL POLICE", "ORG"), ("LIMA", "GPE"), ("FMLN", "org"), ("PERUVIAN", "NORP"),
             ("JUAN DIAZ", "PER"), ("15", "CARDINAL"))
    ours = {"ORG": "Organisation", "GPE": "Location", "NORP": "Nationality", "org": "Organisation",
            "PER": "Person", "CARDINAL": "Quantity"}
    theirs = recase(text, ents(text, *[(label, s) for s, label in spans]))
    assert theirs == recase(text, ents(text, *[(ours[label], s) for s, label in spans]))
    assert theirs == ("The national police arrested 15 people in Lima and the FMLN said so. Peruvian officer Juan "
                      "Diaz was held.")
    assert name_words(ents(text, ("PER", "JUAN DIAZ"), ("ORG", "THE NATIONAL POLICE")), text) == {"juan", "diaz"}


def test_article_level_names_vocabulary_and_bracketed_acronyms():
    article = "THE NICARAGUAN EMBASSY (NEB) SAID SO. A NICARAGUAN OFFICER (MEMBRENO) WAS HELD."
    found = ents(article, ("Nationality", "NICARAGUAN"), ("Organisation", "THE NICARAGUAN EMBASSY"))
    assert "nicaraguan" in name_words(found, article) and "embassy" not in name_words(found, article)
    assert bracketed_acronyms(article) == {"NEB"}  # "(MEMBRENO)" is a speaker label, too long for one
    sentence = "A NICARAGUAN OFFICER WAS HELD BY THE NEB, A SOURCE SAID ON MONDAY."
    assert recase(sentence, [], {"NEB"}, {"nicaraguan"}) == \
        "A Nicaraguan officer was held by the NEB, a source said on Monday."
    # With the tokenizer's vocabulary, a short word that is not in it, in an organisation's name, is an
    # acronym; "PACE" is a word.
    sentence = "THE ELN ARMY AND THE PACE GROUP MET."
    found = ents(sentence, ("Organisation", "THE ELN ARMY"), ("Organisation", "THE PACE GROUP"))
    vocabulary = {"the", "army", "and", "pace", "group", "met"}
    assert recase(sentence, found, vocabulary=vocabulary) == "The ELN army and the pace group met."
    assert recase(sentence, found) == "The eln army and the pace group met."


def test_country_codes_in_a_name_are_no_pronouns():
    sentence = "THE US GOVERNMENT TOLD US ON MONDAY THAT THE UN WOULD HELP."
    found = ents(sentence, ("Organisation", "THE US GOVERNMENT"), ("Organisation", "THE UN"))
    assert recase(sentence, found) == "The US government told us on Monday that the UN would help."


def test_may_and_march_are_months_only_next_to_a_number():
    sentence = "THEY MAY MARCH ON 26 MARCH, AS THEY DID IN MAY 1989."
    assert recase(sentence, []) == "They may march on 26 March, as they did in May 1989."


def test_the_length_never_changes():
    for sentence in ["ßTRASSE IN DER STADT WURDE GESPERRT.", "İSTANBUL POLICE SAID SO. ßOME MORE TEXT."]:
        assert len(recase(sentence, [])) == len(sentence)


def test_upper_cased_detection():
    assert is_upper_cased("THE POLICE SAID 20 PEOPLE WERE ARRESTED IN LIMA ON MONDAY.")
    assert not is_upper_cased("The police said 20 people were arrested in LIMA on MONDAY and in the capital.")
    assert not is_upper_cased("UN AID")  # too short to tell


def test_pipeline_recases_briefs_of_articles_in_capitals(tiny_pipeline):
    raw = ("THE NATIONAL POLICE REPORTED TODAY THAT OVER 15,000 PEOPLE HAVE BEEN ARRESTED IN LIMA OVER THE PAST\n"
           "FEW HOURS IN A DRAGNET AIMED AT THE ASSASSINS OF A FORMER DEFENSE MINISTER.  THE POLICE ALSO\n"
           "STOPPED 8,000 CARS IN THE SEARCH FOR THE ASSASSINS, WHO ARE PRESUMABLY MEMBERS OF A GROUP.\n\n"
           "   THE MINISTER, WHO LEFT HIS POST IN MAY 1989, WAS SHOT AS HE WAS GETTING OUT OF HIS CAR IN THE\n"
           "CITY ON MONDAY MORNING.  HE WAS DRIVING WITHOUT AN ESCORT, THE POLICE SAID IN A STATEMENT.\n")
    result = tiny_pipeline.analyze(raw)
    assert any("in capitals" in w for w in result.warnings)
    assert len(result.brief) >= 2
    sources = [result.text[s:e] for s, e in result.sentences]
    for sentence in result.brief:
        assert sentence.text != sentence.text.upper() and sentence.text[0].isupper()
        assert sentence.text.lower() == sources[sentence.sources[0]].lower()  # the same words, recased
    for e in result.entities:  # entities keep the article's own capitals and raw offsets
        assert e.text.split() == raw[e.raw_start:e.raw_end].split()
