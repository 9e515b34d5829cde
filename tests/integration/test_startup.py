"""Real verbs import nothing they do not need (issue 9): -X importtime lists every
module a process imports, the forked children's included (they write to the same stderr)."""

import subprocess
import sys

from harness import HANDCAR

EXPENSIVE = {"click", "re", "enum", "json", "socket", "subprocess", "signal", "shutil",
             "dataclasses", "contextlib", "platform", "pyroute2", "platformdirs",
             "jeepney", "rootless.runtime.systemd",
             "rootless.friendly", "rootless.image", "rootless.friendly.settings",   # friendly mode's
             "urllib3", "tqdm", "zstandard"}                                       # pulls


def imported(handcar, *argv, cwd=None):
    result = subprocess.run([sys.executable, "-X", "importtime", HANDCAR, "--root",
                             str(handcar.root), *argv], capture_output=True, text=True,
                            timeout=30, cwd=cwd)
    lines = [line.rsplit("|", 1)[1] for line in result.stderr.splitlines()
             if line.startswith("import time:") and "|" in line]
    # What site imports (an editable install's finder, say) is not handcar's doing: it is
    # listed before site's own line, at the top level.
    after_site = lines[lines.index(" site") + 1:] if " site" in lines else lines
    return result, {name.strip() for name in after_site}


def test_run_and_exec_import_nothing_expensive(handcar, bundle):
    result, modules = imported(handcar, "run", "-b", bundle.args("true").write(), "fast")
    assert result.returncode == 0, result.stderr
    assert "rootless.child.init" in modules and "rootless.child.mounts" in modules   # the list is real
    assert modules & EXPENSIVE == set()
    # runtime-spec 1.2/1.3's process settings: their modules only for a config with them
    assert modules & TUNING == set()
    # runc's `run ID` in the bundle's directory (the lone-ID rule tells it from an image)
    result, modules = imported(handcar, "run", "plain", cwd=bundle.args("true").write())
    assert result.returncode == 0, result.stderr
    assert modules & EXPENSIVE == set()
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "100").write(), "box")
    result, modules = imported(handcar, "exec", "box", "true")
    assert result.returncode == 0, result.stderr
    assert modules & EXPENSIVE == set()


def test_a_new_network_namespace_imports_no_network_module(handcar, bundle):
    """lo comes up with one ioctl in the container's init (issue 17, item 6): neither
    pyroute2 nor handcar's network modules are imported, by create or by its children."""
    bundle.linux["namespaces"].append({"type": "network"})
    result, modules = imported(handcar, "run", "-b", bundle.sh("ip -o link show lo").write(),
                               "netns")
    assert result.returncode == 0, result.stderr
    assert "<LOOPBACK,UP,LOWER_UP>" in result.stdout                 # lo is really up
    assert "rootless.child.init" in modules                          # the list is real
    assert modules & EXPENSIVE == set()
    assert not {name for name in modules if name.startswith("rootless.network")}


TUNING = {"oci.tuning", "rootless.child.tuning", "rootless.runtime.support"}


def test_the_tuning_modules_come_with_the_fields_that_need_them(handcar, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 3}
    result, modules = imported(handcar, "run", "-b", bundle.args("true").write(), "tuned")
    assert result.returncode == 0, result.stderr
    assert TUNING <= modules


# What only the verbs that start a process need: the spec model, ctypes, the child side.
PROCESS_STARTING = {"oci.spec", "ctypes", "rootless.child.init", "rootless.child.mounts"}


def test_the_verbs_that_look_or_signal_import_no_process_machinery(handcar, bundle):
    handcar.ok_detached("create", "-b", bundle.args("sleep", "100").write(), "light")
    for argv, also_not in ((["start", "light"], {"oci.state"}),
                           (["state", "light"], set()),
                           (["kill", "light", "KILL"], {"oci.state"}),
                           (["delete", "--force", "light"], {"oci.state"})):
        result, modules = imported(handcar, *argv)
        assert result.returncode == 0, result.stderr
        assert "rootless.runtime.store" in modules                      # the list is real
        assert modules & (EXPENSIVE | PROCESS_STARTING | also_not) == set(), argv
