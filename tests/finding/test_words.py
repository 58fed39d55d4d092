"""How a query is read: words, prefixes and phrases, everything else only text."""

from __future__ import annotations

import pytest

from iap.finding.words import MAX_TERMS, QueryError, Term, document, parse, snippet


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("Zürich", [Term(("zurich",))]),
        ("bake*", [Term(("bake",), prefix=True)]),
        ("b*", [Term(("b",))]),  # too short to be a prefix
        ('"au lait"', [Term(("au", "lait"))]),
        ('"new yo*"', [Term(("new", "yo"), prefix=True)]),
        ('"new yo"*', [Term(("new", "yo"), prefix=True)]),
        ('"unclosed phrase', [Term(("unclosed", "phrase"))]),
        ("IMG_0042.jpg", [Term(("img", "0042", "jpg"))]),
        ("-cat NEAR dog", [Term(("cat",)), Term(("near",)), Term(("dog",))]),
        ("cat cat", [Term(("cat",))]),
        ("ba*ker", [Term(("ba", "ker"))]),
    ],
)
def test_queries_are_read_as_words(q: str, terms: list[Term]) -> None:
    assert list(parse(q).terms) == terms


@pytest.mark.parametrize("q", ["", "   ", '"*"', "-- ** ()", "_"])
def test_a_query_without_words_is_refused(q: str) -> None:
    with pytest.raises(QueryError):
        parse(q)


def test_at_most_so_many_terms() -> None:
    parse(" ".join(f"w{n}" for n in range(MAX_TERMS)))
    with pytest.raises(QueryError):
        parse(" ".join(f"w{n}" for n in range(MAX_TERMS + 1)))


def test_the_engines_only_see_quoted_words() -> None:
    query = parse('x" OR NEAR(a) "ba*')
    assert query.fts5() == '"x" "or near a" "ba"*'
    # A phrase keeps to one field group (A-D): never from one field into the next.
    phrase = " | ".join(f"('or':{g} <-> 'near':{g} <-> 'a':{g})" for g in "ABCD")
    assert query.tsquery() == f"('x') & ({phrase}) & ('ba':*)"
    assert query.tsquery("B") == "('x':B) & ('or':B <-> 'near':B <-> 'a':B) & ('ba':*B)"
    assert query.fts5(("tags",)) == '{tags} : ("x" "or near a" "ba"*)'


def test_documents_fold_case_accents_and_punctuation() -> None:
    assert document("Crème_Brûlée.JPG") == "creme brulee jpg"
    assert document("Straße ½") == "strasse 1 2"
    assert document(None) == ""
    assert document("Łódź, København, Æsir, Þórr") == "lodz kobenhavn aesir thorr"


def test_snippets_cut_around_the_first_match_at_word_boundaries() -> None:
    text = " ".join(f"word{n}" for n in range(100)) + " bakery " + "tail " * 50
    parts = snippet(text, parse("bakery"))
    assert parts is not None
    joined = "".join(part.text for part in parts)
    assert joined.startswith("…word")
    assert joined.endswith("…")
    assert [part.text for part in parts if part.highlight] == ["bakery"]
    assert len(joined) <= 170
    assert snippet("nothing here", parse("bakery")) is None


def test_a_phrase_is_highlighted_where_its_words_are_in_a_row() -> None:
    text = "A new camera. " + "filler " * 40 + "Trip to New York, then new boots"
    parts = snippet(text, parse('"new york"'))
    assert parts is not None
    assert [part.text for part in parts if part.highlight] == ["New", "York"]
    prefixed = snippet("New Yorkers in York", parse('"new yo"*'))
    assert prefixed is not None
    assert [part.text for part in prefixed if part.highlight] == ["New", "Yorkers"]
    words_anywhere = snippet("york, then new", parse("new york"))
    assert words_anywhere is not None
    assert [part.text for part in words_anywhere if part.highlight] == ["york", "new"]
