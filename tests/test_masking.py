"""The masker itself: spellings, streams cut at every point, JSON values (the CLI tests cover where)."""

from __future__ import annotations

import base64
import json

from flyte_decl.masking import MASK, Masker, secret_names, spellings

PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nab\n-----END KEY-----"
VALUES = ["s3cr3t-value", 'q"uo\\te-é€', PEM, "ab\ncd"]


def test_base64_is_masked_at_each_alignment_and_short_lines_only_within_the_value() -> None:
    masker = Masker(VALUES)
    for prefix in (b"", b"x", b"xy"):
        encoded = base64.b64encode(prefix + b"s3cr3t-value" + b"!").decode()
        assert "****" in masker.text(encoded), prefix
    assert masker.text("ab, cd ab\ncd") == "ab, cd ****"  # lines under 4 characters are not masked alone
    assert masker.text(PEM.replace("\n", " | ")) == "**** | **** | ab | ****"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" in spellings(PEM)
    assert Masker().text("s3cr3t-value") == "s3cr3t-value" and not Masker([""])


def test_a_stream_cut_anywhere_is_masked_as_a_whole() -> None:
    masker = Masker(VALUES)
    for value in VALUES:
        data = f"<{value}>{json.dumps(value)}{value}".encode()
        for cut in range(1, len(data)):
            for second in (cut, min(cut + 3, len(data))):
                stream = masker.stream()
                parts = (data[:cut], data[cut:second], data[second:])
                out = b"".join(stream.feed(part) for part in parts) + (stream.close() or b"")
                assert out == masker.binary(data), (value, cut, second)
                assert value.encode() not in out


def test_values_are_masked_string_by_string_before_they_are_encoded() -> None:
    masker = Masker(VALUES)
    value = {"k": ["s3cr3t-value", repr(VALUES[1])], VALUES[1]: 1}
    assert masker.value(value) == {"k": [MASK, "'****'"], MASK: 1}
    assert masker.deep(("x", {"s3cr3t-value"})) == ("x", {MASK})
    assert masker.value(object) == "<class 'object'>" and Masker().value((1, "a")) == [1, "a"]
    assert masker.holds(b"\x80\x05" + VALUES[1].encode()) and not masker.holds(b"s3cr3t")


def test_secret_names_are_found_in_every_layer_of_a_document() -> None:
    document = {
        "defaults": {"secrets": ["A"]},
        "environments": {"e": {"secrets": "B", "tasks": {"t": {"secrets": ["C", 1]}}}},
        "overrides": [{"set": {"secrets": ["D"]}}],
        "profiles": {"p": {"environments": {"e": {"secrets": ["E"]}}}},
    }
    assert secret_names(document, [{"secrets": ["F"]}]) == {"A", "B", "C", "D", "E", "F"}
    assert secret_names({"environments": [1], "profiles": "x"}) == set()
