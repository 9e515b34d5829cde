"""The image store for real (rootless.image.store.ImageStore): layers unpacked chrooted, as
root in the container's user namespace, where a symlink to / is the image's own root;
nothing imported from the image after the chroot; what killed pulls leave; names
(absolute paths, archive repo tags, untag, concurrent pulls)."""

import gzip
import os
import subprocess

import pytest

import imagebuild
from harness import needs_subids
from oci.errors import HandcarError
from oci.image import ImageError
from rootless.runtime import userns
from rootless.image.store import ImageStore, absolute_reference, remove_owned_tree
from rootless.image.unpack import _enter_rootfs
from rootless.runtime.store import user_name

pytestmark = needs_subids


def mapping():
    """A container's mapping: 0 is the caller, 1.. its subordinate ids."""
    return userns.default_plan(os.geteuid(), os.getegid(), user_name(os.geteuid()))


@pytest.fixture
def store(tmp_path):
    images = ImageStore(str(tmp_path / "data"))
    yield images
    for image in images.images():
        images.remove(image, mapping())


def d(name):
    return (name, None, 0o755, 0)


def f(name, data=b"x\n", uid=0):
    return (name, data, 0o644, uid)


def symlink(name, target):
    return (name, ("symlink", target), 0o777, 0)


def hardlink(name, target):
    return (name, ("hardlink", target), 0o644, 0)


def layout(where, *layers, greeting="", **options):
    """oci:PATH of an image of these layers (lists of entries), and its id."""
    digest = imagebuild.write_layout_of_layers(
        where, [imagebuild.tar_of_entries(entries) for entries in layers],
        greeting=greeting or os.path.basename(where), **options)
    return f"oci:{where}", digest[7:]


def leftovers(store):
    return [name for name in os.listdir(store.root) if name.startswith(".")]


BASE = [d("etc"), f("etc/passwd", b"root:x:0:0::/:/bin/sh\n"), d("bin"), f("bin/sh")]


# --- layers that only the chroot keeps in the image ----------------------------------------

@pytest.mark.parametrize("whiteout", ["d/.wh..wh..opq", "d/.wh.etc"])
def test_a_whiteout_through_a_symlink_to_the_root_deletes_nothing(store, tmp_path, whiteout):
    reference, _ = layout(tmp_path / "image", BASE + [symlink("d", "/")], [f(whiteout, b"")])
    with pytest.raises(HandcarError, match=rf"layer \w+: {whiteout}: d is a symbolic link"):
        store.pull(reference, mapping())
    assert store.images() == [] and leftovers(store) == []


def test_entries_through_symlinks_stay_in_the_image(store, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    inside = str(host).lstrip("/").split("/")
    reference, image_id = layout(
        tmp_path / "image",
        BASE + [symlink("d", "/"), symlink("up", "../../.."), symlink("h", str(host))]
        + [d("/".join(inside[:i])) for i in range(1, len(inside) + 1)],
        [f("d/x"), f("up/y"), f("h/z"), f("d/etc/motd")])
    image = store.pull(reference, mapping())
    assert image.id == image_id
    rootfs = image.rootfs
    for name in ("x", "y", "etc/motd", os.path.join(*inside, "z")):
        assert os.path.isfile(os.path.join(rootfs, name)), name
    assert os.listdir(host) == []
    assert os.readlink(os.path.join(rootfs, "d")) == "/"


def test_a_corrupt_gzip_layer_is_named_in_the_error(store, tmp_path):
    second = imagebuild.tar_of_entries([f("etc/motd")])
    stored = bytearray(gzip.compress(second, mtime=0))
    stored[-8] ^= 0xFF                          # the CRC in the trailer: the data is intact
    stored = bytes(stored)
    reference, _ = layout(tmp_path / "image", BASE, [f("etc/motd")],
                          store=lambda tar: stored if tar == second else gzip.compress(tar))
    label = imagebuild.sha256(stored)[7:19]
    with pytest.raises(HandcarError, match=f"layer {label}: not valid gzip data "
                                           r"\(CRC check failed"):
        store.pull(reference, mapping())
    assert leftovers(store) == []


@pytest.mark.parametrize("target,why", [("../../etc/passwd", "outside the image"),
                                        ("etc/shadow", "which is missing")])
def test_a_hard_link_must_name_a_file_in_the_image(store, tmp_path, target, why):
    reference, _ = layout(tmp_path / "image", BASE, [hardlink("x", target)])
    with pytest.raises(HandcarError, match=rf"layer \w+: x: hard link to '{target}', {why}"):
        store.pull(reference, mapping())


def test_a_hard_link_in_the_image_is_made(store, tmp_path):
    reference, _ = layout(tmp_path / "image", BASE, [hardlink("sh", "/bin/sh")])
    rootfs = store.pull(reference, mapping()).rootfs
    assert os.stat(f"{rootfs}/sh").st_ino == os.stat(f"{rootfs}/bin/sh").st_ino


def _try_import_in(rootfs, result_fd):
    _enter_rootfs(rootfs)
    try:
        import handcar_probe_in_the_image  # noqa: F401 - the point is whether it imports
        os.write(result_fd, b"imported")
    except ImportError:
        os.write(result_fd, b"refused")


def test_nothing_is_imported_from_the_image_after_the_chroot(tmp_path):
    """The unpacker is root in the user namespace: a module the image puts where the
    host's Python looks (every sys.path entry, as /usr/lib/python3.11 would be) must not
    run there."""
    import sys
    rootfs = tmp_path / "rootfs"
    for entry in sys.path:
        if os.path.isabs(entry):
            place = rootfs / entry.lstrip("/")
            place.mkdir(parents=True, exist_ok=True)
            (place / "handcar_probe_in_the_image.py").write_text("")
    read_end, write_end = os.pipe()
    try:
        userns.run_in_userns(mapping(), _try_import_in, str(rootfs), write_end)
    finally:
        os.close(write_end)
        with open(read_end, "rb") as result:
            assert result.read() == b"refused"


# --- what killed pulls and removals leave ------------------------------------------------

def _make_subordinate_owned(paths):
    """Work directories as a killed pull leaves them: a rootfs of a subordinate id."""
    for path in paths:
        os.mkdir(path, 0o700)
        os.mkdir(f"{path}/rootfs", 0o755)
        with open(f"{path}/rootfs/file", "w") as out:
            out.write("x")
        os.chown(f"{path}/rootfs", 1, 1)


def test_what_a_killed_pull_left_is_removed_by_the_next(store, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    os.makedirs(store.root)
    stale = [os.path.join(store.root, f".pull-0123456789ab-{gone.pid}"),
             os.path.join(store.root, f".rm-0123456789ab-{gone.pid}")]
    live = os.path.join(store.root, f".pull-ba9876543210-{os.getpid()}")
    userns.run_in_userns(mapping(), _make_subordinate_owned, stale + [live])
    with pytest.raises(PermissionError):
        os.unlink(f"{stale[0]}/rootfs/file")        # the user cannot remove it alone
    try:
        reference, _ = layout(tmp_path / "image", BASE)
        image = store.pull(reference, mapping())
        assert sorted(leftovers(store)) == [os.path.basename(live)]   # its pull runs
        userns.run_in_userns(mapping(), _make_subordinate_owned, stale[:1])
        store.remove(image, mapping())
        assert leftovers(store) == [os.path.basename(live)]
    finally:
        remove_owned_tree(live, mapping())


# --- names ---------------------------------------------------------------------------------

def test_an_oci_layout_is_named_by_its_absolute_path(store, tmp_path, monkeypatch):
    ids = []
    for directory in ("one", "two"):
        (tmp_path / directory).mkdir()
        layout(tmp_path / directory / "img", BASE, greeting=directory)
        monkeypatch.chdir(tmp_path / directory)
        ids.append(store.pull("oci:img", mapping()).id)
        assert store.find(str(absolute_reference("oci:img"))).id == ids[-1]
    assert ids[0] != ids[1]
    names = {image.id: image.names for image in store.images()}
    assert names == {ids[0]: (f"oci:{tmp_path}/one/img",),
                     ids[1]: (f"oci:{tmp_path}/two/img",)}


@pytest.fixture
def archive(tmp_path):
    """A docker-archive of two images, as `docker save one two` writes it."""
    path = tmp_path / "two-images.tar"
    digests = imagebuild.write_docker_archive_of(path, [
        ([imagebuild.tar_of_entries(BASE)], ["handcar-test/one:latest"], "one"),
        ([imagebuild.tar_of_entries(BASE)], ["handcar-test/two:1", "two:latest"], "two")])
    return path, [digest[7:] for digest in digests]


def test_an_image_of_a_docker_archive_is_named_by_repo_and_tag(store, archive):
    path, (one, two) = archive
    image = store.pull(f"docker-archive:{path}:handcar-test/two:1", mapping())
    assert image.id == two
    assert image.names == (f"docker-archive:{path}:handcar-test/two:1", "handcar-test/two:1",
                           "two:latest")
    assert store.pull(f"docker-archive:{path}:handcar-test/one", mapping()).id == one
    for wrong in ("1", "two:1", "handcar-test/two"):
        with pytest.raises(ImageError, match=f"no image tagged '{wrong}'"):
            store.pull(f"docker-archive:{path}:{wrong}", mapping())


def test_untag_takes_one_name_and_remove_the_image(store, archive):
    path, (_, two) = archive
    image = store.pull(f"docker-archive:{path}:two", mapping())
    assert image.name_for("two") == "two:latest" and image.name_for(two) is None
    image = store.untag(image, "two:latest")
    assert store.find("two") is None and store.find("handcar-test/two:1").id == two
    with pytest.raises(ImageError, match="not named 'two:latest'"):
        store.untag(image, "two:latest")
    for name in image.names:
        image = store.untag(image, name)
    assert image.names == () and store.find(two).path == image.path     # untagged, kept
    assert os.path.isdir(image.rootfs)
    store.remove(image, mapping())
    assert store.images() == [] and not os.path.exists(image.path)


def test_concurrent_pulls_lose_no_name(store):
    """Each pull reads, changes and writes image.json: without a lock, names get lost."""
    image_id = "ab" * 32
    os.makedirs(os.path.join(store.root, image_id))
    with open(os.path.join(store.root, image_id, "image.json"), "w") as out:
        out.write('{"names": []}')
    writers = []
    for writer in range(4):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                for number in range(25):
                    store._add_names(image_id, [f"n{writer}-{number}"])
                status = 0
            finally:
                os._exit(status)
        writers.append(pid)
    for pid in writers:
        assert os.waitpid(pid, 0)[1] == 0
    assert len(store.find(image_id).names) == 100
