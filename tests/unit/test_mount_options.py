from oci import mounts as m


def test_flags_data_and_propagation():
    parsed = m.parse_options(["rbind", "nosuid", "ro", "rprivate", "mode=755", "size=1k"])
    assert parsed.flags == m.BIND | m.REC | m.NOSUID | m.RDONLY
    assert parsed.propagation == (m.PRIVATE | m.REC,)
    assert parsed.data == "mode=755,size=1k"
    assert parsed.is_bind


def test_later_options_win_and_clears_are_remembered():
    parsed = m.parse_options(["ro", "rw", "noexec", "exec"])
    assert parsed.flags == 0
    assert parsed.cleared == m.RDONLY | m.NOEXEC
    assert not parsed.is_bind


def test_tmpcopyup_is_an_extension_not_mount_data():
    # podman writes it on every tmpfs it asks for; the kernel refuses unknown tmpfs data
    parsed = m.parse_options(["rw", "rprivate", "nosuid", "nodev", "tmpcopyup", "size=1m"])
    assert parsed.copy_up and parsed.data == "size=1m"
    assert not m.parse_options(["tmpcopyup", "notmpcopyup"]).copy_up
