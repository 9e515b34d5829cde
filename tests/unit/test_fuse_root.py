"""fuse-overlayfs for a container's root, the parts without namespaces: what the
handcar.mount-program annotation may ask for, the daemon's options, and which store
driver containers-storage.conf(5) chooses."""

import os

import pytest

from oci.errors import SpecError
from oci.image import ImageError
from oci.spec import MOUNT_PROGRAM_ANNOTATION, from_json
from rootless.image.config import storage_conf
from rootless.runtime import fuse_root
from rootless.system.fuse_overlay import mount_data

OVERLAY = {"destination": "/", "type": "overlay", "source": "overlay",
           "options": ["lowerdir=l/a:l/b", "upperdir=upper", "workdir=work", "userxattr"]}


def spec_with(program, *mounts):
    return from_json({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
                           "process": {"args": ["sh"], "cwd": "/"},
                           "annotations": {MOUNT_PROGRAM_ANNOTATION: program},
                           "mounts": list(mounts)})


def test_the_annotation_names_a_program_that_mounts_the_overlay_on_root():
    assert fuse_root.setup(spec_with("/bin/true", OVERLAY), "/b").program == "/bin/true"
    assert fuse_root.setup(from_json({"ociVersion": "1.2.0", "root": {"path": "r"},
                                           "process": {"args": ["sh"], "cwd": "/"}}),
                           "/b") is None


@pytest.mark.parametrize("program,mounts,why", [
    ("fuse-overlayfs", [OVERLAY], "not the absolute path of a program"),
    ("/nonexistent/fuse-overlayfs", [OVERLAY], "not the absolute path of a program"),
    ("/bin/true", [], "no overlay mount on /"),
    ("/bin/true", [dict(OVERLAY, type="tmpfs")], "no overlay mount on /"),
    ("/bin/true", [dict(OVERLAY, options=OVERLAY["options"] + ["metacopy=on"])],
     "option 'metacopy=on', which only the kernel's overlayfs takes")])
def test_what_the_annotation_cannot_do_is_refused_by_name(program, mounts, why):
    with pytest.raises(SpecError, match=f"annotation {MOUNT_PROGRAM_ANNOTATION}: .*{why}"):
        fuse_root.setup(spec_with(program, *mounts), "/b")


def test_the_daemon_gets_overlayfs_options_less_the_kernels_and_allow_other():
    assert mount_data("lowerdir=l/a,upperdir=u,workdir=w,userxattr") == \
        "lowerdir=l/a,upperdir=u,workdir=w,allow_other"


@pytest.fixture
def conf(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_DRIVER", raising=False)
    path = tmp_path / "storage.conf"
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(path))
    return path


def test_storage_conf_chooses_the_driver_and_mount_program(conf, monkeypatch):
    conf.write_text('[storage]\ndriver = "overlay"\n[storage.options.overlay]\n'
                    'mount_program = "/bin/true"\n')
    assert storage_conf() == ("overlay", "/bin/true")
    conf.write_text('[storage.options]\nmount_program = "/bin/true"\n')   # the older place
    assert storage_conf() == (None, "/bin/true")
    conf.write_text('[storage]\ndriver = "vfs"\n[storage.options.overlay]\n'
                    'mount_program = "/bin/true"\n')
    assert storage_conf() == ("vfs", None)
    monkeypatch.setenv("STORAGE_DRIVER", "overlay")
    assert storage_conf() == ("overlay", "/bin/true")
    os.unlink(conf)
    monkeypatch.delenv("STORAGE_DRIVER")
    assert storage_conf() == (None, None)           # no file: handcar chooses


def test_storage_conf_errors_name_the_file(conf, capsys):
    conf.write_text('[storage.options.overlay]\nmount_program = "/nonexistent/fuse"\n')
    with pytest.raises(ImageError, match=f"{conf}: mount_program /nonexistent/fuse is not"):
        storage_conf()
    conf.write_text('[storage\n')
    with pytest.raises(ImageError, match=str(conf)):
        storage_conf()
    conf.write_text('[storage]\ndriver = "btrfs"\n')
    assert storage_conf() == (None, None)
    assert "no 'btrfs' storage driver" in capsys.readouterr().err


@pytest.mark.parametrize("kernel,program,driver,said", [
    (True, "/usr/bin/fuse-overlayfs", "overlay", None),
    (False, "/usr/bin/fuse-overlayfs", "fuse-overlayfs", None),
    (False, None, "vfs", "fuse-overlayfs is not installed: image layers are stored as whole")])
def test_the_store_prefers_the_kernels_overlayfs_then_fuse_overlayfs_then_copies(
        tmp_path, monkeypatch, capsys, kernel, program, driver, said):
    """Where no storage.conf chooses: each probe is a mount in a user namespace
    (faked here: this machine's kernel can)."""
    from rootless.image import store as image_store
    from rootless.runtime import host
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "none.conf"))
    monkeypatch.delenv("STORAGE_DRIVER", raising=False)
    monkeypatch.setattr(host, "find_program",
                        lambda name, also=(): program if name == "fuse-overlayfs" else None)
    probes = []

    def probe(self, mount_program):
        probes.append(mount_program)
        if mount_program is None and not kernel:
            raise ImageError("mounting overlayfs: Operation not permitted")
    monkeypatch.setattr(image_store.ImageStore, "_probe", probe)
    store = image_store.ImageStore(str(tmp_path / "data"), mapping=None)
    assert store.driver() == driver
    assert probes == ([None] if kernel else [None, program] if program else [None])
    err = capsys.readouterr().err
    assert (said in err) if said else "warning" not in err
    assert store.driver() == driver and len(probes) <= 2, "chosen once, then kept"
    assert store.mount_program() == (program if driver == "fuse-overlayfs" else None)
