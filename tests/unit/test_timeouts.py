"""Every tier's tests run under a timeout (pytest-timeout): a hung test fails, with its
output, and the run goes on to the next one."""

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_default_timeout_is_configured_for_every_tier():
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < int(options["timeout"]) <= 600


def test_a_hung_test_fails_alone_with_its_output(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import time\n"
        "def test_hangs():\n"
        "    print('said before hanging')\n"
        "    time.sleep(600)\n"
        "def test_after_the_hang():\n"
        "    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "timeout=2",
         "test_hang.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Timeout (>2.0s) from pytest-timeout" in result.stdout
    assert "said before hanging" in result.stdout
    assert "1 failed, 1 passed" in result.stdout
