"""What each hot verb imports: the start-up budget (issue 9) in a form a test can hold.

These are not timings (a benchmark measures those: scripts/bench); they pin down which
expensive modules a verb must not load, so that a stray import cannot slip back in.
"""

import os
import subprocess
import sys

import pytest

EXPENSIVE = ("click", "re", "enum", "json", "socket", "subprocess", "signal", "shutil",
             "dataclasses", "contextlib", "platform", "pyroute2", "platformdirs",
             "jeepney", "rootless.runtime.systemd",
             "rootless.friendly", "rootless.image", "rootless.friendly.settings",   # friendly mode's
             "urllib3", "tqdm", "zstandard")                                       # pulls

# The verb runs against a state root with nothing in it: it fails (no such container)
# after parsing, opening the store and importing what its implementation needs.
VERBS = [["state", "x"], ["start", "x"], ["kill", "x", "KILL"], ["delete", "x"],
         ["list", "-q"], ["create", "-b", "/nonexistent", "x"], ["run", "-b", "/nonexistent", "x"],
         ["exec", "x", "true"]]


@pytest.mark.parametrize("argv", VERBS, ids=" ".join)
def test_hot_verbs_do_not_import_expensive_modules(argv, tmp_path):
    code = ("import sys\n"
            "from rootless.cli.main import run\n"
            "run(sys.argv[1:])\n"
            f"print(sorted(m for m in {EXPENSIVE!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-S", "-c", code, "--root", str(tmp_path), *argv],
                            capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_forking_leaves_out_what_only_the_children_or_create_need():
    # create and exec import rootless.child.init to fork; the rootfs, rlimits and host facts
    # are the children's business, imported by the intermediate while the parent maps
    # it, and the user namespace plan create's (exec has none to make). The system calls
    # go through ctypes' C half: the ctypes package is ~1 ms (seccomp alone imports it).
    code = ("import sys\n"
            "import rootless.runtime.create, rootless.runtime.execute, rootless.child.init\n"
            "print(sorted(m for m in ('rootless.child.mounts', 'rootless.child.identity', "
            "'rootless.runtime.host', 'resource', 'rootless.runtime.userns', 'ctypes') "
            "if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.stdout.strip() == "[]", result.stderr


def test_a_new_network_namespace_alone_loads_no_network_module():
    # lo comes up in the container's init with one ioctl: create sets up nothing for a
    # bundle whose only network wish is a namespace of its own (issue 17, item 6)
    code = ("import sys\nfrom oci import spec\n"
            "from rootless.runtime.network import setup\n"
            "config = {'ociVersion': '1.2.0', 'root': {'path': 'rootfs'},\n"
            "          'process': {'args': ['sh'], 'cwd': '/'},\n"
            "          'linux': {'namespaces': [{'type': 'mount'}, {'type': 'network'}]}}\n"
            "print(setup(spec.from_json(config), '/nonexistent', None))\n"
            "print(sorted(m for m in sys.modules if m.startswith(('rootless.network', "
            "'pyroute2'))))\n")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.stdout.split("\n")[:2] == ["None", "[]"], result.stderr
