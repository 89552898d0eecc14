"""Saved web pages: the story is read, the site's menus, notices, boxes and footer are not."""
from conflictbrief.inference.clean import clean
from conflictbrief.inference.page import boilerplate, declared_charset

STORY = ("<p>Syrian forces shelled Idlib on Monday, and 120,000 people fled toward Turkey.</p>\n"
         "<p>The Syrian Observatory for Human Rights said the army was close to Maarat al-Numan.</p>\n"
         "<p>Rescue workers said dozens of homes were destroyed in the town of Saraqib.</p>\n")


def page(story: str = STORY, around: str = "") -> str:
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Thousands flee Idlib | World | Daily Example</title>
<script>var a = "<div>not markup</div>";</script></head>
<body><div class="cookie-banner">We use cookies to improve your experience. Accept all</div>
<header class="site"><a href="/">Daily Example</a><nav><ul><li><a href="/news">News</a></li>
<li><a href="/world">World</a></li></ul></nav></header>
<main><article><header><h1>Thousands flee as forces push into Idlib</h1><p>By Jane Doe, Beirut</p></header>
<div class="share-tools">Share on Facebook Share on Twitter</div>
{story}
<aside><h3>Related</h3><ul><li>Turkey warns of new refugee wave after 300 killed</li></ul></aside>
</article></main>{around}
<div id="most-read"><h2>Most read</h2><ol><li>Storm Brendan: 50,000 homes without power</li></ol></div>
<footer><p>&copy; 2020 Daily Example Ltd. All rights reserved.</p></footer>
</body></html>"""


def test_a_news_page_keeps_its_story_and_headline_only():
    raw = page()
    c = clean(raw)
    assert c.text.split("\n\n") == [
        "Thousands flee as forces push into Idlib", "By Jane Doe, Beirut",
        "Syrian forces shelled Idlib on Monday, and 120,000 people fled toward Turkey.",
        "The Syrian Observatory for Human Rights said the army was close to Maarat al-Numan.",
        "Rescue workers said dozens of homes were destroyed in the town of Saraqib."]
    i = c.text.index("Maarat al-Numan")  # offsets still slice the page as given
    s, e = c.raw_span(i, i + len("Maarat al-Numan"))
    assert raw[s:e] == "Maarat al-Numan"
    for i in range(len(c.text)):
        assert 0 <= c.starts[i] <= c.ends[i] <= len(raw)


def test_without_an_article_container_the_boilerplate_elements_still_go():
    raw = page().replace("<main><article>", "<div class=\"story\">").replace("</article></main>", "</div>")
    text = clean(raw).text
    assert "Rescue workers said dozens" in text and "Thousands flee as forces push into Idlib" in text
    for gone in ("cookies", "News", "Share on", "300 killed", "Storm Brendan", "Daily Example", "rights reserved"):
        assert gone not in text, gone


def test_a_form_around_the_whole_page_and_a_content_column_named_sidebar_are_kept():
    # ASP.NET wraps a whole page in one <form>; a theme may call its content column "sidebar-left": an
    # element holding more than half of the page's text is never boilerplate
    raw = ('<html><body><form id="aspnetForm"><nav>Home | World</nav><div class="col sidebar-left">'
           + STORY + "</div></form></body></html>")
    text = clean(raw).text
    assert text.startswith("Syrian forces shelled Idlib") and "Saraqib" in text and "Home" not in text


def test_a_listing_page_of_teaser_articles_is_read_whole():
    teasers = "".join(f"<article><h2>Story {n}</h2><p>Teaser number {n} about the fighting in Idlib.</p></article>"
                      for n in range(5))
    text = clean(f"<html><body><main>{teasers}</main></body></html>").text
    assert all(f"Teaser number {n}" in text for n in range(5))
    two = "".join(f"<article><p>Teaser number {n} about the fighting in Idlib.</p></article>" for n in range(2))
    assert boilerplate(two) == []
    # a story beside a short teaser: the one with the most text is the story, even when it comes second
    raw = f"<article><p>Short teaser on Homs.</p></article><article>{STORY}</article>"
    assert clean(raw).text.startswith("Syrian forces shelled")


def test_hidden_and_unclosed_elements():
    raw = ('<div><p hidden>Hidden one.</p><p style="display: none">Hidden two.</p>'
           '<p aria-hidden="true">Hidden three.</p><p class="hidden-xs">Shown on large screens.</p>'
           '<p title="hidden gems">A title attribute.</p>' + STORY + "<nav>No end tag, so kept.</div>")
    text = clean(raw).text
    assert "Hidden" not in text
    assert "Shown on large screens." in text and "A title attribute." in text and "No end tag, so kept." in text


def test_text_that_is_not_a_page_is_left_alone():
    for text in ("Fewer than <50 people> were there.", "Syrian forces shelled Idlib.", "a < b and c > d",
                 "<b>Bold</b> claims", ""):
        assert boilerplate(text) == []
    # a script's string holding markup is not markup
    assert boilerplate('<script>x = "<nav>menu</nav>"</script><p>Story text here.</p>') == []


def test_declared_charset():
    assert declared_charset(b'<html><head><meta charset="windows-1251">') == "cp1251"
    assert declared_charset(b"<meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-1'>") == "cp1252"
    assert declared_charset(b'<meta charset=utf-8>') == "utf-8"
    assert declared_charset(b'<meta charset="klingon">') is None
    assert declared_charset(b"<p>no declaration</p>") is None
