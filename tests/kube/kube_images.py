"""The Kubernetes tier's images, made here rather than pulled (the tier has no registry):
an OCI image layout archive, as `ctr images import` takes it, holding a pause image (the
pod's sandbox) and a workload image. Both are one layer of Debian's static busybox with a
link for each applet."""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time

PAUSE = "localhost/handcar-test/pause:1"
WORKLOAD = "localhost/handcar-test/busybox:1"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# what each image runs: the pause image sleeps until the pod is stopped (SIGKILL)
IMAGES = {PAUSE: {"Entrypoint": ["/bin/sleep", "2147483647"]},
          WORKLOAD: {"Cmd": ["/bin/sh"]}}


def busybox_layer():
    """The layer (an uncompressed tar): /bin/busybox, its applets, /etc/passwd and group,
    and the usual empty directories."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=b"", target=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.linkname = kind, mode, len(data), target
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        for directory in ("bin", "dev", "etc", "proc", "root", "sys", "usr", "var"):
            add(directory)
        add("tmp", mode=0o1777)
        with open(busybox, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, data=f.read())
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777, target="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    return buffer.getvalue()


def build_archive(path):
    """Write the archive of IMAGES to `path` (a tar of an OCI image layout)."""
    blobs = {}

    def blob(data, media_type):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def as_json(document):
        return json.dumps(document, sort_keys=True).encode()

    layer = busybox_layer()
    layer_descriptor = blob(layer, "application/vnd.oci.image.layer.v1.tar")
    platform = {"architecture": "amd64", "os": "linux"}
    manifests = []
    for name, config in IMAGES.items():
        image_config = {**platform,
                        "config": {"Env": [f"PATH={PATH}"], "WorkingDir": "/", **config},
                        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]}}
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": blob(as_json(image_config), "application/vnd.oci.image.config.v1+json"),
                    "layers": [layer_descriptor]}
        descriptor = blob(as_json(manifest), manifest["mediaType"])
        descriptor["platform"] = platform
        # containerd names the image after this annotation when it imports the archive
        descriptor["annotations"] = {"io.containerd.image.name": name,
                                     "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
        manifests.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", as_json({"imageLayoutVersion": "1.0.0"}))
        add("index.json", as_json(index))
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.removeprefix("sha256:"), data)
