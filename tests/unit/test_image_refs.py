"""Image references and documents (oci.image)."""

import pytest

from oci.image import (ImageError, Platform, Reference, chain_ids, check_digest,
                       choose_manifest, choose_platform, docker_archive_entry, host_platform,
                       image_config, layer_compression, normalized_name, parse_platform,
                       parse_reference)

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


def ref(text, files=(), dirs=()):
    return parse_reference(text, lambda p: p in files or p in dirs, lambda p: p in dirs)


def test_references():
    assert ref("oci:/img/layout") == Reference("oci", "/img/layout", "")
    assert ref("oci:/img/layout:v1", dirs={"/img/layout"}) == Reference("oci", "/img/layout",
                                                                        "v1")
    assert ref("oci:/img/a:b", dirs={"/img/a:b"}) == Reference("oci", "/img/a:b", "")
    assert ref("oci:/img/a:b:v1", dirs={"/img/a:b"}) == Reference("oci", "/img/a:b", "v1")
    assert ref("docker-archive:/x/busybox.tar") == Reference("docker-archive",
                                                             "/x/busybox.tar", "")
    assert str(ref("oci:/l:v1", dirs={"/l"})) == "oci:/l:v1"
    assert ref("./rootfs").kind == "dir" and ref("/srv/rootfs").kind == "dir"
    assert ref("rootfs", dirs={"rootfs"}).kind == "dir"
    assert ref("busybox:latest") == Reference("name", "busybox:latest")
    assert ref("docker://busybox:1") == Reference("docker", "busybox:1")
    assert str(ref("docker://busybox:1")) == "docker://busybox:1"
    assert ref("oci-archive:/x/img.tar:v2", files={"/x/img.tar"}) == Reference(
        "oci-archive", "/x/img.tar", "v2")
    with pytest.raises(ImageError):
        ref("oci:")


def test_docker_archive_references_name_the_image_by_repo_and_tag():
    # podman save / skopeo: docker-archive:FILE[:REPO[:TAG]], split after the file
    files = {"/x/b.tar"}
    assert ref("docker-archive:/x/b.tar:handcar-test/busybox:latest", files) == Reference(
        "docker-archive", "/x/b.tar", "handcar-test/busybox:latest")
    assert ref("docker-archive:/x/b.tar:busybox", files) == Reference(
        "docker-archive", "/x/b.tar", "busybox")
    assert str(ref("docker-archive:/x/b.tar:busybox:1", files)) == \
        "docker-archive:/x/b.tar:busybox:1"
    # a directory is not an archive; a missing file is the whole text, as typed
    assert ref("docker-archive:/x/b.tar:busybox", dirs={"/x/b.tar"}).path == \
        "/x/b.tar:busybox"
    assert ref("docker-archive:/x/gone.tar:busybox:1") == Reference(
        "docker-archive", "/x/gone.tar:busybox:1", "")
    # a file name with a colon, when that is what exists
    assert ref("docker-archive:/x/a:b.tar", {"/x/a:b.tar"}).path == "/x/a:b.tar"


def test_digests():
    assert check_digest(D1, "here") == "a" * 64
    for bad in ("sha512:" + "a" * 128, "sha256:xyz", "sha256:" + "A" * 64, None):
        with pytest.raises(ImageError, match="here"):
            check_digest(bad, "here")


def manifest(digest, tag=None, arch=None):
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest}
    if tag:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    if arch:
        entry["platform"] = {"architecture": arch, "os": "linux"}
    return entry


def test_choosing_a_manifest():
    amd64 = host_platform("x86_64")
    index = {"manifests": [manifest(D1, "v1"), manifest(D2, "v2")]}
    assert choose_manifest(index, "v2", amd64, "l")["digest"] == D2
    with pytest.raises(ImageError, match="name one with :TAG"):
        choose_manifest(index, "", amd64, "l")
    with pytest.raises(ImageError, match="v1, v2"):
        choose_manifest(index, "v3", amd64, "l")
    multi = {"manifests": [manifest(D1, arch="arm64"), manifest(D2, arch="amd64")]}
    assert choose_manifest(multi, "", amd64, "l")["digest"] == D2
    with pytest.raises(ImageError, match=r"no image for linux/s390x \(it has linux/amd64, "
                                         r"linux/arm64\)"):
        choose_manifest(multi, "", host_platform("s390x"), "l")


def platform_entry(digest, arch, variant=None, os_name="linux"):
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
             "platform": {"architecture": arch, "os": os_name}}
    if variant:
        entry["platform"]["variant"] = variant
    return entry


def test_platforms_are_chosen_as_containerd_matches_them():
    digests = ["sha256:" + str(n) * 64 for n in range(7)]
    index = {"manifests": [platform_entry(digests[0], "amd64"),
                           platform_entry(digests[1], "arm", "v6"),
                           platform_entry(digests[2], "arm", "v7"),
                           platform_entry(digests[3], "arm64", "v8"),
                           platform_entry(digests[4], "unknown", os_name="unknown"),
                           platform_entry(digests[5], "amd64", os_name="windows")]}

    def chosen(platform):
        return digests.index(choose_platform(index, platform, "i")["digest"])
    assert host_platform("x86_64") == Platform("linux", "amd64", "")
    assert chosen(host_platform("x86_64")) == 0
    assert chosen(host_platform("aarch64")) == 3           # arm64/v8
    assert chosen(Platform("linux", "arm64", "")) == 3      # no variant is v8
    assert chosen(host_platform("armv7l")) == 2
    assert chosen(host_platform("armv6l")) == 1
    assert chosen(parse_platform("linux/arm", host_platform("x86_64"))) == 2  # the best arm
    assert chosen(parse_platform("windows/amd64", host_platform("x86_64"))) == 5
    with pytest.raises(ImageError, match=r"no image for linux/arm/v5 \(it has linux/amd64, "
                                         r"linux/arm/v6, linux/arm/v7, linux/arm64/v8, "
                                         r"windows/amd64\)"):
        choose_platform(index, parse_platform("linux/arm/v5", Platform()), "i")


def test_platform_flags():
    host = host_platform("x86_64")
    assert parse_platform("arm64", host) == Platform("linux", "arm64", "")
    assert parse_platform("linux/arm/v7", host) == Platform("linux", "arm", "v7")
    for bad in ("", "linux/", "a/b/c/d"):
        with pytest.raises(ImageError, match="expected OS/ARCH"):
            parse_platform(bad, host)


def test_layer_media_types():
    def layer(media_type, **more):
        return {"mediaType": media_type, "digest": D1, **more}
    assert layer_compression(layer("application/vnd.oci.image.layer.v1.tar+zstd"), "m") == "zstd"
    assert layer_compression(layer("application/vnd.docker.image.rootfs.diff.tar.gzip"),
                             "m") == "gzip"
    assert layer_compression(layer("application/vnd.oci.image.layer.v1.tar"), "m") == ""
    with pytest.raises(ImageError, match=r"non-distributable \(foreign\) layer "
                                         r"\(application/vnd.docker.image.rootfs.foreign"
                                         r".diff.tar.gzip, at https://x/y\)"):
        layer_compression(layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                                urls=["https://x/y"]), "m")
    with pytest.raises(ImageError, match="encrypted"):
        layer_compression(layer("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"), "m")
    with pytest.raises(ImageError, match="not a container image layer"):
        layer_compression(layer("application/vnd.cncf.helm.chart.content.v1.tar+gzip"), "m")


def test_chain_ids_are_the_image_specs():
    # the image-spec's own example: ChainID(A|B) = sha256(ChainID(A) + " " + DiffID(B))
    import hashlib
    assert chain_ids([]) == []
    assert chain_ids([D1]) == [D1]
    second = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {D1}".encode()).hexdigest()
    assert chain_ids([D1, D2, D1]) == [D1, second, third]


def test_docker_archive_manifest():
    entries = [{"Config": "c.json", "Layers": ["1/layer.tar"], "RepoTags": ["busybox:1"]},
               {"Config": "d.json", "Layers": [], "RepoTags": ["alpine:3"]},
               {"Config": "e.json", "Layers": [], "RepoTags": ["me/tool:latest"]}]
    assert docker_archive_entry(entries, "alpine:3", "a")[0] == "d.json"
    assert docker_archive_entry(entries, "busybox:1", "a")[0] == "c.json"
    assert docker_archive_entry(entries, "docker.io/library/busybox:1", "a")[0] == "c.json"
    assert docker_archive_entry(entries, "me/tool", "a")[0] == "e.json"    # :latest
    # a tag alone names no image (it used to pick any repository with that tag)
    for wrong in ("1", "busybox", "busybox:3", "tool"):
        with pytest.raises(ImageError, match="no image tagged.*busybox:1"):
            docker_archive_entry(entries, wrong, "a")
    with pytest.raises(ImageError, match="holds 3 images"):
        docker_archive_entry(entries, "", "a")
    with pytest.raises(ImageError):
        docker_archive_entry({}, "", "a")


def test_image_names_are_compared_as_docker_does():
    same = ("busybox", "busybox:latest", "library/busybox", "docker.io/busybox",
            "docker.io/library/busybox:latest")
    assert {normalized_name(n) for n in same} == {"docker.io/library/busybox:latest"}
    assert normalized_name("quay.io/me/tool") == "quay.io/me/tool:latest"
    assert normalized_name("localhost:5000/tool:2") == "localhost:5000/tool:2"
    assert normalized_name("me/tool:2") == "docker.io/me/tool:2"


def test_image_config():
    config, diff_ids = image_config({
        "rootfs": {"type": "layers", "diff_ids": [D1]},
        "config": {"Entrypoint": ["/e"], "Env": ["A=1"], "WorkingDir": "/w", "User": "1:2",
                   "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"}}, "cfg")
    assert diff_ids == [D1]
    assert (config.entrypoint, config.cmd, config.env) == (("/e",), (), ("A=1",))
    assert (config.workdir, config.user, config.stop_signal) == ("/w", "1:2", "SIGQUIT")
    assert config.exposed_ports == ("80/tcp",)
    with pytest.raises(ImageError, match="diff_ids"):
        image_config({"rootfs": {"diff_ids": ["md5:x"]}}, "cfg")
    with pytest.raises(ImageError, match="Cmd"):
        image_config({"rootfs": {"diff_ids": []}, "config": {"Cmd": "ls"}}, "cfg")
