"""json.loads and json.dumps through CPython's _json accelerator alone.

Importing the json package compiles regular expressions (bringing in re and enum), which
costs a handcar verb about as much as everything else it imports; the accelerator it
wraps needs none of that. Without _json (another Python), the json package does it all.
"""

try:
    import _json
except ImportError:                       # pragma: no cover - CPython always has it
    _json = None

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _DecoderSettings:
    """What _json.make_scanner reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


def _error(message, text, position):
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return ValueError(f"{message}: line {line} column {column} (char {position})")


def loads(text, explain=True):
    """A JSON document (str or UTF-8 bytes) as Python values; ValueError if it is not.
    explain=False: no import of the json package for a precise message (a child after
    pivot_root cannot import anything)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if _json is None:
        import json
        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _json.make_scanner(_DecoderSettings)(text, start)
    except StopIteration as stop:
        raise _error("Expecting value", text, stop.value) from None
    except SystemError:
        # The accelerator reports most errors through json.decoder, which it expects to
        # be imported already: on this (rare) path, let the json package say it.
        if not explain:
            raise ValueError("not valid JSON") from None
        import json
        return json.loads(text)
    if text[end:].strip(_WHITESPACE):
        rest = text[end:]
        raise _error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    return value


def _unserializable(value):
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value, indent=None):
    """Compact JSON (as json.dumps with separators (",", ":")), or indented by `indent`."""
    if _json is None:
        import json
        return json.dumps(value, indent=indent, separators=(",", ":") if indent is None
                          else (",", ": "))
    if indent is None:
        encode = _json.make_encoder(None, _unserializable, _json.encode_basestring_ascii, None,
                                    ":", ",", False, False, True)
        return "".join(encode(value, 0))
    return _indented(value, indent, 0)


def _indented(value, indent, level):
    inner, outer = " " * (indent * (level + 1)), " " * (indent * level)
    if isinstance(value, dict) and value:
        items = (f"{inner}{dumps(str(key))}: {_indented(item, indent, level + 1)}"
                 for key, item in value.items())
        return "{\n" + ",\n".join(items) + f"\n{outer}}}"
    if isinstance(value, (list, tuple)) and value:
        items = (f"{inner}{_indented(item, indent, level + 1)}" for item in value)
        return "[\n" + ",\n".join(items) + f"\n{outer}]"
    return dumps(value)
