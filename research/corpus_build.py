"""Build the bundled English->Spanish Bible corpus from SWORD zText modules.

The King James Version and the Reina-Valera 1909 ship in Debian as SWORD "zText" modules
(``sword-text-kjv``, ``sword-text-sparv``). Both declare KJV versification, so reading both
with the same verse table pairs the n-th verse of one with the n-th of the other, no
sentence aligner needed. That holds almost everywhere: where Spanish Bibles number verses
differently the Spanish module's text sits a verse or more off, and a lexical check
(:func:`find_misaligned`) drops those verses. This module reads the binary format directly
(it is small) so the build needs no SWORD library, strips the OSIS markup, and assigns
train/validation/test splits by whole chapter. It is only needed to rebuild the shipped
file; ``hf_attn.data`` reads the result.

zText layout per testament (``ot``/``nt``), all integers little-endian:
``.bzv`` one 10-byte record per index entry (u32 block, u32 offset, u16 size);
``.bzs`` one 12-byte record per block (u32 offset, u32 compressed size, u32 size);
``.bzz`` the zlib-compressed blocks. The index holds, in order: two module/testament
heading entries, then per book a book heading, and per chapter a chapter heading
followed by its verses.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import logging
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hf_attn.data import BIBLE_COLUMNS, SPLITS

logger = logging.getLogger(__name__)


# (USFM book code, English name, verses per chapter), KJV versification, one book a line.
VERSIFICATION_FILE = Path(__file__).with_name("kjv_versification.tsv")
OLD_TESTAMENT_BOOK_COUNT = 39

# Hebrew letter headings that RV1909 writes as plain text before Psalm 119's 22 stanzas
# (the KJV has them as non-canonical titles, which clean_osis drops).
_PSALM_119_HEADING = re.compile(
    r"^(?:ALEPH|BETH|GIMEL|DALETH|HE|VAU|ZAIN|CHETH|TETH|JOD|CAPH|LAMED|MEM|NUN|SAMECH|AIN|PE"
    r"|TZADDI|COPH|RESH|SIN|SCHIN|TAU)\.? "
)
_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_NON_CANONICAL_TITLE = re.compile(r"<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_TRANS_CHANGE = re.compile(r"</?transChange\b[^>]*>")
_ADDED_WORD_MARK = "\x00"
_ADDED_ENCLITIC = re.compile(rf"(\w+){_ADDED_WORD_MARK}(lo|la|los|las|le|les|me|te|se|nos|os){_ADDED_WORD_MARK}")
_PROCLITIC_HOSTS = frozenset({"no", "que", "como", "y", "os", "ellos", "cuánto"})
# USFM character markers the OSIS conversion left behind in a few KJV verses ("the \\nd LORD").
_USFM_MARKER = re.compile(r"\\\+?[a-z]+\d*\*?")
_SPACE_BEFORE_CLOSER = re.compile(r" +([,.;:!?)\]—])")
_SPACE_AFTER_OPENER = re.compile(r"([(\[¿¡]) +")
# RV1909 prints the first word(s) of each chapter in capitals (a drop-cap convention):
# "EN el principio", "¿HASTA cuándo", "A TI es", "Y JEHOVÁ dijo". The run starts the verse
# or follows the psalm superscription ("Salmo de David. OH Jehová").
_UPPER_WORD = "[A-ZÁÉÍÓÚÜÑÂÊÎÔÛ]+"
_DROP_CAP_RUN = re.compile(
    rf"(?:^|(?<=[.:] ))[¿¡(]?((?:{_UPPER_WORD} )*[A-ZÁÉÍÓÚÜÑÂÊÎÔÛ]{{2,}}(?: {_UPPER_WORD})*)(?!\w)"
)
# Verses other than a chapter's first that RV1909 opens with capitals (Luke's preface ends at 1:4).
_SECTION_STARTS_WITH_DROP_CAP = frozenset({"LUK.1.5"})
_WORD = re.compile(r"[^\W\d_]+")
# Why find_misaligned drops a verse.
CHAPTER_OFF = "the whole chapter matches better at another verse offset"
RUN_OFF = "the verses to the chapter's end match better one verse off"
NEIGHBOUR_MATCHES = "scores low and a neighbouring verse matches better"
HOLDS_NEXT_VERSE = "also holds the next verse, which is empty in Spanish"
# Thresholds of find_misaligned, set by inspecting the RV1909 verse-numbering differences.
_MAX_OFFSET = 6
_OFFSET_MARGIN = 0.05
_SUFFIX_MARGIN = 0.25
_MIN_SHIFTED_RUN = 3
_LOW_SCORE = 0.3
_NEIGHBOUR_MARGIN = 0.3
_MERGE_MARGIN = 0.15
# A word after a word or comma/semicolon is mid-sentence, where only proper nouns are capitalised.
_MID_SENTENCE_WORD = re.compile(r"(?<=[\w,;] )[^\W\d_]+")


@dataclass(frozen=True)
class Book:
    """One book of the KJV canon: its USFM code, English name and verses per chapter."""

    code: str
    name: str
    verses_per_chapter: tuple[int, ...]


def read_versification(path: Path) -> tuple[Book, ...]:
    """The books of a versification file: ``code<TAB>name<TAB>verses of each chapter``, ``#`` lines are comments."""
    books = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            code, name, verses = line.split("\t")
            books.append(Book(code, name, tuple(int(count) for count in verses.split())))
        except ValueError:
            raise ValueError(f"{path}:{number}: expected CODE<TAB>Name<TAB>verse counts, got {line!r}") from None
    return tuple(books)


KJV_BOOKS: tuple[Book, ...] = read_versification(VERSIFICATION_FILE)


@dataclass(frozen=True)
class SwordModule:
    """A SWORD module found through its ``mods.d`` .conf file."""

    name: str
    conf_path: Path
    data_dir: Path
    conf: Mapping[str, str]

    @classmethod
    def find(cls, sword_root: Path, name: str) -> SwordModule:
        """Locate module ``name`` under ``sword_root`` and check it is a readable KJV zText."""
        mods_dir = sword_root / "mods.d"
        if not mods_dir.is_dir():
            raise FileNotFoundError(f"No SWORD library at {sword_root}: {mods_dir} is missing.")
        for conf_path in sorted(mods_dir.glob("*.conf")):
            conf = _read_conf(conf_path)
            if conf.get("__section__", "").lower() == name.lower():
                module = cls(conf["__section__"], conf_path, sword_root / conf["DataPath"], conf)
                module._check_supported()
                return module
        raise FileNotFoundError(f"SWORD module {name!r} not found in {mods_dir}.")

    @property
    def encoding(self) -> str:
        """Python codec of the module text (SWORD's default is Latin-1)."""
        return "utf-8" if self.conf.get("Encoding", "").upper() == "UTF-8" else "latin-1"

    def _check_supported(self) -> None:
        expected = {"ModDrv": "zText", "CompressType": "ZIP", "Versification": "KJV"}
        defaults = {"CompressType": "LZSS", "Versification": "KJV"}
        for key, value in expected.items():
            found = self.conf.get(key, defaults.get(key, ""))
            if found.lower() != value.lower():
                raise ValueError(f"{self.conf_path}: {key}={found!r} is not supported, need {value!r}.")


def _read_conf(path: Path) -> dict[str, str]:
    """Parse a SWORD .conf file: a ``[Name]`` section line and ``key=value`` lines."""
    conf: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]") and "__section__" not in conf:
            conf["__section__"] = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            conf.setdefault(key.strip(), value.strip())
    return conf


def read_ztext_entries(data_dir: Path, testament: str) -> list[bytes]:
    """Return every index entry of one testament (``"ot"`` or ``"nt"``), undecoded."""
    index = (data_dir / f"{testament}.bzv").read_bytes()
    block_index = (data_dir / f"{testament}.bzs").read_bytes()
    data = (data_dir / f"{testament}.bzz").read_bytes()
    blocks = list(struct.iter_unpack("<III", block_index))
    decompressed: dict[int, bytes] = {}
    entries = []
    for block, offset, size in struct.iter_unpack("<IIH", index):
        if size == 0:
            entries.append(b"")
            continue
        if block not in decompressed:
            start, compressed_size, raw_size = blocks[block]
            raw = zlib.decompress(data[start : start + compressed_size])
            if len(raw) != raw_size:
                raise ValueError(f"{data_dir}/{testament}.bzz: block {block} is corrupt.")
            decompressed[block] = raw
        entries.append(decompressed[block][offset : offset + size])
    return entries


def iter_module_verses(module: SwordModule) -> Iterator[tuple[Book, int, int, str]]:
    """Yield ``(book, chapter, verse, markup)`` for every verse slot of the KJV canon."""
    testaments = (("ot", KJV_BOOKS[:OLD_TESTAMENT_BOOK_COUNT]), ("nt", KJV_BOOKS[OLD_TESTAMENT_BOOK_COUNT:]))
    for testament, books in testaments:
        entries = read_ztext_entries(module.data_dir, testament)
        expected = 2 + sum(1 + len(b.verses_per_chapter) + sum(b.verses_per_chapter) for b in books)
        if len(entries) != expected:
            raise ValueError(
                f"{module.name} {testament}: {len(entries)} index entries, KJV versification needs {expected}."
            )
        position = 2
        for book in books:
            position += 1
            for chapter, verse_count in enumerate(book.verses_per_chapter, start=1):
                position += 1
                for verse in range(1, verse_count + 1):
                    yield book, chapter, verse, entries[position].decode(module.encoding)
                    position += 1


def clean_osis(markup: str) -> str:
    """Reduce OSIS verse markup to plain text: keep the words, drop notes and headings.

    Strong's tags, ``transChange`` (translators' added words), quotes, divine names and
    canonical titles (psalm superscriptions, which RV1909 also has in verse 1) keep their
    text; footnotes and editorial headings go entirely. Word tags are removed without a
    gap (the KJV splits a few words across them: "give</w>n"), while an added word is a
    word of its own, except an object pronoun glued to a verb ("tráeme" + "lo"). Pilcrows
    are dropped and spacing around punctuation is repaired.
    """
    text = _NOTE.sub("", markup)
    text = _NON_CANONICAL_TITLE.sub("", text)
    text = _TRANS_CHANGE.sub(_ADDED_WORD_MARK, text)
    text = html.unescape(_TAG.sub("", text)).replace("¶", " ")
    text = _ADDED_ENCLITIC.sub(_join_enclitic, text).replace(_ADDED_WORD_MARK, " ")
    text = _USFM_MARKER.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_CLOSER.sub(r"\1", text)
    return _SPACE_AFTER_OPENER.sub(r"\1", text)


def _join_enclitic(match: re.Match[str]) -> str:
    """Attach an added pronoun to the word before it when that word can be its verb.

    A capitalised word inside a sentence is a name ("Josué los circuncidó"), and a few
    function words take the pronoun before the next verb instead ("no lo hizo").
    """
    host, pronoun = match.group(1), match.group(2)
    before = match.string[: match.start()].rstrip(" " + _ADDED_WORD_MARK)
    sentence_start = not before or before[-1] in ".:;?!¿¡("
    separator = " " if host.lower() in _PROCLITIC_HOSTS or (host[0].isupper() and not sentence_start) else ""
    return host + separator + pronoun + _ADDED_WORD_MARK


def proper_nouns(texts: Iterable[str]) -> frozenset[str]:
    """Lower-cased words written capitalised more often than not in mid-sentence ("jehová")."""
    capitalised: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for text in texts:
        for word in _MID_SENTENCE_WORD.findall(text):
            if word.islower():
                lower[word] += 1
            elif word[0].isupper() and word[1:].islower():
                capitalised[word.lower()] += 1
    return frozenset(word for word, count in capitalised.items() if count > lower[word])


def normalize_spanish_opening(text: str, names: frozenset[str]) -> str:
    """Undo RV1909's capitalised chapter opening: "Y JEHOVÁ dijo" -> "Y Jehová dijo".

    Only the first capitalised run at a sentence start changes, so divine names and
    inscriptions later in the verse ("JAH", "SANTIDAD Á JEHOVÁ") keep their capitals.
    Within the run, words in ``names`` (see :func:`proper_nouns`) stay capitalised.
    """
    match = _DROP_CAP_RUN.search(text)
    if match is None:
        return text
    words = match.group(1).lower().split(" ")
    words = [w.capitalize() if i == 0 or w in names else w for i, w in enumerate(words)]
    return text[: match.start(1)] + " ".join(words) + text[match.end(1) :]


@dataclass(frozen=True)
class VersePair:
    """One aligned verse of the corpus."""

    book: str
    chapter: int
    verse: int
    en: str
    es: str
    split: str = "train"

    @property
    def id(self) -> str:
        return f"{self.book}.{self.chapter}.{self.verse}"

    @property
    def chapter_id(self) -> str:
        return f"{self.book}.{self.chapter}"


@dataclass
class AlignmentReport:
    """What alignment kept and dropped, for the build log and the provenance note."""

    verse_slots: int = 0
    empty_en: list[str] = field(default_factory=list)
    empty_es: dict[str, str] = field(default_factory=dict)
    subscriptions_trimmed: list[str] = field(default_factory=list)
    misaligned: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> int:
        """Verse slots with no text on at least one side."""
        return len(set(self.empty_en) | set(self.empty_es))


def read_aligned_verses(en_module: SwordModule, es_module: SwordModule) -> tuple[list[VersePair], AlignmentReport]:
    """Pair the two modules verse by verse and clean both sides; skip verses empty on either.

    RV1909 appends the epistles' subscriptions ("Escrita de Roma...") to their closing verse,
    which the KJV module does not carry, so those are cut after the final "Amén.".
    """
    report = AlignmentReport()
    verses = []
    psalm_119_headings = 0
    for (book, chapter, verse, en_markup), (_, _, _, es_markup) in zip(
        iter_module_verses(en_module), iter_module_verses(es_module), strict=True
    ):
        report.verse_slots += 1
        en, es = clean_osis(en_markup), clean_osis(es_markup)
        verse_id = f"{book.code}.{chapter}.{verse}"
        opens_section = verse == 1 or verse_id in _SECTION_STARTS_WITH_DROP_CAP
        if book.code == "PSA" and chapter == 119:
            es, found = _PSALM_119_HEADING.subn("", es)
            psalm_119_headings += found
            opens_section = opens_section or bool(found)
        if en.endswith("Amen.") and "Amén. " in es:
            es = es[: es.rindex("Amén. ") + len("Amén.")]
            report.subscriptions_trimmed.append(verse_id)
        verses.append((book.code, chapter, verse, en, es, opens_section))
    if psalm_119_headings != 22:
        raise ValueError(f"Expected 22 Psalm 119 stanza headings in {es_module.name}, found {psalm_119_headings}.")
    names = proper_nouns(es for *_, es, _ in verses)
    pairs = []
    for book_code, chapter, verse, en, es, opens_section in verses:
        verse_id = f"{book_code}.{chapter}.{verse}"
        if not en:
            report.empty_en.append(verse_id)
        elif not es:
            report.empty_es[verse_id] = en
        else:
            es = normalize_spanish_opening(es, names) if opens_section else es
            pairs.append(VersePair(book_code, chapter, verse, en, es))
    return pairs, report


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class VerseSide:
    """One side of a verse as the lexicon sees it, precomputed so pairs score fast."""

    known: frozenset[str]
    """Its words that have translations in the lexicon."""
    matches: frozenset[str]
    """Words of the other language that have one of its words among their translations."""


@dataclass(frozen=True)
class Lexicon:
    """Likely word translations in both directions, learnt from the corpus itself."""

    en_to_es: Mapping[str, frozenset[str]]
    es_to_en: Mapping[str, frozenset[str]]

    @functools.cached_property
    def _es_listing(self) -> dict[str, frozenset[str]]:
        """English word -> Spanish words that list it as a translation."""
        return _invert(self.es_to_en)

    @functools.cached_property
    def _en_listing(self) -> dict[str, frozenset[str]]:
        """Spanish word -> English words that list it as a translation."""
        return _invert(self.en_to_es)

    def english(self, words: frozenset[str]) -> VerseSide:
        return VerseSide(
            frozenset(w for w in words if w in self.en_to_es),
            frozenset().union(*(self._es_listing.get(w, frozenset()) for w in words)),
        )

    def spanish(self, words: frozenset[str]) -> VerseSide:
        return VerseSide(
            frozenset(w for w in words if w in self.es_to_en),
            frozenset().union(*(self._en_listing.get(w, frozenset()) for w in words)),
        )

    def score(self, en: VerseSide, es: VerseSide) -> float:
        """How well two verses translate each other, in [0, 1].

        The share of known words whose translation appears on the other side, taken in
        both directions; the lower of the two, so a verse holding extra text scores low.
        """
        coverages = [
            len(side.known & other.matches) / len(side.known) for side, other in ((en, es), (es, en)) if side.known
        ]
        return min(coverages, default=0.0)


def _invert(translations: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    inverse: dict[str, set[str]] = {}
    for word, targets in translations.items():
        for target in targets:
            inverse.setdefault(target, set()).add(word)
    return {word: frozenset(sources) for word, sources in inverse.items()}


def learn_lexicon(
    word_pairs: Sequence[tuple[frozenset[str], frozenset[str]]],
    vocabulary_size: int = 3000,
    min_dice: float = 0.2,
    candidates: int = 3,
    function_word_share: float = 0.1,
) -> Lexicon:
    """Pair frequent words by their Dice coefficient of co-occurrence in the same verse.

    Nearly all verses are aligned, so a word and its translation co-occur far above chance.
    Words in more than ``function_word_share`` of the verses ("the", "de") co-occur with
    everything and are left out.
    """
    en_frequency = Counter(w for en, _ in word_pairs for w in en)
    es_frequency = Counter(w for _, es in word_pairs for w in es)
    en_vocab = [w for w, _ in en_frequency.most_common(vocabulary_size)]
    es_vocab = [w for w, _ in es_frequency.most_common(vocabulary_size)]
    en_index = {w: i for i, w in enumerate(en_vocab)}
    es_index = {w: i for i, w in enumerate(es_vocab)}
    cells = len(en_vocab) * len(es_vocab)
    cooccurrence = np.zeros(cells, dtype=np.int64)
    for start in range(0, len(word_pairs), 4096):
        flat = [
            np.add.outer(
                np.array([en_index[w] for w in en if w in en_index], dtype=np.int64) * len(es_vocab),
                np.array([es_index[w] for w in es if w in es_index], dtype=np.int64),
            ).ravel()
            for en, es in word_pairs[start : start + 4096]
        ]
        cooccurrence += np.bincount(np.concatenate([np.zeros(0, np.int64), *flat]), minlength=cells)
    en_counts = np.array([en_frequency[w] for w in en_vocab], dtype=np.float32)
    es_counts = np.array([es_frequency[w] for w in es_vocab], dtype=np.float32)
    dice = 2 * cooccurrence.reshape(len(en_vocab), len(es_vocab)) / (en_counts[:, None] + es_counts[None, :])
    dice[en_counts > function_word_share * len(word_pairs), :] = 0
    dice[:, es_counts > function_word_share * len(word_pairs)] = 0
    return Lexicon(
        _best_translations(dice, en_vocab, es_vocab, candidates, min_dice),
        _best_translations(dice.T, es_vocab, en_vocab, candidates, min_dice),
    )


def _best_translations(
    dice: np.ndarray, source_vocab: Sequence[str], target_vocab: Sequence[str], candidates: int, min_dice: float
) -> dict[str, frozenset[str]]:
    best = np.argsort(-dice, axis=1, kind="stable")[:, :candidates]
    translations = {}
    for row, word in enumerate(source_vocab):
        found = frozenset(target_vocab[col] for col in best[row] if dice[row, col] >= min_dice)
        if found:
            translations[word] = found
    return translations


def find_misaligned(pairs: Sequence[VersePair], lexicon: Lexicon, unpaired_en: Mapping[str, str]) -> dict[str, str]:
    """Verses whose Spanish is not the translation of their English, with the reason.

    The RV1909 module was converted from Spanish verse numbering, so where Spanish Bibles
    number verses differently (Num 13, Job 39-40, Jonah 2, ...) its text sits one or more
    verses off. Three checks, per chapter, using :meth:`Lexicon.score`: a whole chapter
    matches better at another offset; a run to the chapter's end matches better one verse
    off; a single verse scores low and a neighbour matches it much better. A verse before
    one that is empty in Spanish is also dropped when it holds that verse's text.
    """
    words = [(_words(p.en), _words(p.es)) for p in pairs]
    sides = [(lexicon.english(en), lexicon.spanish(es)) for en, es in words]
    reasons: dict[str, str] = {}
    for chapter in _chapters(pairs):

        def score(en_position: int, es_position: int, chapter: list[int] = chapter) -> float:
            return lexicon.score(sides[chapter[en_position]][0], sides[chapter[es_position]][1])

        if _best_chapter_offset(score, len(chapter)):
            reasons.update((pairs[i].id, CHAPTER_OFF) for i in chapter)
            continue
        start = _shifted_suffix_start(score, len(chapter))
        if start is not None:
            reasons.update((pairs[i].id, RUN_OFF) for i in chapter[start:])
        for position, i in enumerate(chapter):
            own = score(position, position)
            neighbours = [
                s
                for other in (position - 1, position + 1)
                if 0 <= other < len(chapter)
                for s in (score(position, other), score(other, position))
            ]
            if own < _LOW_SCORE and max(neighbours, default=0.0) >= own + _NEIGHBOUR_MARGIN:
                reasons.setdefault(pairs[i].id, NEIGHBOUR_MATCHES)
    for i, pair in enumerate(pairs):
        following = f"{pair.book}.{pair.chapter}.{pair.verse + 1}"
        if following in unpaired_en:
            merged = lexicon.score(lexicon.english(words[i][0] | _words(unpaired_en[following])), sides[i][1])
            if merged >= lexicon.score(*sides[i]) + _MERGE_MARGIN:
                reasons.setdefault(pair.id, HOLDS_NEXT_VERSE)
    return reasons


def _chapters(pairs: Sequence[VersePair]) -> list[list[int]]:
    """Indices of ``pairs`` grouped by chapter, in order."""
    chapters: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        chapters.setdefault(pair.chapter_id, []).append(i)
    return list(chapters.values())


def _best_chapter_offset(score: Callable[[int, int], float], size: int) -> int:
    """The verse offset at which a chapter's two sides match best (0 unless clearly better)."""
    means = {}
    for offset in range(-_MAX_OFFSET, _MAX_OFFSET + 1):
        scores = [score(p, p + offset) for p in range(size) if 0 <= p + offset < size]
        if len(scores) >= max(3, size // 2):
            means[offset] = sum(scores) / len(scores)
    if 0 not in means:
        return 0
    best = max(means, key=means.__getitem__)
    return best if means[best] > means[0] + _OFFSET_MARGIN else 0


def _shifted_suffix_start(score: Callable[[int, int], float], size: int) -> int | None:
    """Where a run of verses one off, ending the chapter, begins (None if there is none)."""
    for offset in (1, -1):
        gains = [score(p, p + offset) - score(p, p) for p in range(size) if 0 <= p + offset < size]
        first = 0 if offset == 1 else 1
        total, best_total, best_start = 0.0, 0.0, None
        for p in range(len(gains) - 1, -1, -1):
            total += gains[p]
            if total > best_total:
                best_total, best_start = total, p
        if best_start is not None:
            length = len(gains) - best_start
            if length >= _MIN_SHIFTED_RUN and best_total / length > _SUFFIX_MARGIN:
                return best_start + first
    return None


def drop_misaligned(pairs: Sequence[VersePair], report: AlignmentReport) -> list[VersePair]:
    """Learn a lexicon from ``pairs``, record misaligned verses in ``report``, return the rest."""
    lexicon = learn_lexicon([(_words(p.en), _words(p.es)) for p in pairs])
    report.misaligned = find_misaligned(pairs, lexicon, report.empty_es)
    return [p for p in pairs if p.id not in report.misaligned]


def _chapter_rank(chapter_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a chapter, independent of Python's hash seed."""
    digest = hashlib.sha256(f"{seed}:{chapter_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    chapter_sizes: Mapping[str, int], validation_size: int = 1000, test_size: int = 1000, seed: int = 0
) -> dict[str, str]:
    """Map each chapter id to a split, holding out whole chapters for validation and test.

    Chapters are visited in a seeded hash order (so held-out chapters are spread over the
    whole Bible) and given to validation, then test, while they fit within 5% above the
    target size; everything else is training data.
    """
    targets = {"validation": validation_size, "test": test_size}
    filled = dict.fromkeys(targets, 0)
    assignment = dict.fromkeys(chapter_sizes, "train")
    for chapter_id in sorted(chapter_sizes, key=lambda c: _chapter_rank(c, seed)):
        size = chapter_sizes[chapter_id]
        for split, target in targets.items():
            if filled[split] < target and filled[split] + size <= target * 1.05:
                assignment[chapter_id] = split
                filled[split] += size
                break
    return assignment


def with_splits(pairs: Sequence[VersePair], validation_size: int, test_size: int, seed: int) -> list[VersePair]:
    """Return ``pairs`` with their ``split`` set by :func:`assign_splits`."""
    sizes: dict[str, int] = {}
    for pair in pairs:
        sizes[pair.chapter_id] = sizes.get(pair.chapter_id, 0) + 1
    assignment = assign_splits(sizes, validation_size, test_size, seed)
    return [VersePair(p.book, p.chapter, p.verse, p.en, p.es, assignment[p.chapter_id]) for p in pairs]


def write_corpus_tsv(pairs: Sequence[VersePair], path: Path) -> None:
    """Write the corpus as gzipped TSV with a header; byte-identical across rebuilds."""
    lines = ["\t".join(BIBLE_COLUMNS)]
    for pair in pairs:
        if any(ch in pair.en + pair.es for ch in "\t\n\r"):
            raise ValueError(f"{pair.id}: verse text contains a tab or newline.")
        lines.append("\t".join((pair.id, pair.book, str(pair.chapter), str(pair.verse), pair.split, pair.en, pair.es)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))


def debian_package_of(path: Path) -> str | None:
    """Name and version of the Debian package that installed ``path`` (None if not dpkg-managed)."""
    if shutil.which("dpkg-query") is None:
        return None
    owner = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True, check=False)
    if owner.returncode != 0:
        return None
    package = owner.stdout.split(":", 1)[0].strip()
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{package} {version}".strip()


@dataclass(frozen=True)
class CorpusBuild:
    """The result of :func:`build_corpus`: the pairs with splits, and how they were obtained."""

    pairs: list[VersePair]
    report: AlignmentReport
    en_module: SwordModule
    es_module: SwordModule
    seed: int


def build_corpus(
    sword_root: Path,
    en_module: str = "engKJV2006eb",
    es_module: str = "spaRV1909eb",
    validation_size: int = 1000,
    test_size: int = 1000,
    seed: int = 0,
) -> CorpusBuild:
    """Read, clean, align-check and split the two modules found under ``sword_root``."""
    en, es = SwordModule.find(sword_root, en_module), SwordModule.find(sword_root, es_module)
    pairs, report = read_aligned_verses(en, es)
    logger.info("%d verse slots, %d pairs with text on both sides", report.verse_slots, len(pairs))
    pairs = drop_misaligned(pairs, report)
    logger.info("%d pairs after dropping %d misaligned verses", len(pairs), len(report.misaligned))
    return CorpusBuild(with_splits(pairs, validation_size, test_size, seed), report, en, es, seed)


def corpus_statistics(pairs: Sequence[VersePair]) -> dict[str, float]:
    """Pair counts per split and words per verse (whitespace tokens) on each side."""
    stats: dict[str, float] = {"pairs": len(pairs)}
    stats.update({f"pairs_{split}": sum(1 for p in pairs if p.split == split) for split in SPLITS})
    for side in ("en", "es"):
        lengths = [len(getattr(p, side).split()) for p in pairs]
        stats[f"mean_words_{side}"] = round(sum(lengths) / len(lengths), 1)
        stats[f"max_words_{side}"] = max(lengths)
    return stats


def provenance_note(build: CorpusBuild, corpus_file: str, command: str) -> str:
    """The licence and provenance note shipped next to the corpus file, in Markdown."""
    stats = corpus_statistics(build.pairs)
    report = build.report
    reasons = Counter(report.misaligned.values())
    dropped_chapters = sorted({i.rsplit(".", 1)[0] for i, r in report.misaligned.items() if r == CHAPTER_OFF})
    sources = "\n".join(_source_row(module) for module in (build.en_module, build.es_module))
    reason_rows = "\n".join(f"| {reason} | {count} |" for reason, count in reasons.most_common())
    return f"""# {corpus_file}: KJV -> Reina-Valera 1909 verse pairs

## Licence
Both texts are in the **public domain**. The King James Version (1769 standardised text) is
public domain everywhere except that printing it in the United Kingdom is subject to the
Crown's letters patent; the Reina-Valera 1909 is public domain. The SWORD modules declare
`DistributionLicense=Public Domain`. The cleaning and alignment in this file add no
copyrightable expression; use it freely.

## Sources
| module | description | module version | Debian package |
|---|---|---|---|
{sources}

Both modules are the eBible.org editions packaged by the CrossWire/Debian teams
(<https://ebible.org/details.php?id=eng-kjv2006>, <https://ebible.org/details.php?id=spaRV1909>).

## How it was built
`{command}` (see `research/corpus_build.py`):
1. Read both zText modules directly (zlib blocks, KJV versification table) and pair verse
   slots by index; {report.verse_slots} slots.
2. Strip OSIS markup: keep the words of Strong's tags, added words (`transChange`), divine
   names and canonical psalm titles; drop footnotes, editorial headings, pilcrows and stray
   USFM markers; repair spacing around punctuation. In the Spanish, undo the capitalised
   chapter openings ("EN el principio" -> "En el principio"), drop Psalm 119's stanza
   letters and cut the epistles' subscriptions after the final "Amén." ({len(report.subscriptions_trimmed)} verses),
   which the KJV module does not carry.
3. Skip {report.empty} slots empty on one side ({len(report.empty_en)} English, {len(report.empty_es)} Spanish): verses
   that Spanish numbering folds into a neighbour.
4. Drop {len(report.misaligned)} verses whose Spanish is not the translation of their English. The
   Spanish module was converted from Spanish verse numbering, which differs from the KJV's
   in a few places, so its text there sits one or more verses off. A word lexicon learnt
   from the corpus itself (Dice coefficient of co-occurrence) scores each pair:

| reason | verses |
|---|---|
{reason_rows}

   Whole chapters dropped: {", ".join(dropped_chapters)}.
   The single-verse check is cautious: about half of what it drops are short verses
   that were aligned.
5. Split by whole chapter (seed {build.seed}): chapters in SHA-256 order go to validation,
   then test, until each holds about 1,000 pairs; the rest is training data.

## Contents
Gzipped UTF-8 TSV with a header; columns `{", ".join(BIBLE_COLUMNS)}`. `id` is
`BOOK.chapter.verse` with USFM book codes; `split` is train, validation or test.

| pairs | train | validation | test | mean / max words en | mean / max words es |
|---|---|---|---|---|---|
| {stats["pairs"]} | {stats["pairs_train"]} | {stats["pairs_validation"]} | {stats["pairs_test"]} \
| {stats["mean_words_en"]} / {stats["max_words_en"]} | {stats["mean_words_es"]} / {stats["max_words_es"]} |
"""


def _source_row(module: SwordModule) -> str:
    package = debian_package_of(module.conf_path) or "not installed by dpkg"
    description = module.conf.get("Description", "")
    version = f"{module.conf.get('Version', '?')} ({module.conf.get('SwordVersionDate', '?')})"
    return f"| `{module.name}` | {description} | {version} | {package} |"
