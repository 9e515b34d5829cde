"""Applying image layers: whiteouts, opaque directories, replacements, escapes
(rootless.images.apply_layer on a plain directory; ownership needs the user namespace
and is covered by tests/integration/test_friendly.py)."""

import io
import os
import tarfile

import pytest

from oci.image import ImageError
from rootless.images import apply_layer


def layer(*entries):
    """A tar stream of (name, content) entries; content None makes a directory,
    a ("link", target) tuple a symlink."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer, mode="r|")


def tree(root):
    found = set()
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def test_whiteouts_and_opaque_directories(tmp_path):
    apply_layer(layer(("etc", None), ("etc/group", b"g"), ("etc/passwd", b"p"),
                      ("var", None), ("var/cache", None), ("var/cache/old", b"o")), str(tmp_path))
    apply_layer(layer(("etc/.wh.group", b""), ("var/cache", None),
                      ("var/cache/.wh..wh..opq", b""), ("var/cache/new", b"n")), str(tmp_path))
    assert tree(tmp_path) == {"etc", "etc/passwd", "var", "var/cache", "var/cache/new"}


def test_the_opaque_marker_keeps_what_its_own_layer_added(tmp_path):
    apply_layer(layer(("d", None), ("d/old", b"o")), str(tmp_path))
    apply_layer(layer(("d", None), ("d/mine", b"m"), ("d/.wh..wh..opq", b"")), str(tmp_path))
    assert tree(tmp_path) == {"d", "d/mine"}


def test_a_file_replaces_a_symlink_rather_than_writing_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(layer(("config", ("link", str(outside / "target")))), str(root))
    apply_layer(layer(("config", b"new content")), str(root))
    assert not (outside / "target").exists()
    assert (root / "config").read_bytes() == b"new content"
    assert not (root / "config").is_symlink()


def test_a_directory_replaces_a_file_and_back(tmp_path):
    apply_layer(layer(("x", b"file")), str(tmp_path))
    apply_layer(layer(("x", None), ("x/inner", b"i")), str(tmp_path))
    assert (tmp_path / "x" / "inner").read_bytes() == b"i"
    apply_layer(layer(("x", b"file again")), str(tmp_path))
    assert (tmp_path / "x").read_bytes() == b"file again"


def test_entries_climbing_out_are_refused(tmp_path):
    with pytest.raises(ImageError, match="leaves the image"):
        apply_layer(layer(("../escape", b"x")), str(tmp_path / "root"))
    assert not (tmp_path / "escape").exists()
