"""config.toml: defaults, and errors that name the file, the key and what is allowed."""

import pytest

from oci.errors import HandcarError
from rootless.friendly import settings


def load(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return settings.load(str(path))


def test_values_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    loaded = load(tmp_path, 'network = "none"\nstorage = "~/images"\ninit = true\n')
    assert (loaded.network, loaded.init) == ("none", True)
    assert loaded.storage == str(tmp_path / "images")
    assert loaded.seccomp_profile == "default"
    missing = settings.load(str(tmp_path / "nothing.toml"))
    assert missing.network is None and missing.storage.endswith("handcar")


@pytest.mark.parametrize("text, words", [
    ('colour = "blue"\n', ["unknown key 'colour'", "network, storage"]),
    ("init = 1\n", ["init must be true or false"]),
    ("network = 5\n", ["network must be"]),
    ('network = "bridge"\n', ["network", "slirp4netns"]),
    ("network = \n", ["not valid TOML"]),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, words):
    with pytest.raises(HandcarError) as err:
        load(tmp_path, text)
    assert str(tmp_path / "config.toml") in str(err.value)
    for word in words:
        assert word in str(err.value)
