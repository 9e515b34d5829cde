# Shared set-up for scripts/test and scripts/demo (sourced, not run).
#
# As root on a fresh Debian machine it installs what handcar needs, creates the
# unprivileged test user with subordinate id ranges, copies the checkout where that user
# can read it and builds a virtualenv there. As a normal user it builds a virtualenv of
# its own. Either way it leaves HANDCAR_SRC, HANDCAR_VENV and as_user (a command prefix
# that runs as the unprivileged user) behind.

HANDCAR_TEST_USER=${HANDCAR_TEST_USER:-handcar-test}
HANDCAR_WORK=${HANDCAR_WORK:-/var/tmp/handcar-ci}
# dbus-daemon: the --systemd-cgroup tests serve a mock systemd on a private bus
APT_PACKAGES="uidmap busybox-static python3-venv rsync dbus-daemon"
# the podman tier (tests/podman): rootless podman with handcar as its runtime; podman only
# recommends catatonit (--init) and slirp4netns (its rootless network)
APT_PACKAGES+=" podman catatonit slirp4netns"
# handcar's own: pasta (passt) carries a network's traffic where installed; fuse-overlayfs
# mounts a container's root where the kernel cannot mount overlayfs in a user namespace
APT_PACKAGES+=" passt fuse-overlayfs"
# the engine tiers: docker (tests/docker, root and rootless under rootlesskit) and
# containerd (tests/containerd); their daemons are started by the tests, on private
# sockets and directories (docker.io brings containerd, runc and tini's docker-init)
APT_PACKAGES+=" docker.io containerd rootlesskit"
# the registry tier (tests/registry): registries the tests start, images pushed with skopeo
APT_PACKAGES+=" docker-registry skopeo apache2-utils openssl"

say() { printf '== %s\n' "$*" >&2; }

install_packages() {
    local missing=()
    for pkg in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # no service is started by the packages (docker-registry's would take port 5000): the
    # tests start what they need; a policy-rc.d of our own only while none is there
    local policy=/usr/sbin/policy-rc.d ours=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && ours=1
    fi
    local status=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ -z "$ours" ] || rm -f "$policy"
    return "$status"
}

create_test_user() {
    if ! id "$HANDCAR_TEST_USER" >/dev/null 2>&1; then
        say "creating user $HANDCAR_TEST_USER"
        useradd --create-home --shell /bin/bash "$HANDCAR_TEST_USER"
    fi
    local uid
    uid=$(id -u "$HANDCAR_TEST_USER")
    for file in /etc/subuid /etc/subgid; do
        if ! grep -qE "^($HANDCAR_TEST_USER|$uid):" "$file" 2>/dev/null; then
            # the first 65536-id block above every range already given out
            local start
            start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$file" 2>/dev/null || echo 100000)
            say "giving $HANDCAR_TEST_USER ids $start-$((start + 65535)) in $file"
            echo "$HANDCAR_TEST_USER:$start:65536" >> "$file"
        fi
    done
}

set_device_modes() {
    # What desktop distributions ship, and what rootless networking needs.
    for dev in /dev/net/tun /dev/fuse; do
        [ -e "$dev" ] && chmod 0666 "$dev"
    done
    return 0
}

cgroup2_mount() {  # where cgroup2 is mounted (hybrid hosts: not /sys/fs/cgroup)
    awk '{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2" && $4 == "/") print $5; break }}' \
        /proc/self/mountinfo | head -n 1
}

delegate_cgroup() {
    # What systemd's Delegate=yes gives a user: a cgroup v2 subtree it owns
    # (HANDCAR_CGROUP), with the host's v2 controllers enabled for it, and a child
    # "session" cgroup for the user's own processes (no-internal-processes rule).
    local mount uid
    mount=$(cgroup2_mount)
    if [ -z "$mount" ]; then
        say "no cgroup2 mount here: the cgroup tests will say they are skipped"
        HANDCAR_CGROUP=
        return
    fi
    uid=$(id -u "$HANDCAR_TEST_USER")
    HANDCAR_CGROUP="$mount/$HANDCAR_TEST_USER.slice"
    mkdir -p "$HANDCAR_CGROUP/session"
    local controllers
    controllers=$(cat "$mount/cgroup.controllers")
    for c in $controllers; do
        echo "+$c" > "$mount/cgroup.subtree_control" 2>/dev/null || true
    done
    chown "$uid" "$HANDCAR_CGROUP" "$HANDCAR_CGROUP"/cgroup.procs \
        "$HANDCAR_CGROUP"/cgroup.subtree_control "$HANDCAR_CGROUP"/cgroup.threads
    chown -R "$uid" "$HANDCAR_CGROUP/session"
    say "delegated $HANDCAR_CGROUP to $HANDCAR_TEST_USER (controllers: ${controllers:-none})"
}

build_venv() {  # build_venv SRC VENV [EXTRAS]: EXTRAS of pyproject.toml, "test" by default
    local src=$1 venv=$2 extras=${3:-test}
    if [ ! -x "$venv/bin/python" ]; then
        say "creating virtualenv $venv"
        /usr/bin/python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$src[$extras]"
}

build_bench_venv() {  # handcar installed the way pipx installs it: BENCH_VENV
    # pipx makes a virtualenv without pip or setuptools (whose .pth file costs every
    # Python start ~0.5 ms) and installs into it with a pip of its own: the same here,
    # with the test virtualenv's pip. Not editable, so no import hook either.
    BENCH_VENV="$(dirname "$HANDCAR_VENV")/bench-venv"
    if [ -e "$BENCH_VENV/bin/pip" ] || [ ! -x "$BENCH_VENV/bin/python" ]; then
        rm -rf "$BENCH_VENV"
        /usr/bin/python3 -m venv --without-pip "$BENCH_VENV"
    fi
    "$HANDCAR_VENV/bin/python" -m pip --python "$BENCH_VENV/bin/python" install -q \
        --disable-pip-version-check --force-reinstall --no-deps "$HANDCAR_SRC" 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$HANDCAR_VENV/bin/python" -m pip --python "$BENCH_VENV/bin/python" install -q \
        --disable-pip-version-check "$HANDCAR_SRC" 2>&1 | grep -v "^WARNING: Location" || true
    if [ "$(id -u)" = 0 ]; then chmod -R a+rX "$BENCH_VENV"; fi
}

setup_as_root() {
    local repo=$1
    install_packages
    create_test_user
    set_device_modes
    HANDCAR_SRC="$HANDCAR_WORK/src"
    HANDCAR_VENV="$HANDCAR_WORK/venv"
    mkdir -p "$HANDCAR_SRC"
    chmod 0755 "$HANDCAR_WORK"
    say "copying the checkout to $HANDCAR_SRC"
    # --delete-excluded: a module moved away leaves no directory of stale bytecode behind
    rsync -a --delete --delete-excluded --exclude .git --exclude '*.egg-info' \
        --exclude __pycache__ --exclude .pytest_cache "$repo/" "$HANDCAR_SRC/"
    build_venv "$HANDCAR_SRC" "$HANDCAR_VENV"
    chmod -R a+rX "$HANDCAR_WORK"
    delegate_cgroup
    # the user's processes start in its delegated subtree, as in a systemd user session
    as_user=(sh -c '[ -z "$0" ] || echo $$ > "$0/cgroup.procs"; exec "$@"'
             "${HANDCAR_CGROUP:+$HANDCAR_CGROUP/session}"
             runuser -u "$HANDCAR_TEST_USER" -- env -i
             "HOME=$(getent passwd "$HANDCAR_TEST_USER" | cut -d: -f6)"
             "USER=$HANDCAR_TEST_USER" "LOGNAME=$HANDCAR_TEST_USER"
             "PATH=$HANDCAR_VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
             "LANG=C.UTF-8")
}

setup_as_user() {
    local repo=$1
    HANDCAR_SRC="$repo"
    HANDCAR_VENV="${HANDCAR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/handcar/venv}"
    mkdir -p "$(dirname "$HANDCAR_VENV")"
    build_venv "$HANDCAR_SRC" "$HANDCAR_VENV"
    as_user=(env "PATH=$HANDCAR_VENV/bin:$PATH")
}

setup() {  # setup REPO
    if [ "$(id -u)" = 0 ]; then setup_as_root "$1"; else setup_as_user "$1"; fi
}

make_busybox_bundle() {  # make_busybox_bundle DIR: a rootfs of Debian's static busybox
    local dir=$1 busybox
    busybox=$(command -v busybox || echo /bin/busybox)
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
    cp "$busybox" "$dir/rootfs/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$dir/rootfs/etc/passwd"
    printf 'root:x:0:\n' > "$dir/rootfs/etc/group"
}
