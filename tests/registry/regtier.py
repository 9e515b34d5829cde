"""What the registry tier's conftest and tests share: the test credentials, skopeo."""

import os
import shutil
import subprocess

SKOPEO = shutil.which("skopeo")
USER, PASSWORD = "handcar", "s3cret-pa55"                 # the htpasswd registry's
TOKEN_USER, TOKEN_PASSWORD = "alice", "wonder-land-7"     # the token server's
IDENTITY_TOKEN = "refresh-8f14e45fceea167a"              # its OAuth2 refresh token for alice


def skopeo(*args, timeout=300):
    result = subprocess.run([SKOPEO, "--insecure-policy", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, TMPDIR=os.environ.get("TMPDIR", "/tmp")))
    assert result.returncode == 0, f"skopeo {' '.join(map(str, args))}: {result.stderr}"
    return result


HELPER = '''#!{python}
"""docker-credential-{name}, a credential helper of the tests: keeps what `store` is given
in {keep}, answers get, erase and list from it; records every call (its argv and stdin)
as a JSON line in {calls}. Both files are 0600: they hold secrets."""
import json, os, sys
os.umask(0o077)
action, data = sys.argv[1:], sys.stdin.read()
with open({calls!r}, "a") as f:
    f.write(json.dumps({{"argv": action, "stdin": data}}) + "\\n")
try:
    with open({keep!r}) as f:
        kept = json.load(f)
except FileNotFoundError:
    kept = {{}}
fixed = {fixed!r}
if action == ["store"]:
    entry = json.loads(data)
    kept[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
elif action == ["get"]:
    server = data.strip()
    if fixed is not None and server == fixed[0]:
        kept[server] = fixed[1:]
    if server not in kept:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": server, "Username": kept[server][0],
                      "Secret": kept[server][1]}}))
elif action == ["erase"]:
    if kept.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
elif action == ["list"]:
    print(json.dumps({{server: user for server, (user, _) in kept.items()}}))
else:
    print("unknown action")
    sys.exit(1)
with open({keep!r}, "w") as f:
    json.dump(kept, f)
'''


class CredentialHelper:
    """A real docker-credential-NAME program in `directory` (put it on PATH with
    .path()): store/get/erase/list over a file of its own; `fixed` = (server, user,
    secret) is an answer `get` always has. .calls() is what it was run with."""

    def __init__(self, directory, name, fixed=None):
        import sys
        self.directory = directory
        self.keep = directory / f"{name}-kept.json"
        self.calls_file = directory / f"{name}-calls.jsonl"
        program = directory / f"docker-credential-{name}"
        program.write_text(HELPER.format(python=sys.executable, name=name, keep=str(self.keep),
                                         calls=str(self.calls_file), fixed=fixed))
        os.chmod(program, 0o755)

    def path(self):
        return f"{self.directory}:{os.environ['PATH']}"

    def calls(self):
        import json
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def kept(self):
        import json
        return json.loads(self.keep.read_text()) if self.keep.exists() else {}
