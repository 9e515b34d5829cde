"""`handcar run`: which mode a command line means (the rule in `run --help`)."""

import pytest

from rootless.cli import commands
from rootless.runtime import create
from rootless.friendly import run as friendly
from rootless.cli import verbs
from rootless.errors import UsageError


@pytest.fixture
def calls(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(create, "run", lambda store, cid, bundle, options, **kw:
                        seen.append(("runc", cid)) or 0)
    monkeypatch.setattr(friendly, "run", lambda store, image, command, flags:
                        seen.append(("friendly", image, tuple(command))) or 0)
    monkeypatch.chdir(tmp_path)
    return seen


def run(argv):
    global_values, verb, values = verbs.parse(["run", *argv])
    return commands.run(commands.Globals(**global_values), **values)


def test_the_rule(calls, tmp_path):
    run(["-b", "/bundle", "box"])
    run(["--rm", "busybox"])
    run(["busybox", "echo", "hi"])
    run(["--", "make", "--", "test"])
    run(["busybox"])                                  # no ./config.json: an image
    (tmp_path / "config.json").write_text("{}")
    run(["box"])                                      # ./config.json: runc's run ID
    assert calls == [("runc", "box"), ("friendly", "busybox", ()),
                     ("friendly", "busybox", ("echo", "hi")),
                     ("friendly", None, ("make", "--", "test")),
                     ("friendly", "busybox", ()), ("runc", "box")]


def test_ambiguity_and_mixtures_are_refused(calls, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "rootfs").mkdir()
    with pytest.raises(UsageError, match="add -b . for runc mode"):
        run(["rootfs"])
    with pytest.raises(UsageError, match="--pid-file is a runc-mode flag"):
        run(["--pid-file", "/p", "--rm", "img"])
    with pytest.raises(UsageError, match="exactly one container ID"):
        run(["-b", ".", "a", "b"])
    with pytest.raises(UsageError, match="after --"):
        run(["--"])
    assert calls == []


def test_clustered_short_flags_before_dashes():
    options = verbs.VERBS["run"].options
    for argv in (["--rm", "-ie", "FOO=1", "--", "sh"], ["-it", "--", "sh"],
                 ["-eFOO=1", "--", "sh"], ["-e", "A", "--", "sh"]):
        assert verbs.mark_double_dash(argv, options)[-2:] == [verbs.DASHES, "sh"], argv
    # a "--" that is an option's value, or the command's own, stays as it is
    assert verbs.mark_double_dash(["-e", "--", "img"], options) == ["-e", "--", "img"]
    assert verbs.mark_double_dash(["img", "--", "x"], options) == ["img", "--", "x"]


def test_publish_all_takes_the_images_exposed_ports():
    from oci.runspec import ImageConfig, RunError
    image = ImageConfig(exposed_ports=("80/tcp", "53/udp"))
    slirp, networks, ports = friendly._network("slirp4netns", ["127.0.0.1:8080:8080"], image)
    assert networks == ()
    assert slirp.dns == "10.0.2.3"
    assert ports[0] == "127.0.0.1:8080:8080/tcp"
    assert ports[1].startswith("0.0.0.0:") and ports[1].endswith(":80/tcp")
    assert ports[2].endswith(":53/udp")
    assert friendly._network("host", [], None) == (None, (), ())
    with pytest.raises(RunError, match="-p needs"):
        friendly._network("none", ["80:80"], None)
