"""Lets a script in scripts/ import ``research`` (and this clone's ``hf_attn``) from any working directory.

research/ is not installed with hf_attn; it is importable from the clone's root, which
``python scripts/x.py`` does not put on ``sys.path`` (only scripts/ itself).
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
