"""What comes out of a registry: the tree a container sees (whiteouts, opaque
directories, hard links, setuid files, several owners), a multi-arch index and the
platform chosen from it, zstd layers, 60 layers."""

import json
import shutil

import pytest

import imagebuild
from regtier import PASSWORD, USER


def d(name, mode=0o755, uid=0):
    return (name, None, mode, uid)


def f(name, data=b"x\n", mode=0o644, uid=0):
    return (name, data, mode, uid)


def link(name, target):
    return (name, ("hardlink", target), 0o644, 0)


@pytest.fixture(scope="session")
def base_tar(rootfs_template):
    return imagebuild._tar_of_directory(rootfs_template)


@pytest.fixture
def logged_in(user, registry):
    user.login_file(registry.host, USER, PASSWORD)
    return user


STAT = "stat -c '%n %u %g %a %h %i' "


def stat_lines(user, reference, paths):
    """{path: (uid, gid, mode, links, inode)} as the container sees them."""
    result = user.ok("run", "--rm", "--network", "none", reference, "sh", "-c",
                     STAT + " ".join(paths) + " 2>&1; true")
    found = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 6:
            found[parts[0]] = tuple(int(p, 8) if i == 2 else int(p)
                                    for i, p in enumerate(parts[1:]))
    return found, result.stdout


def test_the_tree_a_container_sees_is_the_images(logged_in, registry, push, base_tar,
                                                  tmp_path):
    layers = [base_tar,
              imagebuild.tar_of_entries([
                  d("data"), d("data/a"), f("data/a/x"), f("data/a/y"), d("data/a/sub"),
                  f("data/a/sub/deep"), f("data/keep"), f("data/target", b"t\n"),
                  link("data/hl", "data/target"),
                  d("srv", 0o755), d("srv/www", 0o750, 33), f("srv/www/index", b"i\n", 0o640, 33),
                  f("usr/bin/su-ish", b"s\n", 0o4755), d("home"), d("home/u", 0o700, 1000),
                  f("home/u/notes", b"n\n", 0o600, 1000), f("nobody", b"n\n", 0o644, 65534)]),
              imagebuild.tar_of_entries([
                  d("data"), f("data/.wh.keep", b""), d("data/a"),
                  f("data/a/.wh..wh..opq", b""), f("data/a/z", b"z\n"),
                  link("data/hl2", "data/target"),
                  f("usr/bin/sg-ish", b"g\n", 0o2755, 0)])]
    imagebuild.write_layout_of_layers(tmp_path / "layout", layers, greeting="tree")
    reference = push(f"oci:{tmp_path / 'layout'}:latest", registry, "handcar/tree:1")
    listing = logged_in.ok("run", "--rm", "--network", "none", reference, "sh", "-c",
                           "cd /data && find . | sort").stdout.split()
    assert listing == [".", "./a", "./a/z", "./hl", "./hl2", "./target"]
    found, raw = stat_lines(logged_in, reference, [
        "/srv/www", "/srv/www/index", "/usr/bin/su-ish", "/usr/bin/sg-ish", "/home/u",
        "/home/u/notes", "/nobody", "/data/target", "/data/hl", "/data/hl2"])
    assert found["/srv/www"][:3] == (33, 33, 0o750), raw
    assert found["/srv/www/index"][:3] == (33, 33, 0o640), raw
    assert found["/usr/bin/su-ish"][:3] == (0, 0, 0o4755), raw
    assert found["/usr/bin/sg-ish"][:3] == (0, 0, 0o2755), raw
    assert found["/home/u"][:3] == (1000, 1000, 0o700), raw
    assert found["/home/u/notes"][:3] == (1000, 1000, 0o600), raw
    assert found["/nobody"][:2] == (65534, 65534), raw
    # a hard link in a layer to a file of a layer below copies the file up, as overlayfs
    # does: the new name and the file are one; names below stay as they were
    assert found["/data/hl2"][4] == found["/data/target"][4], raw
    assert found["/data/hl"][3] == 2, raw                 # with target, in the layer below


def _index_layout(directory, images):
    """An OCI layout whose index lists one image per platform: images is
    [(platform dict, layer tars, greeting)]."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    manifests = []
    for n, (platform, layers, greeting) in enumerate(images):
        part = directory.parent / f"{directory.name}-{n}"

        def with_platform(config, platform=platform):
            config.update(architecture=platform["architecture"], os=platform["os"])
            if platform.get("variant"):
                config["variant"] = platform["variant"]
            return config
        imagebuild.write_layout_of_layers(part, layers, greeting=greeting,
                                          config=with_platform)
        for blob in (part / "blobs" / "sha256").iterdir():
            shutil.copy(blob, blobs / blob.name)
        descriptor = json.loads((part / "index.json").read_text())["manifests"][0]
        descriptor.pop("annotations")
        descriptor["platform"] = platform
        manifests.append(descriptor)
    inner = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": manifests}).encode()
    digest = imagebuild.sha256(inner)
    (blobs / digest[7:]).write_bytes(inner)
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
            "size": len(inner), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


@pytest.fixture(scope="session")
def multi_arch(tmp_path_factory, base_tar, registry, push):
    where = tmp_path_factory.mktemp("multi")
    images = [({"architecture": arch, "os": "linux", **({"variant": v} if v else {})},
               [base_tar, imagebuild.tar_of_entries([d("etc"),
                                                     f("etc/arch", f"{arch}\n".encode())])],
               f"multi-{arch}")
              for arch, v in (("amd64", ""), ("arm64", "v8"), ("arm", "v7"))]
    _index_layout(where / "index", images)
    return push(f"oci:{where / 'index'}:latest", registry, "handcar/multi:1",
                f"{USER}:{PASSWORD}", "--all")


def test_a_multi_arch_image_runs_the_hosts_platform(logged_in, multi_arch):
    result = logged_in.ok("run", "--rm", "--network", "none", multi_arch, "cat", "/etc/arch")
    assert result.stdout == "amd64\n"


def test_platform_and_arch_choose_another_image(logged_in, multi_arch):
    arm64 = logged_in.ok("pull", "-q", "--platform", "linux/arm64", multi_arch).stdout.strip()
    arm = logged_in.ok("pull", "-q", "--arch", "arm", multi_arch).stdout.strip()
    assert arm64 != arm
    inspected = json.loads(logged_in.ok("image", "inspect", arm64).stdout)[0]
    assert (inspected["Architecture"], inspected.get("Variant")) == ("arm64", "v8")
    assert inspected["Id"] == arm64 and len(inspected["RootFS"]["Layers"]) == 2
    assert any(digest.startswith(multi_arch.rsplit(":", 1)[0] + "@sha256:")
               for digest in inspected["RepoDigests"])
    remote = json.loads(logged_in.ok("image", "inspect", "--platform", "linux/arm/v7",
                                     multi_arch).stdout)[0]
    assert (remote["Architecture"], remote["Variant"]) == ("arm", "v7") and remote["Id"] == arm
    refused = logged_in("pull", "--platform", "linux/s390x", multi_arch)
    assert refused.returncode == 1
    assert "no image for linux/s390x (it has linux/amd64, linux/arm/v7, linux/arm64/v8)" \
        in refused.stderr


def test_zstd_layers(logged_in, registry, push, base_tar, tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="zstandard is a dependency: "
                                                        "install handcar with pip")
    layers = [base_tar, imagebuild.tar_of_entries([d("etc"), f("etc/motd", b"zstd\n")])]
    imagebuild.write_layout_of_layers(
        tmp_path / "layout", layers, greeting="zstd",
        store=lambda tar: zstandard.ZstdCompressor().compress(tar),
        media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    reference = push(f"oci:{tmp_path / 'layout'}:latest", registry, "handcar/zstd:1")
    result = logged_in.ok("run", "--rm", "--network", "none", reference, "cat", "/etc/motd")
    assert result.stdout == "zstd\n"


def test_sixty_layers_run(logged_in, registry, push, base_tar, tmp_path):
    layers = [base_tar] + [imagebuild.tar_of_entries([f(f"layer{n}", f"{n}\n".encode())])
                           for n in range(1, 60)]
    imagebuild.write_layout_of_layers(tmp_path / "layout", layers, greeting="sixty")
    reference = push(f"oci:{tmp_path / 'layout'}:latest", registry, "handcar/sixty:1")
    result = logged_in.ok("run", "--rm", "--network", "none", reference, "sh", "-c",
                          "cat /layer1 /layer30 /layer59")
    assert result.stdout == "1\n30\n59\n"
    assert len(logged_in.layers()) == 60


def test_a_blob_used_by_two_layers(logged_in, registry, push, base_tar, tmp_path):
    """The same layer twice (two steps that made the same change): one blob, two layers
    of the chain, each unpacked on its own."""
    same = imagebuild.tar_of_entries([d("etc"), f("etc/motd", b"twice\n")])
    imagebuild.write_layout_of_layers(tmp_path / "layout", [base_tar, same, same],
                                      greeting="twice")
    reference = push(f"oci:{tmp_path / 'layout'}:latest", registry, "handcar/twice:1")
    result = logged_in.ok("run", "--rm", "--network", "none", reference, "cat", "/etc/motd")
    assert result.stdout == "twice\n" and len(logged_in.layers()) == 3
