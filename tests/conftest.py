"""Shared pytest fixtures. Each section belongs to the tests named in its header."""

# ---------------------------------------------------------------------------------------
# Local Hugging Face Hub stand-in (tests/hub_server.py; used by tests/test_hub.py)
# ---------------------------------------------------------------------------------------
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_server import LocalHub


@pytest.fixture
def local_hub(tmp_path: Path) -> Iterator[LocalHub]:
    """A running local Hub; talk to it from ``run_python(code, local_hub.env)``."""
    with LocalHub(tmp_path / "local_hub_repos", tmp_path / "local_hub_hf_home") as hub:
        yield hub
# ---------------------------------------------------------------------------------------
# End of the local Hub section
# ---------------------------------------------------------------------------------------
