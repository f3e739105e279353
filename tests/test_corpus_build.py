"""research/corpus_build.py: the SWORD reader, the markup cleaning, the alignment check and the chapter splits.

scripts/build_corpus.py runs it from a clone (research/ is not installed), so the script is
checked from another directory too.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from hf_attn.data import BIBLE_CORPUS_PATH
from research import corpus_build

SWORD_ROOT = Path("/usr/share/sword")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_corpus.py"


def test_script_help_from_another_directory(tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--sword-root" in done.stdout


def write_ztext(directory: Path, testament: str, blocks: list[list[bytes]]) -> None:
    """A tiny zText testament: each block is a list of verse entries, zlib-compressed together."""
    directory.mkdir(parents=True, exist_ok=True)
    bzs, bzv, bzz = b"", b"", b""
    for number, entries in enumerate(blocks):
        raw = b"".join(entries)
        compressed = zlib.compress(raw)
        bzs += struct.pack("<III", len(bzz), len(compressed), len(raw))
        bzz += compressed
        offset = 0
        for entry in entries:
            bzv += struct.pack("<IIH", number, offset, len(entry))
            offset += len(entry)
    for suffix, content in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
        (directory / f"{testament}.{suffix}").write_bytes(content)


def test_ztext_reader_returns_entries_across_blocks(tmp_path):
    write_ztext(tmp_path, "nt", [[b"", b"first", "se\u00f1or".encode()], [b"third"]])
    assert corpus_build.read_ztext_entries(tmp_path, "nt") == [b"", b"first", "señor".encode(), b"third"]


def test_versification_table_matches_the_kjv_canon():
    assert len(corpus_build.KJV_BOOKS) == 66
    assert sum(len(book.verses_per_chapter) for book in corpus_build.KJV_BOOKS) == 1189
    assert sum(sum(book.verses_per_chapter) for book in corpus_build.KJV_BOOKS) == 31102


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ('In the <w lemma="strong:H7225">beginning</w> <w lemma="strong:H0430">God</w>.', "In the beginning God."),
        ('the <w lemma="x">darkness</w>.<note placement="foot">Heb. <w>between</w></note> ', "the darkness."),
        ('darkness <transChange type="added">was</transChange> upon', "darkness was upon"),
        ('<transChange type="added">is</transChange>, and', "is, and"),
        ('¶ And <divineName><w lemma="x">LORD</w></divineName> said', "And LORD said"),
        ("<title><foreign>ALEPH.</foreign></title> Blessed", "Blessed"),
        ('<title canonical="true" type="psalm">A Psalm.</title> <l/>The LORD', "A Psalm. The LORD"),
        ("the \\nd <w>LORD</w> hath", "the LORD hath"),
        ('<w lemma="x">shall be give</w>n.', "shall be given."),
        ('<w lemma="x">y tráeme</w><transChange type="added">lo</transChange>, y', "y tráemelo, y"),
        ('<w>los reyes</w><transChange type="added">á la guerra</transChange>, que', "los reyes á la guerra, que"),
        ('<w>y Josué</w><transChange type="added">los</transChange><w>circuncidó</w>', "y Josué los circuncidó"),
        ("¿<w>Quién</w> es?", "¿Quién es?"),
    ],
)
def test_clean_osis(markup, plain):
    assert corpus_build.clean_osis(markup) == plain


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ("EN el principio crió Dios", "En el principio crió Dios"),
        ("Y JEHOVÁ dijo á Moisés", "Y Jehová dijo á Moisés"),
        ("¿HASTA cuándo, Jehová?", "¿Hasta cuándo, Jehová?"),
        ("Salmo de David. OH Jehová, Señor", "Salmo de David. Oh Jehová, Señor"),
        ("ALABAD á JAH, porque es bueno", "Alabad á JAH, porque es bueno"),
        ("Yo soy JEHOVÁ tu Dios", "Yo soy JEHOVÁ tu Dios"),
    ],
)
def test_spanish_chapter_openings_lose_their_capitals(text, fixed):
    assert corpus_build.normalize_spanish_opening(text, frozenset({"jehová"})) == fixed


def test_assign_splits_holds_out_whole_chapters_near_the_target():
    sizes = {f"B{b}.{c}": 10 + (b * 7 + c * 3) % 40 for b in range(20) for c in range(1, 30)}
    assignment = corpus_build.assign_splits(sizes, validation_size=500, test_size=500, seed=1)
    assert corpus_build.assign_splits(sizes, validation_size=500, test_size=500, seed=1) == assignment
    for split in ("validation", "test"):
        held_out = sum(size for chapter, size in sizes.items() if assignment[chapter] == split)
        assert 450 <= held_out <= 525
    assert assignment != corpus_build.assign_splits(sizes, validation_size=500, test_size=500, seed=2)


def test_misaligned_chapters_are_detected():
    sentences = [
        ("the king went to the city of david", "el rey fué á la ciudad de david"),
        ("the priest spake unto the people", "el sacerdote habló al pueblo"),
        ("and the water covered the earth", "y el agua cubrió la tierra"),
        ("the sons of jacob came to egypt", "los hijos de jacob vinieron á egipto"),
        ("a great fire came from heaven", "un gran fuego vino del cielo"),
        ("the women sang in the house", "las mujeres cantaban en la casa"),
    ]
    aligned = [
        corpus_build.VersePair("GEN", chapter, verse, *sentences[(verse + chapter) % 6])
        for chapter in range(1, 40)
        for verse in range(1, 7)
    ]
    shifted = [
        corpus_build.VersePair("EXO", 1, verse, sentences[verse % 6][0], sentences[(verse + 1) % 6][1])
        for verse in range(1, 7)
    ]
    lexicon = corpus_build.learn_lexicon(
        [(corpus_build._words(p.en), corpus_build._words(p.es)) for p in aligned], function_word_share=0.9
    )
    found = corpus_build.find_misaligned(aligned + shifted, lexicon, {})
    assert set(found) == {pair.id for pair in shifted}
    assert set(found.values()) == {corpus_build.CHAPTER_OFF}


@pytest.mark.slow
@pytest.mark.skipif(not (SWORD_ROOT / "mods.d" / "spaRV1909eb.conf").exists(), reason="SWORD modules not installed")
def test_rebuild_reproduces_the_shipped_file(tmp_path):
    build = corpus_build.build_corpus(SWORD_ROOT)
    corpus_build.write_corpus_tsv(build.pairs, tmp_path / "corpus.tsv.gz")
    assert (tmp_path / "corpus.tsv.gz").read_bytes() == BIBLE_CORPUS_PATH.read_bytes()


def test_a_damaged_versification_line_is_named(tmp_path):
    table = tmp_path / "versification.tsv"
    table.write_text("# comment\nGEN\tGenesis\t31 25\nEXO Exodus 22\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"versification.tsv:3: expected CODE<TAB>Name<TAB>verse counts"):
        corpus_build.read_versification(table)
    table.write_text("GEN\tGenesis\t31 25\n", encoding="utf-8")
    assert corpus_build.read_versification(table) == (corpus_build.Book("GEN", "Genesis", (31, 25)),)
