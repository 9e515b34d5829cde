"""Applying image layers: whiteouts, opaque directories, replacements, links, escapes
(rootless.image.unpack.apply_layer on a plain directory, with layers that are safe without the
chroot it runs in for real; the chrooted unpacking and ownership need the user namespace
and are covered by tests/integration/test_image_unpack.py and test_friendly.py)."""

import io
import os
import subprocess
import sys
import tarfile

import pytest

from oci.image import ImageError
from rootless.image.unpack import apply_layer


def layer(*entries):
    """A tar stream of (name, content[, {xattr: bytes}]) entries; content None makes a
    directory, a ("link", target) tuple a symlink, a ("hardlink", target) tuple a hard
    link; extended attributes as tar --xattrs writes them (PAX SCHILY.xattr.NAME)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, *xattrs in entries:
            info = tarfile.TarInfo(name)
            info.pax_headers = {f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                                for key, value in (xattrs[0] if xattrs else {}).items()}
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                kind = tarfile.SYMTYPE if content[0] == "link" else tarfile.LNKTYPE
                info.type, info.linkname = kind, content[1]
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


@pytest.fixture
def root(tmp_path):
    """The rootfs, two levels below tmp_path: a whiteout of '..' must not reach the
    directory pytest shares between tests."""
    path = tmp_path / "a" / "root"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("whiteout", [".wh.", ".wh..", ".wh...", "d/.wh.", "d/.wh..",
                                      "d/.wh..."])
def test_a_whiteout_of_nothing_or_of_a_parent_is_refused(root, whiteout):
    apply_layer(layer(("d", None), ("d/keep", b"k"), ("top", b"t")), str(root))
    with pytest.raises(ImageError, match="whiteout must name a file"):
        apply_layer(layer((whiteout, b"")), str(root))
    assert tree(root) == {"d", "d/keep", "top"}
    assert tree(root.parent) == {"root", "root/d", "root/d/keep", "root/top"}


def test_a_whiteout_does_not_follow_a_symlink(root):
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"v")
    apply_layer(layer(("d", ("link", "../outside")), ("e", None),
                      ("e/l", ("link", "../../outside"))), str(root))
    for whiteout in ("d/.wh.victim", "d/.wh..wh..opq", "e/l/.wh.victim"):
        with pytest.raises(ImageError, match="symbolic link"):
            apply_layer(layer((whiteout, b"")), str(root))
    assert (outside / "victim").read_bytes() == b"v"
    # a whiteout of the link itself deletes the link, not what it points at
    apply_layer(layer((".wh.d", b"")), str(root))
    assert tree(root) == {"e", "e/l"} and (outside / "victim").exists()


def test_a_whiteout_in_a_missing_directory_deletes_nothing(root):
    apply_layer(layer(("keep", b"k")), str(root))
    apply_layer(layer(("gone/.wh.keep", b""), ("gone/.wh..wh..opq", b"")), str(root))
    assert tree(root) == {"keep"}


def test_entries_follow_symlinks_inside_the_root_only(root, tmp_path):
    # merged /usr: a later layer writes lib/x and bin/y through lib -> usr/lib and the
    # absolute bin -> /usr/bin, which is the image's /usr/bin, never the host's
    host_dir = tmp_path / "host-bin"
    host_dir.mkdir()
    inside = str(host_dir).lstrip("/")
    apply_layer(layer(("usr", None), ("usr/lib", None), ("usr/lib/old", b"o"),
                      ("lib", ("link", "usr/lib")), ("bin", ("link", str(host_dir))),
                      *[(part, None) for part in _parents(inside)]), str(root))
    apply_layer(layer(("lib/x", b"x"), ("bin/y", b"y"), ("lib/sub/z", b"z")), str(root))
    assert (root / "usr/lib/x").read_bytes() == b"x"
    assert (root / "usr/lib/sub/z").read_bytes() == b"z"
    assert (root / inside / "y").read_bytes() == b"y"
    assert not os.listdir(host_dir)
    assert (root / "lib").is_symlink()
    # what this layer wrote through the link is its own: its opaque marker keeps it
    apply_layer(layer(("lib/new", b"n"), ("usr/lib/.wh..wh..opq", b"")), str(root))
    assert sorted(os.listdir(root / "usr/lib")) == ["new"]


def _parents(path):
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_a_file_under_a_dangling_symlink_is_a_clear_error(root):
    apply_layer(layer(("esc", ("link", "/nowhere/at/all")),), str(root))
    with pytest.raises(ImageError, match="esc/file: the symbolic link esc points to a "
                                         "missing directory"):
        apply_layer(layer(("esc/file", b"x")), str(root))
    with pytest.raises(ImageError, match="f/x: f is not a directory"):
        apply_layer(layer(("f", b"file"), ("f/x", b"x")), str(root))
    assert tree(root) == {"esc", "f"}


def test_hard_links_name_a_file_in_the_image_that_exists(root):
    (root.parent / "outside").write_bytes(b"secret")
    apply_layer(layer(("etc", None), ("etc/a", b"a"), ("etc/b", ("hardlink", "etc/a")),
                      ("c", ("hardlink", "/etc/a"))), str(root))
    assert (root / "etc/b").stat().st_ino == (root / "etc/a").stat().st_ino
    assert (root / "c").stat().st_ino == (root / "etc/a").stat().st_ino
    with pytest.raises(ImageError, match="hard link to '../outside', outside the image"):
        apply_layer(layer(("x", ("hardlink", "../outside"))), str(root))
    for missing in ("nothere", "etc/nothere", "nodir/a"):
        with pytest.raises(ImageError, match=f"hard link to '{missing}', which is missing"
                           "|nodir is missing"):
            apply_layer(layer(("y", ("hardlink", missing))), str(root))
    assert tree(root) == {"etc", "etc/a", "etc/b", "c"}


def test_aufs_bookkeeping_is_not_image_content(root):
    apply_layer(layer((".wh..wh.plnk", None), (".wh..wh.plnk/12.34", b""),
                      ("d", None), ("d/.wh..wh.aufs", b""), ("d/f", b"f")), str(root))
    assert tree(root) == {"d", "d/f"}


def test_after_the_chroot_nothing_is_imported_from_the_filesystem(tmp_path):
    """_unpack_layers runs as root in the user namespace, chrooted into the image: a
    module the image put on sys.path must not be imported (checked for real, chrooted, in
    tests/integration/test_image_unpack.py)."""
    (tmp_path / "handcar_probe_module.py").write_text("print('imported')\n")
    script = f"""
import sys, _frozen_importlib
sys.path.insert(0, {str(tmp_path)!r})
from rootless.image.unpack import _stop_importing
assert "rootless.friendly.settings" not in sys.modules
not_yet = next(n for n in sys.builtin_module_names if n not in sys.modules)
_stop_importing()
assert sys.path == [] and sys.path_importer_cache == {{}}, sys.path
assert set(sys.meta_path) <= {{_frozen_importlib.BuiltinImporter,
                               _frozen_importlib.FrozenImporter}}, sys.meta_path
__import__(not_yet)                         # built-in modules read no file
for name in ("handcar_probe_module", "colorsys", "rootless.friendly.settings"):
    try:
        __import__(name)
    except ImportError:
        print("refused", name)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["refused handcar_probe_module", "refused colorsys",
                                         "refused rootless.friendly.settings", ""]


def test_extended_attributes_are_set_and_overlays_own_dropped(tmp_path):
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as err:
        pytest.skip(f"{tmp_path} does not take user.* extended attributes ({err.strerror})")
    binary = b"\x00\xff\xfe binary \x80"
    skipped = apply_layer(layer(
        ("f", b"data", {"user.handcar.test": binary, "user.overlay.opaque": b"y",
                        "trusted.overlay.redirect": b"/elsewhere",
                        "user.fuseoverlayfs.opaque": b"y"}),
        ("link", ("link", "f"), {"user.on-a-link": b"x"})), str(tmp_path))
    assert os.getxattr(tmp_path / "f", "user.handcar.test") == binary
    assert os.listxattr(tmp_path / "f") == ["user.handcar.test"]
    assert os.listxattr(tmp_path / "link", follow_symlinks=False) == []
    assert skipped == {"user.overlay.opaque", "trusted.overlay.redirect",
                       "user.fuseoverlayfs.opaque", "user.on-a-link"}
