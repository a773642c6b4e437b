import os
from pathlib import Path

import pytest

import envelope_sdk

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def keyring(tmp_path):
    path = tmp_path / "keyring.json"
    envelope_sdk.create_local_keyring(str(path))
    return path


@pytest.fixture
def uri(keyring):
    return f"local://{keyring}"


@pytest.fixture
def client(uri):
    with envelope_sdk.Client(uri) as c:
        yield c


def required_env(name: str) -> str:
    """An environment variable the test command sets; a clear failure (never a skip) without it."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test.sh, which builds and exports it")
    return value
