"""The HuJSON reader: comments and trailing commas out, everything else as strict JSON."""

from __future__ import annotations

import pytest

from coral_infra import hujson


def test_comments_and_trailing_commas_are_removed() -> None:
    text = """// leading comment
    {
      /* block
         comment */ "acls": [
        {"action": "accept", "src": ["*"], "dst": ["*:*"],}, // trailing comma in object
      ],
      "n": 1, /* a comment between a comma and the brace */
    }
    """
    assert hujson.loads(text) == {
        "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        "n": 1,
    }


def test_comment_markers_inside_strings_are_text() -> None:
    text = (
        r'{"url": "https://tailscale.com/kb", "c": "/* not a comment */", "q": "a\"//b", "e": "\\"}'
    )
    assert hujson.loads(text) == {
        "url": "https://tailscale.com/kb",
        "c": "/* not a comment */",
        "q": 'a"//b',
        "e": "\\",
    }


def test_a_comma_in_a_string_before_a_bracket_is_kept() -> None:
    assert hujson.loads('["a,]", "b",]') == ["a,]", "b"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[,]", "f.hujson:1:2"),  # a comma with no value before it is not a trailing comma
        ('{"a": 1,,}', "f.hujson:1:9"),
        ("{\n  /* never closed\n}", "f.hujson:2:3: comment '/*' is never closed"),
        ('{\n  // comment\n  "a": tru\n}', "f.hujson:3:8"),  # positions survive blanking
        ("{'a': 1}", "f.hujson:1:2"),  # HuJSON is not JSON5: no single quotes
    ],
)
def test_errors_name_the_file_line_and_column(text: str, where: str) -> None:
    with pytest.raises(hujson.HujsonError) as error:
        hujson.loads(text, "f.hujson")
    assert str(error.value).startswith(where)


def test_standardize_keeps_length_and_lines() -> None:
    text = '{\n "a": 1, // x\n /* y */ }'
    plain = hujson.standardize(text)
    assert len(plain) == len(text) and plain.count("\n") == text.count("\n")
    assert plain == '{\n "a": 1      \n         }'
