"""A small validating reader for JSON documents.

Every check records its problem with the JSON path it concerns and returns a usable default,
so one pass over a document reports *all* of its problems together.
"""

from .errors import SpecError

UINT32_MAX = 2**32 - 1


class Reader:
    def __init__(self, source="config.json"):
        self.source = source
        self.problems = []

    def fail(self, where, message):
        self.problems.append(f"{where}: {message}")

    def raise_problems(self):
        if self.problems:
            raise SpecError(self.problems, self.source)

    def object(self, value, where):
        """`value` as a dict; an absent section reads as empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where or "(document)", "must be an object")
            return {}
        return value

    def field(self, data, key, where, kind, default=None, required=False):
        """data[key] checked by `kind`; `default` when absent or invalid."""
        path = f"{where}.{key}" if where else key
        value = data.get(key)
        if value is None:
            if required:
                self.fail(path, "required")
            return default
        return kind(self, value, path, default)


# Kinds: callables (reader, value, path, default) -> value.

def string(r, value, path, default):
    if isinstance(value, str):
        return value
    r.fail(path, "must be a string")
    return default


def boolean(r, value, path, default):
    if isinstance(value, bool):
        return value
    r.fail(path, "must be true or false")
    return default


def integer(low=None, high=None):
    def kind(r, value, path, default):
        if not isinstance(value, int) or isinstance(value, bool):
            r.fail(path, "must be an integer")
            return default
        if low is not None and value < low:
            r.fail(path, f"must be >= {low}" if low != 1 else "must be > 0")
            return default
        if high is not None and value > high:
            r.fail(path, f"must be <= {high}")
            return default
        return value
    return kind


uint32 = integer(0, UINT32_MAX)
uint64 = integer(0, 2**64 - 1)


def absolute_path(r, value, path, default):
    value = string(r, value, path, None)
    if value is None:
        return default
    if not value.startswith("/"):
        r.fail(path, f"must be an absolute path, not {value!r}")
        return default
    return value


def list_of(item_kind):
    def kind(r, value, path, default):
        if not isinstance(value, list):
            r.fail(path, "must be a list")
            return default
        items = [item_kind(r, item, f"{path}[{i}]", None) for i, item in enumerate(value)]
        return tuple(item for item in items if item is not None)
    return kind


string_list = list_of(string)


def string_map(r, value, path, default):
    if not isinstance(value, dict):
        r.fail(path, "must be an object")
        return default
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[key] = item
        else:
            r.fail(f"{path}.{key}", "must be a string")
    return result


def one_of(*choices):
    def kind(r, value, path, default):
        value = string(r, value, path, None)
        if value is None:
            return default
        if value not in choices:
            r.fail(path, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return value
    return kind


def raw_object(r, value, path, default):
    """A section kept as plain JSON (checked only for being an object)."""
    if isinstance(value, dict):
        return value
    r.fail(path, "must be an object")
    return default
