"""A plain immutable record, for the spec model.

dataclasses would do, but defining a dataclass costs about 2 ms at import (it compiles
generated code), and every handcar verb starts by importing the spec model. A record
lists its fields with their defaults in FIELDS; a mutable default (a dict) is copied
for each instance.
"""


class Record:
    FIELDS = {}
    _NAMES = ()                   # FIELDS' names, in order
    _DICT_DEFAULTS = ()           # the fields whose default is a dict (copied per record)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._NAMES = tuple(cls.FIELDS)
        cls._DICT_DEFAULTS = tuple(name for name, default in cls.FIELDS.items()
                                   if isinstance(default, dict))

    def __init__(self, *args, **kwargs):
        # Records are made by the hundred on every verb's path (the verb declarations, the
        # spec model): this is written for speed, in a few calls on whole dicts.
        names = self._NAMES
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields")
        values = dict(self.FIELDS)
        values.update(zip(names, args))
        for name in kwargs:
            if name not in values or name in names[:len(args)]:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {name!r}")
        values.update(kwargs)
        for name in self._DICT_DEFAULTS:
            if values[name] is self.FIELDS[name]:
                values[name] = {}
        self.__dict__.update(values)      # past __setattr__, which refuses every change

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: use replace()")

    def replace(self, **changes):
        """A copy with some fields changed."""
        values = {name: getattr(self, name) for name in self.FIELDS}
        values.update(changes)
        return type(self)(**values)

    def _values(self):
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other):
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self):
        return hash((type(self).__name__, self._values()))

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({fields})"
