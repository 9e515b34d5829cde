"""contrib/completions: click's shell completion scripts, asking handcar what to complete."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parents[2] / "contrib" / "completions"


@pytest.fixture
def on_path(tmp_path):
    """A PATH whose `handcar` is this checkout's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "handcar"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rootless "$@"\n')
    launcher.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def bash_complete(path, *words):
    """What the installed bash completion offers for the last of `words`."""
    script = (f"source {COMPLETIONS / 'handcar.bash'}; COMP_WORDS=(handcar {' '.join(words)}); "
              f"COMP_CWORD={len(words)}; _handcar_completion handcar; "
              'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            env={"PATH": path}, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completes_verbs_flags_and_container_ids(on_path, tmp_path):
    assert bash_complete(on_path, "cre") == ["create"]
    assert "--pid-file" in bash_complete(on_path, "create", "--pi")
    root = tmp_path / "state"
    for container_id in ("web", "db", "worker"):
        (root / container_id).mkdir(parents=True)
        (root / container_id / "state.json").write_text("{}")
    root.chmod(0o700)
    assert bash_complete(on_path, "--root", str(root), "kill", "w") == ["web", "worker"]


def test_the_generation_step_writes_every_shells_script(on_path, tmp_path):
    subprocess.run([COMPLETIONS / "generate", tmp_path], check=True, env={"PATH": on_path},
                   timeout=60)
    for name, shell in (("handcar.bash", "bash"), ("_handcar", "zsh"), ("handcar.fish", "fish")):
        generated = (tmp_path / name).read_text()
        assert f"_HANDCAR_COMPLETE={shell}_complete" in generated
        # the committed scripts are click's for handcar, for the same shell
        assert f"_HANDCAR_COMPLETE={shell}_complete" in (COMPLETIONS / name).read_text()
