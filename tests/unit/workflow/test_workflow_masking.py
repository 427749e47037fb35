"""The one secret masker (engine and runner alike)."""

from __future__ import annotations

from exekra.workflow.masking import SecretMasker


def test_longest_secret_first_so_no_part_of_a_longer_one_is_left() -> None:
    masker = SecretMasker(["hunter2", "hunter2-extended"])
    assert masker.text("hunter2-extended hunter2") == "*** ***"


def test_every_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    masker = SecretMasker(["-----BEGIN-----\nAAAA1111\n  BBBB2222  \n-----END-----"])
    assert masker.text("AAAA1111") == "***"
    assert masker.text("got BBBB2222 here") == "got *** here"
    assert masker.text("-----BEGIN-----\nAAAA1111") == "***\n***"


def test_values_and_lines_shorter_than_four_characters_are_not_masked() -> None:
    masker = SecretMasker.for_credentials({"smtp": {"port": 25, "security": "tls", "password": "s3cret", "empty": ""}})
    assert masker.text("port 25 over tls with s3cret") == "port 25 over tls with ***"
    assert SecretMasker(["ab\ncd"]).text("ab cd") == "ab cd"


def test_values_inside_structures_are_masked_keys_included() -> None:
    masker = SecretMasker.for_credentials({"api": {"token": "tok-123456"}})
    assert masker.value({"tok-123456": ["x tok-123456", 5, None]}) == {"***": ["x ***", 5, None]}
