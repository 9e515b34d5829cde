"""What the tests of the image store share: a container mapping, pulling into a store,
and the tree an image's container sees (its layers mounted as the container's root is,
in the user namespace, walked and described)."""

import json
import os
import stat

from oci.image import host_platform
from rootless.image.progress import Quiet
from rootless.image.pull import pull
from rootless.image.worker import in_userns, worker_call
from rootless.runtime import userns
from rootless.runtime.store import user_name


def mapping():
    """A container's mapping: 0 is the caller, 1.. its subordinate ids."""
    return userns.default_plan(os.geteuid(), os.getegid(), user_name(os.geteuid()))


def pull_into(store, text, platform=None):
    return pull(store, text, platform or host_platform(os.uname().machine), Quiet())


def tree(store, image, scratch):
    """{path: {"type", "mode", "uid", "gid", "ino", "xattrs" (name: hex), "data" or
    "target"}} of the image's root as a container sees it (ids as inside the
    container)."""
    os.makedirs(scratch)
    for part in ("upper", "work", "merged"):
        os.mkdir(os.path.join(scratch, part))
    if store.driver() != "vfs":
        lowers = [f"l/{hex_id[:12]}" for hex_id in reversed(image.chain)]
    else:
        lowers = [store.lower_dirs(image)[-1]]
    try:
        in_userns(store.mapping, "describe_tree", store.root, lowers, str(scratch),
                  store.driver(), store.mount_program())
        with open(os.path.join(scratch, "tree.json")) as f:
            return json.load(f)
    finally:
        in_userns(store.mapping, "remove_tree", str(scratch))


@worker_call
def describe_tree(_context, store_root, lowers, scratch, driver, program):
    from rootless.image.unpack import mount_overlay, overlay_options
    from rootless.system import libc
    if driver != "vfs":                    # the kernel's overlayfs or fuse-overlayfs
        root = os.path.join(scratch, "merged")
        libc.unshare(libc.CLONE_NEWNS)
        os.chdir(store_root)
        mount_overlay(program, root, overlay_options(
            lowers, os.path.join(scratch, "upper"), os.path.join(scratch, "work")), scratch)
    else:
        root = lowers[0]
    found = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            entry = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                     "ino": st.st_ino, "nlink": st.st_nlink, "xattrs": {
                         name: os.getxattr(path, name, follow_symlinks=False).hex()
                         for name in os.listxattr(path, follow_symlinks=False)}}
            if stat.S_ISLNK(st.st_mode):
                entry.update(type="symlink", target=os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                entry.update(type="dir")
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry.update(type="file", data=f.read(4096).decode(errors="replace"))
            else:
                entry.update(type="other", rdev=st.st_rdev)
            found[os.path.relpath(path, root)] = entry
    with open(os.path.join(scratch, "tree.json"), "w") as f:
        json.dump(found, f)
