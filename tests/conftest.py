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


# ---------------------------------------------------------------------------------------
# transformers' common tests (tests/transformers_suite.py; used by tests/test_transformers_common.py)
# ---------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    """Hand the running config to the suite loader, which declares transformers' marks on it."""
    import transformers_suite

    transformers_suite.pytest_config = config
