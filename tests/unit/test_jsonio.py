import json

import pytest

from oci import jsonio

DOCUMENTS = [
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "é\n\"x\""}, "e": [], "f": {}},
    [], {}, "text", 3, -1.5e10, [{"nested": [[1], {"x": None}]}],
]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_round_trip_like_the_json_package(doc):
    assert jsonio.loads(json.dumps(doc)) == doc
    assert jsonio.loads(json.dumps(doc, indent=2).encode()) == doc
    assert jsonio.dumps(doc) == json.dumps(doc, separators=(",", ":"))
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)


@pytest.mark.parametrize("text,message", [
    ("", "Expecting value: line 1 column 1 (char 0)"),
    ('{"a": 1} x', "Extra data: line 1 column 10 (char 9)"),
    ('{"a": ', "Expecting value: line 1 column 7 (char 6)"),
    ('{"a": "unterminated', "Unterminated string"),
    ("[1,\n2,\n", "Expecting value: line 3 column 1 (char 7)"),
])
def test_errors_are_value_errors_with_a_position(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        jsonio.loads(text)


def test_unserializable():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        jsonio.dumps({"x": {1}})


def test_no_regular_expressions_are_imported():
    import subprocess
    import sys
    code = ("import sys; from oci import jsonio; jsonio.dumps(jsonio.loads('{\"a\": [1]}'), 2); "
            "print('re' in sys.modules, 'json' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=__import__("os").path.dirname(__import__("oci").__path__[0]))
    assert out.stdout.split() == ["False", "False"], out.stderr
