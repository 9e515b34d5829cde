"""crun's command line, which tools written for crun use: --config, delete --regex,
exec --cgroup, --log=file:PATH, --log-level."""

import json
import os

import pytest

from harness import HANDCAR


def test_run_and_create_with_config(handcar, bundle, tmp_path):
    """--config FILE names the config; the bundle is the current directory unless -b
    says otherwise, and a relative root.path is the bundle's."""
    bundle.own_rootfs()                                   # root.path: "rootfs", relative
    (bundle.rootfs / "marker").write_text("from the bundle's rootfs\n")
    bundle.sh("cat /marker")
    config = tmp_path / "elsewhere.json"
    config.write_text(json.dumps(bundle.config))
    assert not (bundle.path / "config.json").exists()
    result = handcar("run", "--config", str(config), "c1", cwd=bundle.path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the bundle's rootfs\n"
    result = handcar("run", "-f", os.path.relpath(config, tmp_path), "-b", str(bundle.path),
                     "c2", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "from the bundle's rootfs\n", result.stderr
    handcar.ok_detached("create", "--config", str(config), "--bundle", str(bundle.path), "c3")
    state = handcar.state("c3")
    assert state["bundle"] == str(bundle.path) and state["status"] == "created"
    missing = handcar("create", "--config", str(tmp_path / "nope.json"), "c4", cwd=bundle.path)
    assert missing.returncode == 1 and "--config" in missing.stderr and "nope.json" in missing.stderr


def test_delete_regex(handcar, bundle):
    path = bundle.args("sleep", "30").write()
    for name in ("web-1", "web-2", "db-1"):
        handcar.ok_detached("create", "-b", path, name)
    handcar.ok("delete", "--regex", "^web-")
    assert handcar("list", "-q").stdout.split() == ["db-1"]
    handcar.ok("start", "db-1")
    result = handcar("delete", "-r", "db")              # running, no --force: a warning
    assert result.returncode == 0 and "warning: deleting db-1" in result.stderr
    handcar.ok("delete", "-r", "-f", "d.-1")
    assert handcar("list", "-q").stdout == ""
    bad = handcar("delete", "--regex", "(")
    assert bad.returncode == 2 and "--regex" in bad.stderr


def test_exec_cgroup_runs_in_a_sub_cgroup(handcar, bundle):
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "30").write(), "cg")
    own = handcar.ok("exec", "cg", "cat", "/proc/self/cgroup").stdout
    if "0::/" not in own:
        pytest.skip("no cgroup v2 hierarchy here to make a sub-cgroup in")
    record = json.loads((handcar.root / "cg" / "state.json").read_text())
    leaf = record.get("cgroup")
    if not leaf:
        result = handcar("exec", "--cgroup", "sub", "cg", "true")
        assert result.returncode == 1 and "has no cgroup of its own" in result.stderr
        return
    os.mkdir(os.path.join(leaf, "sub"))
    out = handcar.ok("exec", "--cgroup", "sub", "cg", "cat", "/proc/self/cgroup").stdout
    assert out.strip().endswith("/sub"), out
    for bad, why in (("../x", "without '..'"), ("none", "does not exist")):
        result = handcar("exec", "--cgroup", bad, "cg", "true")
        assert result.returncode == 1 and why in result.stderr, result.stderr


def test_log_file_spelling_and_level(handcar, bundle, tmp_path):
    log = tmp_path / "crun.log"
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    result = handcar(f"--log=file:{log}", "--log-format=json", "run", "-b",
                     bundle.args("true").write(), "l1")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["level"] for e in entries] == ["warning"] and "poststart" in entries[0]["msg"]
    quiet = handcar("--log-level", "error", "run", "-b", bundle.write(), "l2")
    assert quiet.returncode == 0 and quiet.stderr == ""
    refused = handcar("--log=journald:handcar", "list")
    assert refused.returncode == 2 and "file" in refused.stderr


def test_version_prints_crun_feature_words():
    import subprocess
    out = subprocess.run([HANDCAR, "--version"], capture_output=True, text=True).stdout
    assert out.startswith("handcar version ") and "+CAP" in out.splitlines()[-1]
