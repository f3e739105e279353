#!/usr/bin/env python
"""Rebuild the bundled KJV -> Reina-Valera 1909 corpus from the SWORD modules.

Needs the Debian packages sword-text-kjv and sword-text-sparv (apt-get install them).
Writes the gzipped TSV and its licence/provenance note into hf_attn/resources/.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from _clone import REPO_ROOT

from research.corpus_build import build_corpus, corpus_statistics, provenance_note, write_corpus_tsv

RESOURCES = REPO_ROOT / "hf_attn" / "resources"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sword-root", type=Path, default=Path("/usr/share/sword"), help="SWORD library holding mods.d/"
    )
    parser.add_argument("--en-module", default="engKJV2006eb", help="English module name")
    parser.add_argument("--es-module", default="spaRV1909eb", help="Spanish module name")
    parser.add_argument("--output", type=Path, default=RESOURCES / "kjv_rv1909.tsv.gz", help="corpus file to write")
    parser.add_argument(
        "--license-file", type=Path, default=RESOURCES / "KJV_RV1909_LICENSE.md", help="provenance note to write"
    )
    parser.add_argument("--validation-size", type=int, default=1000, help="target pairs in the validation split")
    parser.add_argument("--test-size", type=int, default=1000, help="target pairs in the test split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chapter order used for the splits")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build = build_corpus(
        args.sword_root, args.en_module, args.es_module, args.validation_size, args.test_size, args.seed
    )
    write_corpus_tsv(build.pairs, args.output)
    command = shlex.join(["python", "scripts/build_corpus.py", *(sys.argv[1:] if argv is None else argv)])
    args.license_file.write_text(provenance_note(build, args.output.name, command), encoding="utf-8")
    stats = corpus_statistics(build.pairs)
    logging.info("wrote %s (%d bytes): %s", args.output, args.output.stat().st_size, stats)


if __name__ == "__main__":
    main()
