"""What the registry tier's conftest and tests share: the test credentials, skopeo."""

import os
import shutil
import subprocess

SKOPEO = shutil.which("skopeo")
USER, PASSWORD = "handcar", "s3cret-pa55"                 # the htpasswd registry's
TOKEN_USER, TOKEN_PASSWORD = "alice", "wonder-land-7"     # the token server's


def skopeo(*args, timeout=300):
    result = subprocess.run([SKOPEO, "--insecure-policy", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, TMPDIR=os.environ.get("TMPDIR", "/tmp")))
    assert result.returncode == 0, f"skopeo {' '.join(map(str, args))}: {result.stderr}"
    return result
