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
    assert query.tsquery() == "('x') & ('or' <-> 'near' <-> 'a') & ('ba':*)"


def test_documents_fold_case_accents_and_punctuation() -> None:
    assert document("Crème_Brûlée.JPG") == "creme brulee jpg"
    assert document("Straße ½") == "strasse 1 2"
    assert document(None) == ""


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
