"""Registry references (oci.reference) and containers-registries.conf(5) resolution
(oci.registries): short names, aliases, search registries, mirrors, blocked registries."""

import pytest

from oci.image import ImageError
from oci.reference import DockerReference, parse, parse_normalized
from oci.registries import (Mirror, PullSource, alias_cache_text, alias_for, candidates,
                            find_registry, merge, parse_alias_cache, short_name_choice,
                            parse_file, pull_sources, registry_insecure)

DIGEST = "sha256:" + "ab" * 32


# --- references ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("busybox", DockerReference("", "busybox", "", "")),
    ("docker://busybox:1.36", DockerReference("", "busybox", "1.36", "")),
    ("myorg/app", DockerReference("", "myorg/app", "", "")),
    ("ghcr.io/org/app:sha-1", DockerReference("ghcr.io", "org/app", "sha-1", "")),
    ("localhost/app", DockerReference("localhost", "app", "", "")),
    ("localhost:5000/a/b/c:v1", DockerReference("localhost:5000", "a/b/c", "v1", "")),
    ("127.0.0.1:5000/app@" + DIGEST, DockerReference("127.0.0.1:5000", "app", "", DIGEST)),
    ("quay.io/app:v2@" + DIGEST, DockerReference("quay.io", "app", "v2", DIGEST)),
    ("a.b/c__d/e-f.g", DockerReference("a.b", "c__d/e-f.g", "", "")),
    ("[::1]:5000/app", DockerReference("[::1]:5000", "app", "", "")),
])
def test_references_parse_as_docker_reads_them(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text,why", [
    ("", "empty"),
    ("BusyBox", "must be lowercase"),
    ("quay.io/Org/app", "must be lowercase"),
    ("busybox:", "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("busybox@sha256:xyz", "invalid digest"),
    ("a" * 64, "image ID"),
    ("bad_host.io-/app", "invalid registry name"),
    ("app//x", "invalid reference format"),
    ("app/", "invalid reference format"),
    ("a" * 256, "longer than 255"),
])
def test_bad_references_say_what_is_wrong(text, why):
    with pytest.raises(ImageError, match=why):
        parse(text)


def test_normalized_names_are_dockers():
    assert str(parse_normalized("busybox")) == "docker.io/library/busybox"
    assert str(parse_normalized("busybox").with_default_tag()) == \
        "docker.io/library/busybox:latest"
    assert str(parse_normalized("index.docker.io/busybox:1")) == "docker.io/library/busybox:1"
    assert str(parse_normalized("docker.io/myorg/app")) == "docker.io/myorg/app"
    assert str(parse_normalized("quay.io/app@" + DIGEST).with_default_tag()) == \
        "quay.io/app@" + DIGEST                    # a digest needs no tag
    assert parse_normalized("busybox:1").familiar == "busybox:1"
    assert parse_normalized("myorg/app").familiar == "myorg/app"
    assert parse_normalized("quay.io/app:1").familiar == "quay.io/app:1"


# --- registries.conf ----------------------------------------------------------------------

def conf(*texts):
    return merge([parse_file(text, f"file{n}.conf") for n, text in enumerate(texts, 1)],
                 [f"file{n}.conf" for n in range(1, len(texts) + 1)])


def names(found):
    return [str(candidate.reference) for candidate in found]


def test_nothing_configured_means_docker_io():
    assert names(candidates(conf(), "busybox")) == ["docker.io/library/busybox:latest"]
    assert names(candidates(conf(""), "myorg/app:1")) == ["docker.io/myorg/app:1"]


def test_search_registries_are_tried_in_order():
    found = candidates(conf('unqualified-search-registries = ["quay.io", "docker.io"]'),
                       "app/x:2")
    assert names(found) == ["quay.io/app/x:2", "docker.io/app/x:2"]
    assert found[0].origin == "unqualified-search-registries"
    # a qualified name is never searched
    assert names(candidates(conf('unqualified-search-registries = ["quay.io"]'),
                            "localhost:5000/app")) == ["localhost:5000/app:latest"]


def test_an_empty_search_list_refuses_short_names():
    with pytest.raises(ImageError, match="no unqualified-search-registries are defined in "
                                         "file1.conf"):
        candidates(conf("unqualified-search-registries = []"), "busybox")


def test_aliases_win_and_keep_the_tag_or_digest():
    c = conf('unqualified-search-registries = ["quay.io"]\n'
             '[aliases]\n"box" = "localhost:5000/handcar/busybox"\n'
             '"org/app" = "docker.io/app"')
    assert names(candidates(c, "box:1")) == ["localhost:5000/handcar/busybox:1"]
    assert names(candidates(c, "box@" + DIGEST)) == ["localhost:5000/handcar/busybox@" + DIGEST]
    assert names(candidates(c, "org/app")) == ["docker.io/library/app:latest"]
    assert candidates(c, "box")[0].origin == \
        "the alias box = localhost:5000/handcar/busybox (registries.conf)"


def test_the_alias_cache_comes_first_and_an_empty_alias_resets_one():
    c = conf('unqualified-search-registries = ["quay.io"]\n'
             '[aliases]\n"box" = "a.io/box"\n"gone" = "a.io/gone"', '[aliases]\n"gone" = ""')
    cached = parse_alias_cache('[aliases]\n  "box" = "b.io/tools/box"\n', "cache.conf")
    assert names(candidates(c, "box:2", cached)) == ["b.io/tools/box:2"]
    assert "short-name alias cache" in candidates(c, "box", cached)[0].origin
    assert names(candidates(c, "gone")) == ["quay.io/gone:latest"]
    assert parse_alias_cache(alias_cache_text({"box": "b.io/box", "a/b": "c.io/a/b"}),
                             "x") == {"box": "b.io/box", "a/b": "c.io/a/b"}
    with pytest.raises(ImageError, match="cache.conf: alias 'box' = 'box' must be a fully"):
        parse_alias_cache('[aliases]\n"box" = "box"\n', "cache.conf")


@pytest.mark.parametrize("mode,terminal,expected", [
    ("", False, "all"), ("", True, "prompt"),                  # permissive, the default
    ("permissive", False, "all"), ("permissive", True, "prompt"),
    ("disabled", False, "all"), ("disabled", True, "all"),
    ("enforcing", True, "prompt"), ("enforcing", False, ImageError),
])
def test_short_name_mode_decides_what_an_ambiguous_short_name_does(mode, terminal, expected):
    setting = f'short-name-mode = "{mode}"\n' if mode else ""
    c = conf(setting + 'unqualified-search-registries = ["quay.io", "docker.io"]\n'
             '[aliases]\n"box" = "a.io/box"')
    found = candidates(c, "app")
    if expected is ImageError:
        with pytest.raises(ImageError, match="app: short-name resolution enforced but cannot "
                                             "prompt without a TTY .*quay.io/app:latest, "
                                             "docker.io/library/app:latest"):
            short_name_choice(c, "app", found, terminal)
        return
    assert short_name_choice(c, "app", found, terminal) == expected
    # never ambiguous: an alias, one search registry, a qualified name
    for text in ("box", "quay.io/app"):
        assert short_name_choice(c, text, candidates(c, text), terminal) == "all"
    one = conf(setting + 'unqualified-search-registries = ["quay.io"]')
    assert short_name_choice(one, "app", candidates(one, "app"), terminal) == "all"
    assert alias_for("app:3", found[1]) == ("app", "docker.io/library/app")


def test_later_files_win_as_containers_image_merges_them():
    c = conf('unqualified-search-registries = ["a.io"]\n[aliases]\n"x" = "a.io/x"\n'
             '"y" = "a.io/y"\n[[registry]]\nlocation = "a.io"\ninsecure = true',
             '[aliases]\n"x" = "b.io/x"\n[[registry]]\nlocation = "a.io"\nblocked = true',
             'unqualified-search-registries = ["c.io"]')
    assert c.search == ("c.io",)
    assert c.aliases == {"x": "b.io/x", "y": "a.io/y"}
    assert len(c.registries) == 1 and c.registries[0].blocked \
        and not c.registries[0].insecure


def test_mirrors_come_before_the_registry_as_they_allow():
    c = conf('[[registry]]\nprefix = "docker.io"\nlocation = "registry.example.com/hub"\n'
             '[[registry.mirror]]\nlocation = "m1.local:5000/cache"\n'
             '[[registry.mirror]]\nlocation = "m2.local"\ninsecure = true\n'
             'pull-from-mirror = "digest-only"\n'
             '[[registry.mirror]]\nlocation = "m3.local"\npull-from-mirror = "tag-only"\n')
    tagged = parse_normalized("busybox:1")
    assert pull_sources(c, tagged) == [
        PullSource(parse_normalized("m1.local:5000/cache/library/busybox:1"), False, True),
        PullSource(parse_normalized("m3.local/library/busybox:1"), False, True),
        PullSource(parse_normalized("registry.example.com/hub/library/busybox:1"), False,
                   False)]
    digested = parse_normalized("busybox@" + DIGEST)
    assert [str(s.reference) for s in pull_sources(c, digested)] == [
        "m1.local:5000/cache/library/busybox@" + DIGEST, "m2.local/library/busybox@" + DIGEST,
        "registry.example.com/hub/library/busybox@" + DIGEST]
    assert registry_insecure(c, "m2.local") and not registry_insecure(c, "m1.local:5000")


def test_mirror_by_digest_only_skips_mirrors_for_tags():
    c = conf('[[registry]]\nlocation = "quay.io"\nmirror-by-digest-only = true\n'
             '[[registry.mirror]]\nlocation = "m.local"')
    assert [s.mirror for s in pull_sources(c, parse_normalized("quay.io/a:1"))] == [False]
    assert [s.mirror for s in pull_sources(c, parse_normalized("quay.io/a@" + DIGEST))] == \
        [True, False]


def test_the_longest_prefix_matches_at_a_boundary():
    c = conf('[[registry]]\nprefix = "example.com/foo"\nlocation = "internal.io/bar"\n'
             '[[registry]]\nprefix = "example.com"\nlocation = "other.io"\n'
             '[[registry]]\nprefix = "*.corp.io"\nblocked = true')
    assert str(pull_sources(c, parse_normalized("example.com/foo/app:1"))[-1].reference) == \
        "internal.io/bar/app:1"
    # example.com/foobar is not under example.com/foo
    assert str(pull_sources(c, parse_normalized("example.com/foobar:1"))[-1].reference) == \
        "other.io/foobar:1"
    assert find_registry(c, "unrelated.io/x:1") is None
    with pytest.raises(ImageError, match="registry git.corp.io is blocked in file1.conf"):
        pull_sources(c, parse_normalized("git.corp.io/x:1"))
    assert find_registry(c, "corp.io/x") is None


def test_the_version_1_format_is_read():
    c = conf('[registries.search]\nregistries = ["quay.io"]\n'
             '[registries.insecure]\nregistries = ["localhost:5000"]\n'
             '[registries.block]\nregistries = ["evil.io"]')
    assert c.search == ("quay.io",)
    assert registry_insecure(c, "localhost:5000")
    with pytest.raises(ImageError, match="blocked"):
        pull_sources(c, parse_normalized("evil.io/x"))


@pytest.mark.parametrize("text,why", [
    ("unqualified-search-registries = [", "not valid TOML"),
    ("unqualified-search-registries = 'docker.io'", "must be a list of strings"),
    ("unqualified-search-registries = ['https://docker.io']", "not a registry host name"),
    ("short-name-mode = 'loose'", "short-name-mode must be one of"),
    ("[aliases]\n'x' = 'y'", "must be a fully qualified name"),
    ("[aliases]\n'quay.io/x' = 'quay.io/x'", "must be a short name"),
    ("[aliases]\n'x' = 'quay.io/x:1'", "without tag or digest"),
    ("[[registry]]\ninsecure = true", "needs a location or a prefix"),
    ("[[registry]]\nlocation = 'quay.io'\nmirror = [{insecure = true}]", "needs a location"),
    ("[[registry]]\nlocation = 'quay.io'\ninsecure = 'yes'", "insecure must be true or false"),
    ("[[registry]]\nlocation = 'quay.io'\ncolour = 'red'", "unknown key 'colour'"),
    ("[[registry]]\nlocation = 'quay.io:1/x:tag'", "must not have a tag"),
    ("[[registry]]\nprefix = '*.x.io'\nlocation = 'y.io'", "takes no location"),
    ("[[registry]]\nlocation = 'q.io'\n[[registry.mirror]]\nlocation = 'm.io'\n"
     "pull-from-mirror = 'sometimes'", "pull-from-mirror must be one of"),
    ("[registries.search]\nregistries = []\n[aliases]\n'x' = 'q.io/x'", "mixes"),
    ("colour = 'red'", "unknown setting 'colour'"),
])
def test_bad_files_are_refused_by_name(text, why):
    with pytest.raises(ImageError, match=f"^file.conf: .*{why}"):
        parse_file(text, "file.conf")


def test_a_mirror_is_a_record():
    c = conf('[[registry]]\nlocation = "q.io"\n[[registry.mirror]]\nlocation = "m.io"')
    assert c.registries[0].mirrors == (Mirror("m.io", False, "all"),)
