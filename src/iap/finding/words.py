"""Words as search sees them: folded (case and accents), split the same way for the index, the
query and the snippets, on both databases.

The index holds each field as its folded words joined by spaces ("Café_Noir.JPG" is
"cafe noir jpg"), so SQLite's FTS5 tokenizer and PostgreSQL's parser both find exactly these
words, and a query is parsed here, never by the database: FTS syntax in a query (``NEAR``,
``-``, ``*`` mid-word, an unclosed quote) is only text, and every word reaches the engine
quoted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Letters and digits; everything else (punctuation, spaces, the underscore) separates words.
_WORD = re.compile(r"[^\W_]+")
MAX_TERMS = 16
# A prefix shorter than this would match most of the index: it is read as a whole word.
MIN_PREFIX = 2
# A query this long or longer also finds filenames that contain it anywhere ("mg_99" in
# "IMG_9912.JPG").
MIN_PART = 3


# Letters that Unicode does not decompose into a base letter and a mark, read as most
# keyboards write them: "Łódź" is "lodz", "København" "kobenhavn".
_LETTERS = str.maketrans(
    {
        "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d",
        "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ħ": "h", "Ħ": "h", "þ": "th", "Þ": "th",
        "ı": "i", "ŧ": "t", "Ŧ": "t",
    }
)  # fmt: skip


def fold(text: str) -> str:
    """Lower case without accents: "Ärger" and "arger" are one word to search."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def document(text: str | None) -> str:
    """A field as the index keeps it."""
    return " ".join(words(text)) if text else ""


@dataclass(frozen=True)
class Term:
    """One thing every hit must contain: a word, or words in a row (a phrase, or a word that
    folds into several, like "img_0042.jpg"); ``prefix``: the last word may go on."""

    words: tuple[str, ...]
    prefix: bool = False

    def fts5(self) -> str:
        return '"' + " ".join(self.words) + '"' + ("*" if self.prefix else "")

    def begins(self, run: Sequence[str]) -> bool:
        """Whether the folded words ``run`` begin with this term (the last of its words may
        go on, for a prefix)."""
        size = len(self.words)
        return len(run) >= size and all(
            seen == wanted or (self.prefix and n == size - 1 and seen.startswith(wanted))
            for n, (seen, wanted) in enumerate(zip(run[:size], self.words, strict=True))
        )

    def tsquery(self, label: str | None = None) -> str:
        """This term for ``to_tsquery``, in the field group of weight ``label`` (A-D) or in
        any; a phrase's words always in one group (PostgreSQL numbers the positions of a
        document's fields on from each other, so a phrase could otherwise run from one
        field into the next)."""
        if label is None and len(self.words) > 1:
            return "(" + " | ".join(self.tsquery(each) for each in GROUP_LABELS) + ")"
        mark = label or ""
        parts = [f"'{word}'" + (f":{mark}" if mark else "") for word in self.words]
        if self.prefix:
            parts[-1] = f"'{self.words[-1]}':*{mark}"
        return "(" + " <-> ".join(parts) + ")"


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]

    def fts5(self, columns: tuple[str, ...] | None = None) -> str:
        """For SQLite's MATCH: every term, each quoted (an implicit AND), in ``columns``."""
        terms = " ".join(term.fts5() for term in self.terms)
        return f"{{{' '.join(columns)}}} : ({terms})" if columns else terms

    def tsquery(self, label: str | None = None) -> str:
        """For PostgreSQL's ``to_tsquery('simple', ...)``: every term, in the group of weight
        ``label`` or anywhere."""
        return " & ".join(term.tsquery(label) for term in self.terms)

    def part(self) -> str | None:
        """The whole query as a piece of a filename, if it is long enough to look for."""
        joined = " ".join(word for term in self.terms for word in term.words)
        return joined if len(joined) >= MIN_PART else None

    def spans(self, text: str, *, part: bool = False) -> list[tuple[int, int]]:
        """Where in ``text`` this query's terms are, as (start, end) of its words: a word
        term's word anywhere (its beginning, for a prefix), a phrase's words only in a row.
        ``part``: a word that contains a word of the query also counts (filenames)."""
        found = [
            (word, match.start(), match.end())
            for match in _WORD.finditer(text)
            for word in words(match.group())  # a word may fold into several ("½": 1 2)
        ]
        pieces = []
        if part and self.part() is not None:
            pieces = [w for term in self.terms for w in term.words if len(w) >= 2]
        marked: set[tuple[int, int]] = set()
        for at, (word, start, end) in enumerate(found):
            if any(piece in word for piece in pieces):
                marked.add((start, end))
            for term in self.terms:
                run = found[at : at + len(term.words)]
                if term.begins([seen for seen, _, _ in run]):
                    marked.update((start, end) for _, start, end in run)
        return sorted(marked)

    def held_by(self, text: str) -> bool:
        """Whether ``text`` holds every term of this query (as ``spans`` finds them)."""
        have = words(text)
        return bool(self.terms) and all(
            any(term.begins(have[at:]) for at in range(len(have))) for term in self.terms
        )


class QueryError(ValueError):
    pass


def parse(text: str) -> Query:
    """Words, ``prefix*`` and ``"phrases in quotes"`` (an unclosed quote runs to the end)."""
    terms: list[Term] = []
    after_phrase = False
    for chunk, quoted in _chunks(text):
        if after_phrase and chunk.startswith("*") and len(terms[-1].words[-1]) >= MIN_PREFIX:
            terms[-1] = Term(terms[-1].words, True)  # "new yo"*, as FTS5 writes it
        after_phrase = False
        prefix = chunk.rstrip().endswith("*")
        found = words(chunk)
        if not found:
            continue
        if quoted:
            terms.append(Term(tuple(found), prefix and len(found[-1]) >= MIN_PREFIX))
            after_phrase = True
            continue
        # Unquoted, each space-separated piece is a term; "img_0042.jpg" keeps its words in
        # a row, as the filename has them.
        for piece in chunk.split():
            piece_words = words(piece)
            if piece_words:
                star = piece.endswith("*") and len(piece_words[-1]) >= MIN_PREFIX
                terms.append(Term(tuple(piece_words), star))
    if not terms:
        raise QueryError("The query has no words to look for: give at least one letter or digit.")
    unique = tuple(dict.fromkeys(terms))
    if len(unique) > MAX_TERMS:
        raise QueryError(f"The query has {len(unique)} terms; at most {MAX_TERMS} are looked for.")
    return Query(unique)


def _chunks(text: str) -> Iterator[tuple[str, bool]]:
    """The query split at double quotes: (text, whether it was between quotes)."""
    pieces = text.split('"')
    for index, piece in enumerate(pieces):
        # Odd pieces are inside quotes; the last one is too when its quote was never closed.
        yield piece, index % 2 == 1


@dataclass(frozen=True)
class Fragment:
    text: str
    highlight: bool


SNIPPET = 160  # characters of a field shown around its first match
_CONTEXT = 50  # of them, before the match


def snippet(text: str, query: Query, *, part: bool = False) -> list[Fragment] | None:
    """The piece of ``text`` around its first match, split into plain and highlighted
    fragments; None when nothing in it matches. ``part``: a word that contains the query's
    words also matches (filenames)."""
    spans = query.spans(text, part=part)
    if not spans:
        return None
    start, end = 0, len(text)
    if len(text) > SNIPPET:
        start = max(0, spans[0][0] - _CONTEXT)
        while 0 < start < spans[0][0] and not text[start - 1].isspace():
            start += 1  # begin at a word
        end = min(len(text), start + SNIPPET)
        while spans[0][1] < end < len(text) and not text[end].isspace():
            end -= 1  # end at one
    fragments: list[Fragment] = []
    if start > 0:
        fragments.append(Fragment("…", False))
    at = start
    for span_start, span_end in spans:
        if span_start < at or span_end > end:
            continue
        if span_start > at:
            fragments.append(Fragment(text[at:span_start], False))
        fragments.append(Fragment(text[span_start:span_end], True))
        at = span_end
    if at < end:
        fragments.append(Fragment(text[at:end], False))
    if end < len(text):
        fragments.append(Fragment("…", False))
    return fragments


# The fields search looks in, weightiest first (a hit's matches are listed in this order).
FIELDS = ("filename", "tags", "description", "camera", "text")
# A hit's score weighs these field groups. On SQLite: the weights of the groups that hold
# every term of the query, plus MATCHED for matching at all (its terms spread over several
# fields); on PostgreSQL, which keeps each group under its weight label (A-D) in one
# tsvector, ts_rank with the same weights. Either way the image's own words decide it, never
# anyone else's: a cursor's score stays what it was, and no score tells of other users'
# images (SQLite's bm25() would, weighing words by the statistics of every user's rows).
GROUPS = (("filename",), ("tags",), ("description", "camera"), ("text",))
GROUP_WEIGHTS = (8.0, 4.0, 2.0, 1.0)
GROUP_LABELS = ("A", "B", "C", "D")
MATCHED = 0.5
# The analysers whose results are searchable, and the field each fills.
ANALYSED = {"text": "text", "exif": "camera"}


def analysed_text(analyser: str, result: dict[str, object] | None) -> str:
    """What an analyser's result adds to search, as shown in snippets: the recognised text;
    the camera and lens names."""
    if not result:
        return ""
    if analyser == "text":
        full = result.get("full_text")
        return full if isinstance(full, str) else ""
    if analyser == "exif":
        names = (result.get(key) for key in ("make", "model", "lens_make", "lens_model"))
        # "Canon" + "Canon EOS R6": the maker once.
        kept: list[str] = []
        for name in names:
            if isinstance(name, str) and name and not any(name in other for other in kept):
                kept = [other for other in kept if other not in name] + [name]
        return " · ".join(kept)
    return ""


def shown_fields(
    filename: str, tags: list[str], description: str | None, analysed: dict[str, str]
) -> dict[str, str]:
    """Each field's text as a person reads it (what snippets are cut from)."""
    return {
        "filename": filename,
        "tags": ", ".join(tags),
        "description": description or "",
        "camera": analysed.get("camera", ""),
        "text": analysed.get("text", ""),
    }


def indexed_fields(shown: dict[str, str]) -> dict[str, str]:
    """The same fields as the index keeps them."""
    return {field: document(shown.get(field)) for field in FIELDS}
