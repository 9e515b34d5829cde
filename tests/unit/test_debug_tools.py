"""handcar debug's pieces that need no container: ELF interpreters and launchers, where a
tools tree's programs and libraries are, the options' checks."""

import os
import shutil
import subprocess
import sys

import pytest

from rootless.child import debug as child_debug
from rootless.errors import HandcarError, UsageError
from rootless.runtime import debug
from rootless.system import elf

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
needs_static_busybox = pytest.mark.skipif(
    not (os.path.isfile(BUSYBOX) and elf.is_static(BUSYBOX)),
    reason="no static busybox here (scripts/test installs busybox-static)")
needs_launchers = pytest.mark.skipif(
    not elf.has_launchers(), reason=f"no launcher code for {os.uname().machine}")


def test_the_interpreter_of_a_dynamically_linked_program():
    python = os.path.realpath(sys.executable)
    interpreter = elf.interpreter(python)
    assert interpreter and interpreter.startswith("/") and "ld" in interpreter
    assert os.path.isfile(interpreter) and elf.interpreter(interpreter) is None
    assert not elf.is_static(python)


@needs_static_busybox
def test_a_static_program_names_no_interpreter():
    assert elf.interpreter(BUSYBOX) is None and elf.is_static(BUSYBOX)


def test_what_is_not_an_elf_program_names_none(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x01")
    python = os.path.realpath(sys.executable)
    cut = tmp_path / "cut"                 # the headers of a real program, no more
    cut.write_bytes(open(python, "rb").read(64))
    for path in (script, short, cut):
        assert elf.interpreter(path) is None
        assert not elf.is_static(path)
    with pytest.raises(FileNotFoundError):
        elf.interpreter(tmp_path / "missing")


@needs_launchers
def test_a_launcher_runs_its_command_with_the_arguments_and_environment(tmp_path):
    launcher = tmp_path / "launcher"
    launcher.write_bytes(elf.launcher(["/bin/sh", "-c", 'echo "$0|$1|$2|$GREETING"', "zero"]))
    launcher.chmod(0o755)
    assert elf.is_static(launcher)
    result = subprocess.run([str(launcher), "one", "two words"], capture_output=True,
                            text=True, env={"GREETING": "hi"})
    assert result.returncode == 0 and result.stdout == "zero|one|two words|hi\n"
    missing = tmp_path / "missing"
    missing.write_bytes(elf.launcher([str(tmp_path / "no-such-program")]))
    missing.chmod(0o755)
    assert subprocess.run([str(missing)]).returncode == 127


@needs_launchers
def test_a_launcher_runs_a_program_through_its_loader(tmp_path):
    """What debug's launchers do: ld.so --library-path DIRS PROGRAM ARGS."""
    python = os.path.realpath(sys.executable)
    loader = elf.interpreter(python)
    plan = child_debug.DebugPlan(mount_at="/", library_dirs=("lib", "usr/lib"))
    launcher = tmp_path / "python"
    launcher.write_bytes(elf.launcher(child_debug.loader_command(plan, python, "python",
                                                                 loader)))
    launcher.chmod(0o755)
    result = subprocess.run([str(launcher), "-S", "-c", "print(6 * 7)"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "42\n", result.stderr


def test_the_loaders_command_line():
    plan = child_debug.DebugPlan(mount_at="/.t/", library_dirs=("lib/x86_64-linux-gnu", "lib"))
    assert child_debug.loader_command(plan, "/.t/usr/bin/ls", "ls", "/.t/lib64/ld.so") == [
        "/.t/lib64/ld.so", "--library-path", "/.t/lib/x86_64-linux-gnu:/.t/lib",
        "/.t/usr/bin/ls"]
    assert child_debug.loader_command(plan, "/.t/bin/busybox", "ps", "/.t/ld.so")[3:5] == [
        "--argv0", "ps"]                       # a multi-call program learns its name


def make_tree(root, entries):
    for path, content in entries.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            os.symlink(content[0], target)
        elif content is None:
            target.mkdir()
        else:
            target.write_bytes(content)
            target.chmod(0o755)
    return root


def test_bin_and_library_directories_of_a_tools_tree(tmp_path):
    tree = make_tree(tmp_path / "tree", {
        "usr/bin/x": b"", "usr/sbin": None, "bin": ("usr/bin",), "lib": ("usr/lib",),
        "usr/lib/x86_64-linux-gnu/libc.so.6": b"", "usr/lib/libz.so": b"",
        "lib64/ld.so": b"", "usr/local/lib": None})
    assert debug.bin_dirs(tree) == ["usr/sbin", "usr/bin"]        # not the usrmerge link
    assert debug.library_dirs(tree) == ("usr/lib/x86_64-linux-gnu", "usr/local/lib",
                                        "lib64", "usr/lib")
    flat = make_tree(tmp_path / "flat", {"busybox": b""})
    assert debug.bin_dirs(flat) == [""] and debug.library_dirs(flat) == ()


@needs_launchers
def test_the_programs_of_a_toolbox_with_its_own_loader(tmp_path):
    python = os.path.realpath(sys.executable)
    loader = elf.interpreter(python)
    tree = make_tree(tmp_path / "box", {
        "usr/bin/python": open(python, "rb").read(), "usr/bin/script": b"#!/bin/sh\n",
        "usr/bin/notes.txt": b"", "usr/bin/py": ("/usr/bin/python",),
        "bin/python": b"", loader.lstrip("/"): b""})
    (tree / "usr/bin/notes.txt").chmod(0o644)
    found = dict((name, (program, ld)) for name, program, ld in debug.programs(tree))
    assert found == {"python": ("usr/bin/python", loader.lstrip("/")),
                     "py": ("usr/bin/python", loader.lstrip("/")),   # (a link inside it)
                     "script": ("usr/bin/script", "")}
    os.unlink(tree / loader.lstrip("/"))          # no loader of its own: no launchers
    assert debug.programs(tree) == ()


def test_tools_options(tmp_path, monkeypatch):
    options = debug.DebugOptions
    with pytest.raises(UsageError, match="not both"):
        debug.tools_tree(options(tools=str(tmp_path), image="x"))
    with pytest.raises(HandcarError, match="no such directory"):
        debug.tools_tree(options(tools=str(tmp_path / "missing")))
    assert debug.tools_tree(options(tools=str(tmp_path))) == str(tmp_path)
    for bad in ("relative", "/", "//", "/."):
        with pytest.raises(UsageError, match="absolute path below /"):
            debug.debug_mode(options(mount_at=bad))
    with pytest.raises(UsageError, match="--target-root and --shared"):
        debug.debug_mode(options(target_root=True, shared=True))
    assert debug.debug_mode(options(shared=True)) == child_debug.SHARED
    assert debug.debug_mode(options(target_root=True)) == child_debug.SIDECAR
    assert debug.debug_mode(options()) == child_debug.SIDELOAD


def test_without_tools_and_a_static_busybox_the_error_names_the_options(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    dynamic = tmp_path / "busybox"                 # a busybox, but not a static one
    shutil.copy2(os.path.realpath(sys.executable), dynamic)
    monkeypatch.setattr(debug, "BUSYBOX_PATHS", (str(dynamic),))
    with pytest.raises(HandcarError) as error:
        debug.tools_tree(debug.DebugOptions())
    assert "--tools DIR or --image IMAGE" in str(error.value)


@needs_static_busybox
def test_the_busybox_tree_is_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tree = debug.tools_tree(debug.DebugOptions())
    assert os.path.dirname(tree) == str(tmp_path / "handcar")
    assert elf.is_static(os.path.join(tree, "bin", "busybox"))
    assert os.readlink(os.path.join(tree, "bin", "sh")) == "busybox"
    assert debug.tools_tree(debug.DebugOptions()) == tree
    assert os.listdir(tmp_path / "handcar") == [os.path.basename(tree)]


def test_a_kernel_without_the_new_mount_api_is_named(monkeypatch):
    from rootless.system import libc

    def no_open_tree(*_args, **_kwargs):
        raise OSError(38, "Function not implemented")           # ENOSYS
    monkeypatch.setattr(libc, "open_tree", no_open_tree)
    with pytest.raises(HandcarError, match="new mount API .*Linux 5.2"):
        debug.check_kernel()
