"""The image store for real (rootless.image.store.ImageStore): layers unpacked one by one
on top of the ones below, chrooted, as root in the container's user namespace, where a
symlink to / is the image's own root; nothing imported from the image after the chroot;
layers shared between images stored once; whiteouts and opaque directories as overlayfs
keeps them; what killed pulls leave; names (absolute paths, archive repo tags, untag,
concurrent pulls); images of the old layout moved over."""

import gzip
import json
import os
import stat
import struct
import subprocess

import pytest

import imagebuild
from harness import needs_subids
from imagetree import mapping, pull_into, tree
from oci.errors import HandcarError
from oci.image import ImageError
from rootless.image.store import ImageStore, absolute_reference, remove_owned_tree
from rootless.image.unpack import _enter_rootfs
from rootless.runtime import userns

pytestmark = needs_subids


@pytest.fixture
def store(request, tmp_path):
    """The image store, its driver chosen as on this machine; or (parametrized
    indirectly) the one named, as on a kernel that needs it."""
    images = ImageStore(str(tmp_path / "data"), mapping())
    driver = getattr(request, "param", None)
    if driver:
        os.makedirs(images.root)
        with open(os.path.join(images.root, "driver"), "w") as out:
            out.write(driver + "\n")
    yield images
    for image in images.images():
        images.remove(image)
    images.remove_unused_layers()             # those of the pulls a test made fail
    assert os.listdir(images.layers_dir) == [] and os.listdir(images.links_dir) == []


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
    return os.listdir(store.tmp)


# the kernel's overlayfs and fuse-overlayfs (where the kernel cannot mount overlayfs in a
# user namespace): the same layers, mounted either way
BOTH_OVERLAYS = pytest.mark.parametrize("store", ["overlay", "fuse-overlayfs"], indirect=True)

BASE = [d("etc"), f("etc/passwd", b"root:x:0:0::/:/bin/sh\n"), d("bin"), f("bin/sh")]


# --- layers that only the chroot keeps in the image ----------------------------------------

@pytest.mark.parametrize("whiteout", ["d/.wh..wh..opq", "d/.wh.etc"])
def test_a_whiteout_through_a_symlink_to_the_root_deletes_nothing(store, tmp_path, whiteout):
    reference, _ = layout(tmp_path / "image", BASE + [symlink("d", "/")], [f(whiteout, b"")])
    with pytest.raises(HandcarError, match=rf"layer \w+: {whiteout}: d is a symbolic link"):
        pull_into(store, reference)
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
    image = pull_into(store, reference)
    assert image.id == image_id
    files = tree(store, image, tmp_path / "tree")
    for name in ("x", "y", "etc/motd", os.path.join(*inside, "z")):
        assert files[name]["type"] == "file", name
    assert os.listdir(host) == []
    assert files["d"] == files["d"] | {"type": "symlink", "target": "/"}


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
        pull_into(store, reference)
    assert leftovers(store) == []


@pytest.mark.parametrize("target,why", [("../../etc/passwd", "outside the image"),
                                        ("etc/shadow", "which is missing")])
def test_a_hard_link_must_name_a_file_in_the_image(store, tmp_path, target, why):
    reference, _ = layout(tmp_path / "image", BASE, [hardlink("x", target)])
    with pytest.raises(HandcarError, match=rf"layer \w+: x: hard link to '{target}', {why}"):
        pull_into(store, reference)


@BOTH_OVERLAYS
def test_a_hard_link_to_a_file_of_a_layer_below_is_made(store, tmp_path):
    reference, _ = layout(tmp_path / "image", BASE, [hardlink("sh", "/bin/sh")])
    files = tree(store, pull_into(store, reference), tmp_path / "tree")
    assert files["sh"]["ino"] == files["bin/sh"]["ino"] and files["sh"]["nlink"] == 2


# cap_net_raw+ep as `setcap` writes it: struct vfs_cap_data, revision 2 with the effective
# flag, permitted bit 13 (CAP_NET_RAW), nothing inheritable
CAP_NET_RAW_V2 = struct.pack("<5I", 0x02000000 | 0x1, 1 << 13, 0, 0, 0)


def test_file_capabilities_and_user_xattrs_are_applied(store, tmp_path):
    """A layer's security.capability (v2) is stored as the kernel stores a capability
    set by root in a user namespace (v3, owned by the namespace's root: the caller) and
    a container of the mapping sees it as v2; user.* xattrs are kept; a layer's own
    overlayfs attributes are dropped (an opaque directory it fakes hides nothing)."""
    reference, _ = layout(
        tmp_path / "image", BASE + [d("keep"), f("keep/below")],
        [("bin/ping", b"\x7fELF", 0o755, 0, {"security.capability": CAP_NET_RAW_V2,
                                             "user.handcar.note": b"pinged"}),
         ("keep", None, 0o755, 0, {"user.overlay.opaque": b"y"}), f("keep/above"),
         ("etc/tagged", b"t", 0o644, 0, {"user.mime_type": b"text/plain",
                                         "trusted.handcar": b"needs CAP_SYS_ADMIN"})])
    image = pull_into(store, reference)
    files = tree(store, image, tmp_path / "tree")
    assert files["bin/ping"]["xattrs"] == {"security.capability": CAP_NET_RAW_V2.hex(),
                                           "user.handcar.note": b"pinged".hex()}
    assert files["etc/tagged"]["xattrs"] == {"user.mime_type": b"text/plain".hex()}
    assert "keep/below" in files and "keep/above" in files
    # on disk, from outside the user namespace: v3, its root id the container's root
    diff = os.path.join(store.layers_dir, image.chain[-1], "diff")
    stored = os.getxattr(os.path.join(diff, "bin/ping"), "security.capability")
    assert stored == struct.pack("<6I", 0x03000000 | 0x1, 1 << 13, 0, 0, 0, os.geteuid())
    assert "user.overlay.opaque" not in os.listxattr(os.path.join(diff, "keep"))


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
    """Work directories as a killed pull leaves them: files of a subordinate id."""
    for path in paths:
        os.mkdir(path, 0o700)
        os.mkdir(f"{path}/diff", 0o755)
        with open(f"{path}/diff/file", "w") as out:
            out.write("x")
        os.chown(f"{path}/diff", 1, 1)


def test_what_a_killed_pull_left_is_removed_by_the_next(store, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    reference, _ = layout(tmp_path / "image", BASE)
    pull_into(store, reference)                     # makes the store
    stale = [os.path.join(store.tmp, f"layer-0123456789ab-{gone.pid}"),
             os.path.join(store.tmp, f"rm-layer-0123456789ab-{gone.pid}")]
    live = os.path.join(store.tmp, f"layer-ba9876543210-{os.getpid()}")
    userns.run_in_userns(mapping(), _make_subordinate_owned, stale + [live])
    with pytest.raises(PermissionError):
        os.unlink(f"{stale[0]}/diff/file")          # the user cannot remove it alone
    try:
        fresh = ImageStore(store.data_dir, mapping())   # the next command
        image = fresh.images()[0]
        assert sorted(leftovers(fresh)) == [os.path.basename(live)]   # its pull runs
        userns.run_in_userns(mapping(), _make_subordinate_owned, stale[:1])
        fresh = ImageStore(store.data_dir, mapping())
        fresh.remove(image)
        assert leftovers(fresh) == [os.path.basename(live)]
    finally:
        remove_owned_tree(live, mapping())


# --- the layer store -------------------------------------------------------------------------

def test_images_sharing_a_base_store_it_once(store, tmp_path):
    base = BASE + [d("usr"), f("usr/base", b"base\n")]
    one, one_id = layout(tmp_path / "one", base, [f("one", b"1\n")], greeting="one")
    two, two_id = layout(tmp_path / "two", base, [f("two", b"2\n")], greeting="two")
    first = pull_into(store, one)
    assert len(os.listdir(store.layers_dir)) == 2
    second = pull_into(store, two)
    assert len(os.listdir(store.layers_dir)) == 3, "the base is stored once"
    assert first.chain[0] == second.chain[0]
    assert {"one", "usr/base"} <= set(tree(store, first, tmp_path / "t1"))
    assert "one" not in tree(store, second, tmp_path / "t2")
    store.remove(first)
    assert sorted(os.listdir(store.layers_dir)) == sorted(second.chain), \
        "the other image's layers stay, the removed one's own go"
    assert tree(store, second, tmp_path / "t3")["usr/base"]["data"] == "base\n"


@BOTH_OVERLAYS
def test_whiteouts_and_opaque_directories_are_kept_as_overlayfs_reads_them(store, tmp_path):
    reference, _ = layout(
        tmp_path / "image",
        BASE + [d("a"), f("a/old"), d("a/sub"), f("a/sub/deep"), f("b"), d("c"), f("c/keep")],
        [d("a"), f("a/.wh..wh..opq", b""), f("a/new"), f(".wh.b", b""), f("c/.wh.gone", b"")])
    image = pull_into(store, reference)
    files = tree(store, image, tmp_path / "tree")
    assert sorted(p for p in files if p.startswith("a/")) == ["a/new"]
    assert "b" not in files and files["c/keep"]["type"] == "file"
    # read without mounting (image/tree.py), in the form each overlay wrote
    assert (store.read_file(image, "/a/old"), store.read_file(image, "/b")) == ("", "")
    assert store.read_file(image, "/c/keep") == "x\n"
    if store.driver() == "overlay":
        upper = store.lower_dirs(image)[1]
        assert os.getxattr(f"{upper}/a", "user.overlay.opaque") == b"y"
        whiteout = os.lstat(f"{upper}/b")
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
        assert not os.path.lexists(f"{upper}/c/gone"), "nothing to hide: no whiteout"


@BOTH_OVERLAYS
def test_owners_modes_and_setuid_bits_are_the_images(store, tmp_path):
    reference, _ = layout(tmp_path / "image", BASE + [
        ("bin/su", b"su\n", 0o4755, 0), ("srv", None, 0o750, 33),
        ("srv/www", b"w\n", 0o640, 33), ("home", None, 0o755, 0),
        ("home/user", None, 0o700, 1000), ("home/user/f", b"u\n", 0o2600, 1000)],
        [("srv/www", b"changed\n", 0o600, 65534)])
    files = tree(store, pull_into(store, reference), tmp_path / "tree")
    assert (files["bin/su"]["mode"], files["bin/su"]["uid"]) == (0o4755, 0)
    assert (files["srv"]["mode"], files["srv"]["uid"], files["srv"]["gid"]) == (0o750, 33, 33)
    assert (files["srv/www"]["mode"], files["srv/www"]["uid"], files["srv/www"]["data"]) == \
        (0o600, 65534, "changed\n")
    assert (files["home/user/f"]["mode"], files["home/user/f"]["gid"]) == (0o2600, 1000)


@BOTH_OVERLAYS
def test_sixty_layers_stack(store, tmp_path):
    layers = [BASE] + [[f(f"layer{n}", f"{n}\n".encode())] for n in range(1, 60)]
    reference, _ = layout(tmp_path / "image", *layers)
    image = pull_into(store, reference)
    assert len(image.chain) == 60
    files = tree(store, image, tmp_path / "tree")
    assert all(files[f"layer{n}"]["data"] == f"{n}\n" for n in range(1, 60))


@BOTH_OVERLAYS
def test_an_image_is_read_without_mounting_it(store, tmp_path):
    reference, _ = layout(tmp_path / "image", BASE + [d("lib"), f("lib/passwd", b"old\n"),
                                                        symlink("etc2", "/lib")],
                          [d("etc"), f("etc/.wh.passwd", b""), symlink("etc/passwd",
                                                                         "../etc2/passwd")],
                          [d("lib"), f("lib/.wh..wh..opq", b""), f("lib/passwd", b"new\n")])
    image = pull_into(store, reference)
    assert store.read_file(image, "/etc/passwd") == "new\n"
    assert store.read_file(image, "/etc/missing") == ""
    assert store.read_file(image, "/etc2/../etc2/passwd") == "new\n"


def test_images_of_the_old_layout_are_pulled_again_or_dropped(tmp_path, capfd):
    """Before the layer store, each image was one tree in DATA/images/<id>/rootfs."""
    data = tmp_path / "data"
    reference, image_id = layout(tmp_path / "image", BASE)
    legacy = data / "images"
    for old_id, names in ((image_id, [str(absolute_reference(reference)), "kept:1"]),
                          ("cd" * 32, ["oci:/gone/layout"])):
        (legacy / old_id / "rootfs" / "etc").mkdir(parents=True)
        (legacy / old_id / "image.json").write_text(json.dumps({"names": names}))
    store = ImageStore(str(data), mapping())
    images = store.images()
    assert [(i.id, i.names) for i in images] == [
        (image_id, (str(absolute_reference(reference)), "kept:1"))]
    assert not legacy.exists()
    err = capfd.readouterr().err
    assert f"image {image_id[:12]} moved to the layer store" in err
    assert "image cdcdcdcdcdcd (oci:/gone/layout) was stored by an older handcar" in err
    store.remove(images[0])


# --- names ---------------------------------------------------------------------------------

def test_an_oci_layout_is_named_by_its_absolute_path(store, tmp_path, monkeypatch):
    ids = []
    for directory in ("one", "two"):
        (tmp_path / directory).mkdir()
        layout(tmp_path / directory / "img", BASE, greeting=directory)
        monkeypatch.chdir(tmp_path / directory)
        ids.append(pull_into(store, "oci:img").id)
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
    image = pull_into(store, f"docker-archive:{path}:handcar-test/two:1")
    assert image.id == two
    assert image.names == (f"docker-archive:{path}:handcar-test/two:1", "handcar-test/two:1",
                           "two:latest")
    assert pull_into(store, f"docker-archive:{path}:handcar-test/one").id == one
    for wrong in ("1", "two:1", "handcar-test/two"):
        with pytest.raises(ImageError, match=f"no image tagged '{wrong}'"):
            pull_into(store, f"docker-archive:{path}:{wrong}")


def test_untag_takes_one_name_and_remove_the_image(store, archive):
    path, (_, two) = archive
    image = pull_into(store, f"docker-archive:{path}:two")
    assert image.name_for("two") == "two:latest" and image.name_for(two) is None
    image = store.untag(image, "two:latest")
    assert store.find("two") is None and store.find("handcar-test/two:1").id == two
    with pytest.raises(ImageError, match="not named 'two:latest'"):
        store.untag(image, "two:latest")
    for name in image.names:
        image = store.untag(image, name)
    assert image.names == () and store.find(two).path == image.path     # untagged, kept
    assert all(os.path.isdir(path) for path in store.lower_dirs(image))
    store.remove(image)
    assert store.images() == [] and not os.path.exists(image.path)


def test_concurrent_pulls_lose_no_name(store):
    """Each pull reads, changes and writes image.json: without a lock, names get lost."""
    image_id = "ab" * 32
    store.images()                                  # makes the store
    os.makedirs(os.path.join(store.images_dir, image_id))
    with open(os.path.join(store.images_dir, image_id, "image.json"), "w") as out:
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


def test_the_vfs_driver_keeps_whole_trees(tmp_path):
    """Where overlayfs cannot be mounted in a user namespace, each layer is the whole
    tree up to it (made here by choosing the driver before the store is first used)."""
    store = ImageStore(str(tmp_path / "data"), mapping())
    os.makedirs(store.root)
    with open(os.path.join(store.root, "driver"), "w") as out:
        out.write("vfs\n")
    reference, _ = layout(tmp_path / "image", BASE + [d("a"), f("a/old"), f("b")],
                          [d("a"), f("a/.wh..wh..opq", b""), f("a/new"), f(".wh.b", b""),
                           hardlink("sh", "/bin/sh")])
    image = pull_into(store, reference)
    top = store.lower_dirs(image)[-1]
    assert sorted(os.listdir(f"{top}/a")) == ["new"] and not os.path.lexists(f"{top}/b")
    assert os.stat(f"{top}/sh").st_ino == os.stat(f"{top}/bin/sh").st_ino
    assert store.read_file(image, "/etc/passwd").startswith("root:x:0:0")
    store.remove(image)
    assert os.listdir(store.layers_dir) == []


@BOTH_OVERLAYS
def test_a_flattened_root_is_made_on_demand_and_removed_with_the_image(store, tmp_path):
    """For what needs the image as one directory on the host (handcar debug --image)."""
    reference, _ = layout(tmp_path / "image", BASE + [f("gone"), hardlink("sh2", "bin/sh")],
                          [f(".wh.gone", b""), f("added", b"a\n")])
    image = pull_into(store, reference)
    root = store.rootfs(image)
    assert store.rootfs(image) == root
    assert sorted(os.listdir(root)) == ["added", "bin", "etc", "sh2"]
    if store.driver() == "overlay":     # fuse-overlayfs shows a lower layer's links apart
        assert os.stat(f"{root}/sh2").st_ino == os.stat(f"{root}/bin/sh").st_ino
    store.remove(image)
    assert not os.path.exists(root)
