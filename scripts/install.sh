#!/usr/bin/env bash
# Install secops on a Debian 12 / Ubuntu server, from the checkout this script is in.
#
#   sudo scripts/install.sh            install or upgrade (safe to run again)
#   scripts/install.sh --dry-run       print what it would do, change nothing (no root needed)
#
# What it does (docs/systemd.md explains the service):
#   - apt-get install restic gnupg python3-venv openssh-client ca-certificates (only if missing)
#   - a virtualenv in /opt/secops with this checkout pip-installed into it (not editable: the
#     checkout may be deleted afterwards), and the symlink /usr/local/bin/secops
#   - the unit /etc/systemd/system/secops.service and its documentation
#   - /etc/secops (0750) and /etc/secops/secops.toml (0600) from configs/secops.example.toml,
#     only if there is no config yet: an existing config is never overwritten
#   - systemctl daemon-reload when systemd is running
# It does not enable or start the service: edit the config and run `secops init` first.
set -euo pipefail

PREFIX=/opt/secops
BIN_LINK=/usr/local/bin/secops
UNIT_DIR=/etc/systemd/system
CONF_DIR=/etc/secops
DOC_DIR=/usr/local/share/doc/secops
APT_PACKAGES=(restic gnupg python3-venv openssh-client ca-certificates)
MIN_PYTHON=3.11
# The distribution's Python (python3-venv), never a python3 found first on PATH: a pyenv or
# conda Python under /root or /home is invisible to the service (ProtectHome=yes).
PYTHON=/usr/bin/python3

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DRY_RUN=0

usage() {
    sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Run a command, or only show it (shell-quoted) with --dry-run.
run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dry-run | -n) DRY_RUN=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        shift
    done
}

preflight() {
    local f
    for f in pyproject.toml secops/__init__.py systemd/secops.service \
        configs/secops.example.toml docs/systemd.md playbooks/ransomware-suspected.yaml; do
        [[ -f $REPO_ROOT/$f ]] || die "$REPO_ROOT/$f is missing: run me from a secops checkout"
    done
    if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        die "apt-get not found: this installer is for Debian and Ubuntu"
    fi
    if [[ $(id -u) != 0 ]]; then
        [[ $DRY_RUN == 1 ]] || die "run me as root (sudo $0), or with --dry-run"
        say "not root: a real run needs root"
    fi
}

missing_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "system packages present: ${APT_PACKAGES[*]}"
        return
    fi
    say "installing system packages: ${missing[*]}"
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_python() {
    if [[ $DRY_RUN == 1 && ! -x $PYTHON ]]; then
        say "$PYTHON not installed yet: it comes with python3-venv"
        return
    fi
    "$PYTHON" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" \
        || die "$PYTHON is $("$PYTHON" -V 2>&1); secops needs Python $MIN_PYTHON or newer"
}

# pip-install a copy of the sources, so that the build never writes into the checkout.
install_venv() {
    if [[ -x $PREFIX/bin/python && $(readlink -f "$PREFIX/bin/python") == /usr/* ]]; then
        say "virtualenv $PREFIX exists: upgrading secops in it"
    elif [[ -e $PREFIX ]]; then
        say "recreating virtualenv $PREFIX with $PYTHON"
        run "$PYTHON" -m venv --clear "$PREFIX"
    else
        say "creating virtualenv $PREFIX"
        run "$PYTHON" -m venv "$PREFIX"
    fi
    local src
    if [[ $DRY_RUN == 1 ]]; then
        src=/tmp/secops-src.XXXXXX
    else
        src=$(mktemp -d /tmp/secops-src.XXXXXX)
        # shellcheck disable=SC2064  # expand $src now: it is local to this function
        trap "rm -rf '$src'" EXIT
    fi
    run tar -C "$REPO_ROOT" --exclude=__pycache__ -cf "$src/src.tar" pyproject.toml README.md secops
    run tar -C "$src" -xf "$src/src.tar"
    run "$PREFIX/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$src"
    # Dependencies are installed (or upgraded) only when missing or too old.
    run "$PREFIX/bin/pip" install -q --disable-pip-version-check "$src"
}

link_binary() {
    if [[ -e $BIN_LINK && ! -L $BIN_LINK ]]; then
        die "$BIN_LINK exists and is not a symlink: move it away first"
    fi
    say "linking $BIN_LINK -> $PREFIX/bin/secops"
    run ln -sfn "$PREFIX/bin/secops" "$BIN_LINK"
}

install_unit() {
    local unit=$UNIT_DIR/secops.service
    if [[ -f $unit ]] && ! cmp -s "$REPO_ROOT/systemd/secops.service" "$unit"; then
        say "replacing $unit (put local changes in a drop-in: systemctl edit secops)"
    else
        say "installing $unit"
    fi
    run install -m 0644 "$REPO_ROOT/systemd/secops.service" "$unit"
    run install -D -m 0644 "$REPO_ROOT/docs/systemd.md" "$DOC_DIR/systemd.md"
}

install_config() {
    say "config folder $CONF_DIR (root, 0750)"
    run install -d -m 0750 -o root -g root "$CONF_DIR"
    if [[ -e $CONF_DIR/secops.toml ]]; then
        say "keeping the existing $CONF_DIR/secops.toml"
    else
        say "new $CONF_DIR/secops.toml from configs/secops.example.toml (0600)"
        run install -m 0600 -o root -g root \
            "$REPO_ROOT/configs/secops.example.toml" "$CONF_DIR/secops.toml"
    fi
    # The shipped playbooks: new ones are added, ones the office edited are kept.
    run install -d -m 0750 -o root -g root "$CONF_DIR/playbooks" "$CONF_DIR/playbooks/events"
    local pb
    for pb in "$REPO_ROOT"/playbooks/*.yaml "$REPO_ROOT"/playbooks/events/*.json; do
        local dest=$CONF_DIR/playbooks/${pb#"$REPO_ROOT"/playbooks/}
        if [[ -e $dest ]]; then
            say "keeping the existing $dest"
        else
            run install -m 0640 -o root -g root "$pb" "$dest"
        fi
    done
}

reload_systemd() {
    if [[ -d /run/systemd/system ]]; then
        say "systemctl daemon-reload"
        run systemctl daemon-reload
        if systemctl is-active --quiet secops.service 2>/dev/null; then
            say "secops is running: restart it to use the new version: systemctl restart secops"
        fi
    else
        say "systemd is not running here: skipping systemctl daemon-reload"
    fi
}

next_steps() {
    cat <<EOF

Next steps:
  1. edit $CONF_DIR/secops.toml: office, watched folders, backup targets
     (watched folders, state_dir or the local repository other than the defaults need a
     drop-in: systemctl edit secops -> [Service] ReadWritePaths=-/your/folder)
  2. secops config check          validate the config
  3. secops init                  state dir, keys, restic repositories
  4. systemctl enable --now secops
  5. journalctl -u secops -f      watch it work; systemctl status secops
EOF
}

main() {
    parse_args "$@"
    umask 022
    [[ $DRY_RUN == 1 ]] && say "dry run: nothing is changed"
    preflight
    install_packages
    check_python
    install_venv
    link_binary
    install_unit
    install_config
    reload_systemd
    next_steps
}

main "$@"
