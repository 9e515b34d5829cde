"""containers-registries.conf(5), as podman, skopeo and buildah read it: which registries
a short name means, and where a pull of a name actually goes (mirrors, blocked and
insecure registries). Pure: the engine finds and reads the files (rootless/image/config.py)
and hands their text here, in the order they apply.

    unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]
    short-name-mode = "enforcing"      # or "permissive" (when unset), "disabled"
    [aliases]
    "fedora" = "registry.fedoraproject.org/fedora"
    "oldname" = ""                     # no alias (resets one an earlier file set)
    [[registry]]
    prefix = "example.com/foo"         # optional: location when absent; "*.example.com"
    location = "internal.example.com/bar"
    insecure = false                   # plain HTTP or an unverified certificate allowed
    blocked = false                    # pulls from it are refused
    mirror-by-digest-only = false
    [[registry.mirror]]
    location = "mirror.example.com/bar"
    insecure = false
    pull-from-mirror = "all"           # or "digest-only", "tag-only"

Files merge as containers/image merges them: a later file's unqualified-search-registries
and short-name-mode replace the earlier ones, aliases merge key by key, [[registry]]
tables merge by prefix. The version 1 format ([registries.search], [registries.insecure],
[registries.block]) is read too.

A short name with no alias and several search registries is ambiguous: short-name-mode
says what then (short_name_choice), as containers/image's pkg/shortnames does. The
choice a user makes at the prompt is recorded as an alias in the short-name alias cache
(~/.cache/containers/short-name-aliases.conf, TOML with an [aliases] table), whose
aliases come before those of registries.conf.
"""

import tomllib

from .image import ImageError
from .record import Record
from .reference import DEFAULT_DOMAIN, parse, parse_normalized, qualify

PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")
SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")
DEFAULT_SHORT_NAME_MODE = "permissive"     # containers/image's when no file sets one


class Mirror(Record):
    FIELDS = {"location": "", "insecure": False, "pull_from_mirror": "all"}


class Registry(Record):
    FIELDS = {"prefix": "", "location": "", "insecure": False, "blocked": False,
              "mirror_by_digest_only": False, "mirrors": (), "source": ""}


class RegistriesConf(Record):
    """The merged configuration. `search` is None when no file set
    unqualified-search-registries (then docker.io alone, as docker does)."""
    FIELDS = {"search": None, "aliases": {}, "registries": (), "short_name_mode": "",
              "sources": ()}

    @property
    def search_registries(self):
        return tuple(self.search) if self.search is not None else (DEFAULT_DOMAIN,)

    @property
    def mode(self):
        return self.short_name_mode or DEFAULT_SHORT_NAME_MODE


class Candidate(Record):
    """A fully qualified reference a short (or long) name may mean, and why; `searched`
    when it is a search registry's (an ambiguity short-name-mode is about)."""
    FIELDS = {"reference": None, "origin": "", "searched": False}


class PullSource(Record):
    """Where to pull `reference` from: the registry itself or one of its mirrors, with
    the name rewritten for it."""
    FIELDS = {"reference": None, "insecure": False, "mirror": False}


# --- reading ------------------------------------------------------------------------------

def parse_file(text, where):
    """One file's settings: a dict with the keys it sets (search, short_name_mode,
    aliases, registries), for `merge`. ImageError naming the file and the problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ImageError(f"{where}: not valid TOML: {err}") from None
    v1 = document.get("registries")
    v2_keys = {"unqualified-search-registries", "registry", "aliases", "short-name-mode"}
    if v1 is not None and v2_keys & set(document):
        raise ImageError(f"{where}: mixes the version 1 [registries.*] tables with "
                         "version 2 settings")
    if v1 is not None:
        return _parse_v1(v1, where)
    settings = {}
    if "unqualified-search-registries" in document:
        search = _strings(document["unqualified-search-registries"],
                          f"{where}: unqualified-search-registries")
        for host in search:
            _check_host(host, f"{where}: unqualified-search-registries")
        settings["search"] = tuple(search)
    if "short-name-mode" in document:
        mode = document["short-name-mode"]
        if mode not in SHORT_NAME_MODES:
            raise ImageError(f"{where}: short-name-mode must be one of "
                             f"{', '.join(SHORT_NAME_MODES)}, not {mode!r}")
        settings["short_name_mode"] = mode
    aliases = document.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ImageError(f"{where}: [aliases] must be a table")
    settings["aliases"] = {}
    for short, value in aliases.items():
        settings["aliases"][_alias_key(short, where)] = _alias_value(short, value, where)
    tables = document.get("registry", [])
    if not isinstance(tables, list):
        raise ImageError(f"{where}: registry must be an array of tables ([[registry]])")
    settings["registries"] = [_parse_registry(table, f"{where}: [[registry]] #{n}", where)
                              for n, table in enumerate(tables, 1)]
    unknown = set(document) - v2_keys - {"credential-helpers"}
    if unknown:
        raise ImageError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    return settings


def _parse_v1(v1, where):
    if not isinstance(v1, dict):
        raise ImageError(f"{where}: [registries] must be a table")
    settings = {"aliases": {}, "registries": []}

    def hosts(kind):
        table = v1.get(kind, {})
        if not isinstance(table, dict):
            raise ImageError(f"{where}: [registries.{kind}] must be a table")
        return _strings(table.get("registries", []), f"{where}: registries.{kind}")
    if "search" in v1:
        settings["search"] = tuple(hosts("search"))
    flagged = {}
    for kind in ("insecure", "block"):
        for host in hosts(kind):
            flagged.setdefault(host, set()).add(kind)
    for host, kinds in flagged.items():
        settings["registries"].append(Registry(prefix=host, location=host,
                                               insecure="insecure" in kinds,
                                               blocked="block" in kinds, source=where))
    return settings


def _parse_registry(table, what, where):
    if not isinstance(table, dict):
        raise ImageError(f"{what}: must be a table")
    known = {"prefix", "location", "insecure", "blocked", "mirror-by-digest-only", "mirror"}
    unknown = set(table) - known
    if unknown:
        raise ImageError(f"{what}: unknown key {sorted(unknown)[0]!r}")
    location = _string(table.get("location", ""), f"{what}: location")
    prefix = _string(table.get("prefix", ""), f"{what}: prefix") or location
    if not prefix:
        raise ImageError(f"{what}: needs a location or a prefix")
    if prefix.startswith("*."):
        if location:
            raise ImageError(f"{what}: a wildcard prefix ({prefix}) takes no location")
        _check_host(prefix[2:], f"{what}: prefix")
    else:
        _check_location(prefix, f"{what}: prefix")
        location = location or prefix
        _check_location(location, f"{what}: location")
    mirrors = table.get("mirror", [])
    if not isinstance(mirrors, list):
        raise ImageError(f"{what}: mirror must be an array of tables ([[registry.mirror]])")
    parsed_mirrors = []
    for n, mirror in enumerate(mirrors, 1):
        mirror_what = f"{what} mirror #{n}"
        if not isinstance(mirror, dict):
            raise ImageError(f"{mirror_what}: must be a table")
        unknown = set(mirror) - {"location", "insecure", "pull-from-mirror"}
        if unknown:
            raise ImageError(f"{mirror_what}: unknown key {sorted(unknown)[0]!r}")
        mirror_location = _string(mirror.get("location", ""), f"{mirror_what}: location")
        if not mirror_location:
            raise ImageError(f"{mirror_what}: needs a location")
        _check_location(mirror_location, f"{mirror_what}: location")
        pull_from = mirror.get("pull-from-mirror", "all") or "all"
        if pull_from not in PULL_FROM_MIRROR:
            raise ImageError(f"{mirror_what}: pull-from-mirror must be one of "
                             f"{', '.join(PULL_FROM_MIRROR)}, not {pull_from!r}")
        parsed_mirrors.append(Mirror(mirror_location, _bool(mirror.get("insecure", False),
                                                            f"{mirror_what}: insecure"),
                                     pull_from))
    digest_only = _bool(table.get("mirror-by-digest-only", False),
                        f"{what}: mirror-by-digest-only")
    if digest_only and any(m.pull_from_mirror != "all" for m in parsed_mirrors):
        raise ImageError(f"{what}: pull-from-mirror cannot be used with "
                         "mirror-by-digest-only")
    return Registry(prefix=prefix, location=location,
                    insecure=_bool(table.get("insecure", False), f"{what}: insecure"),
                    blocked=_bool(table.get("blocked", False), f"{what}: blocked"),
                    mirror_by_digest_only=digest_only, mirrors=tuple(parsed_mirrors),
                    source=where)


def merge(settings_in_order, sources=()):
    """The RegistriesConf of several files' settings, later ones winning."""
    search, mode, aliases, registries = None, "", {}, {}
    for settings in settings_in_order:
        if "search" in settings:
            search = settings["search"]
        mode = settings.get("short_name_mode", mode)
        aliases.update(settings.get("aliases", {}))
        for registry in settings.get("registries", ()):
            registries[registry.prefix] = registry
    return RegistriesConf(search=search, aliases=aliases,
                          registries=tuple(registries.values()), short_name_mode=mode,
                          sources=tuple(sources))


def _string(value, what):
    if not isinstance(value, str):
        raise ImageError(f"{what} must be a string")
    return value


def _bool(value, what):
    if not isinstance(value, bool):
        raise ImageError(f"{what} must be true or false")
    return value


def _strings(value, what):
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ImageError(f"{what} must be a list of strings")
    return value


def _check_host(host, what):
    """A registry host[:port] (no path, no scheme)."""
    if not host or "/" in host or "://" in host:
        raise ImageError(f"{what}: {host!r} is not a registry host name")
    try:
        parse(f"{host}/x")
    except ImageError:
        raise ImageError(f"{what}: {host!r} is not a registry host name") from None


def _check_location(location, what):
    """HOST[:PORT][/PATH], no tag or digest."""
    if "://" in location:
        raise ImageError(f"{what}: {location!r} must not have a scheme")
    host, _, path = location.partition("/")
    _check_host(host, what)
    if path:
        try:
            reference = parse(f"{host}/{path}")
        except ImageError as err:
            raise ImageError(f"{what}: {err}") from None
        if reference.tag or reference.digest:
            raise ImageError(f"{what}: {location!r} must not have a tag or digest")


def _alias_key(short, where):
    try:
        reference = parse(short)
    except ImageError as err:
        raise ImageError(f"{where}: alias {short!r}: {err}") from None
    if not reference.is_short or reference.tag or reference.digest:
        raise ImageError(f"{where}: alias {short!r} must be a short name without tag or "
                         "digest")
    return reference.path


def _alias_value(short, value, where):
    """The alias's fully qualified name; None for "" (no alias: it resets one)."""
    if not isinstance(value, str):
        raise ImageError(f"{where}: alias {short!r} must be a string")
    if value == "":
        return None
    try:
        reference = parse(value)
    except ImageError as err:
        raise ImageError(f"{where}: alias {short!r}: {err}") from None
    if reference.is_short or reference.tag or reference.digest:
        raise ImageError(f"{where}: alias {short!r} = {value!r} must be a fully qualified "
                         "name without tag or digest")
    return qualify(reference, reference.domain).name


# --- resolving ----------------------------------------------------------------------------

def candidates(conf, text, cached_aliases=None):
    """The fully qualified references `text` may mean, in the order to try them (each
    with its default tag): itself when qualified; an alias's (the alias cache's,
    `cached_aliases`, before registries.conf's); or each unqualified-search registry's
    (docker.io alone when none is configured)."""
    reference = parse(text)
    if not reference.is_short:
        return [Candidate(parse_normalized(text).with_default_tag(), "fully qualified")]
    for aliases, where in ((cached_aliases or {}, "the short-name alias cache"),
                           (conf.aliases, "registries.conf")):
        if reference.path in aliases:
            alias = aliases[reference.path]
            if alias is None:                       # reset: no alias
                break
            target = parse(alias).replace(tag=reference.tag, digest=reference.digest)
            return [Candidate(target.with_default_tag(),
                              f"the alias {reference.path} = {alias} ({where})")]
    search = conf.search_registries
    if not search:
        raise ImageError(f"{text}: a short name that no alias resolves, and no "
                         "unqualified-search-registries are defined in "
                         + (", ".join(conf.sources) or "registries.conf"))
    return [Candidate(qualify(reference, host).with_default_tag(),
                      "unqualified-search-registries"
                      if conf.search is not None else "docker.io (nothing configured)",
                      searched=True)
            for host in search]


def short_name_choice(conf, text, found, can_prompt):
    """What short-name-mode says to do with the candidates of `text`: "all" (try them in
    order) or "prompt" (ask which one; the answer is recorded as an alias). Only a short
    name that several search registries may mean is ambiguous; then disabled tries them
    all, enforcing and permissive ask where they can (stdin and stdout are terminals),
    and without a terminal permissive tries them all and enforcing refuses (ImageError,
    in containers/image's words)."""
    if len(found) < 2 or not found[0].searched or conf.mode == "disabled":
        return "all"
    if can_prompt:
        return "prompt"
    if conf.mode == "permissive":
        return "all"
    raise ImageError(f"{text}: short-name resolution enforced but cannot prompt without a "
                     f"TTY (short-name-mode = \"enforcing\"; it may mean "
                     f"{', '.join(str(c.reference) for c in found)}: name one, or set an "
                     "alias)")


def parse_alias_cache(text, where):
    """The short-name alias cache's aliases ({short: name, or None for ""})."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ImageError(f"{where}: not valid TOML: {err}") from None
    aliases = document.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ImageError(f"{where}: [aliases] must be a table")
    return {_alias_key(short, where): _alias_value(short, value, where)
            for short, value in aliases.items()}


def alias_cache_text(aliases):
    """The alias cache file for `aliases` ({short: name}), as containers/image writes
    it: TOML, one [aliases] table."""
    import json
    lines = ["[aliases]"]
    for short, name in sorted(aliases.items()):
        lines.append(f"  {json.dumps(short)} = {json.dumps(name or '')}")
    return "\n".join(lines) + "\n"


def alias_for(text, candidate):
    """(short, name) to record as an alias when `candidate` was chosen for `text`: the
    repository names without tag or digest."""
    return parse(text).path, candidate.reference.name
def find_registry(conf, name):
    """The [[registry]] whose prefix matches `name` (a fully qualified reference's text)
    most closely, or None."""
    best, best_length = None, -1
    for registry in conf.registries:
        if _matches(name, registry.prefix) and len(registry.prefix) > best_length:
            best, best_length = registry, len(registry.prefix)
    return best


def _matches(name, prefix):
    if prefix.startswith("*."):                     # any host under that domain
        host = name.partition("/")[0].partition(":")[0]
        return host.endswith(prefix[1:])
    if not name.startswith(prefix):
        return False
    return len(name) == len(prefix) or name[len(prefix)] in "/:@"


def pull_sources(conf, reference):
    """[PullSource] for a fully qualified reference: its registry's mirrors that apply,
    then the registry itself (its location). ImageError when the registry is blocked."""
    text = str(reference)
    registry = find_registry(conf, text)
    if registry is None:
        return [PullSource(reference, insecure=False, mirror=False)]
    if registry.blocked:
        where = f" in {registry.source}" if registry.source else ""
        raise ImageError(f"registry {reference.domain} is blocked{where}")
    digested = bool(reference.digest)
    sources = []
    for mirror in registry.mirrors:
        if registry.mirror_by_digest_only and not digested:
            continue
        if mirror.pull_from_mirror == "digest-only" and not digested:
            continue
        if mirror.pull_from_mirror == "tag-only" and digested:
            continue
        sources.append(PullSource(_rewrite(reference, registry.prefix, mirror.location),
                                  mirror.insecure, True))
    location = registry.location or None
    sources.append(PullSource(_rewrite(reference, registry.prefix, location)
                              if location else reference, registry.insecure, False))
    return sources


def _rewrite(reference, prefix, location):
    """`reference` with `prefix` (the part of its name that matched) replaced by
    `location`; a wildcard prefix keeps the host and puts the location's in front."""
    text = str(reference)
    if prefix.startswith("*."):
        rewritten = location + text[len(reference.domain):]
    else:
        rewritten = location + text[len(prefix):]
    try:
        return parse_normalized(rewritten)
    except ImageError as err:
        raise ImageError(f"{reference}: rewritten for {location} as {rewritten!r}: "
                         f"{err}") from None


def registry_insecure(conf, host):
    """Whether registries.conf marks this host (a location or mirror) insecure."""
    for registry in conf.registries:
        if registry.location.partition("/")[0] == host and registry.insecure:
            return True
        if registry.prefix.startswith("*.") and host.partition(":")[0].endswith(
                registry.prefix[1:]) and registry.insecure:
            return True
        for mirror in registry.mirrors:
            if mirror.location.partition("/")[0] == host and mirror.insecure:
                return True
    return False
