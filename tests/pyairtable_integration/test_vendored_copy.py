"""The vendored copy of pyairtable's integration suite is present (else: skipped, with the reason)."""

from __future__ import annotations

import pytest

from .conftest import IMAGE_SIZE, VENDOR, png_of_size, vendored_tests


def test_vendored_suite_is_present() -> None:
    tests = vendored_tests()
    if not tests:
        pytest.skip(f"pyairtable's integration suite is not vendored in {VENDOR} (its README.md says how)")
    names = {p.name for p in tests}
    assert {"test_integration_api.py", "test_integration_orm.py", "test_integration_metadata.py"} <= names
    assert (VENDOR / "LICENSE").is_file()
    assert (VENDOR / "COMMIT").read_text().strip()


def test_suite_image_has_the_size_pyairtable_asserts() -> None:
    from beststag_cli.sandbox.images import probe

    data = png_of_size(IMAGE_SIZE)
    assert len(data) == IMAGE_SIZE
    assert probe(data) == ("image/png", 64, 32)
