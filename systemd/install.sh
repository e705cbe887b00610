#!/bin/sh
# Install (or remove) lineside as a systemd service: user, unit, drop-ins, config, directories.
# Usage: systemd/install.sh [--root DIR] [--bin PATH] [--camera] [--port502] [--start]
#        systemd/install.sh --uninstall [--purge] [--root DIR]
# With --root DIR (or DESTDIR=DIR) it writes under DIR only and prints the useradd/systemctl commands
# it would run instead of running them. See docs/deployment.md.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${DESTDIR:-}
BIN=""
CAMERA=0
PORT502=0
START=0
UNINSTALL=0
PURGE=0
USER_NAME=lineside
PLACEHOLDER=/usr/local/bin/lineside

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit "$1"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage 2; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --bin) [ $# -ge 2 ] || usage 2; BIN=$2; shift ;;
        --bin=*) BIN=${1#--bin=} ;;
        --camera) CAMERA=1 ;;
        --port502) PORT502=1 ;;
        --start) START=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option '$1'" >&2; usage 2 ;;
    esac
    shift
done
ROOT=${ROOT%/}

UNIT_DIR=$ROOT/etc/systemd/system
DROPIN_DIR=$UNIT_DIR/lineside.service.d
CONF_DIR=$ROOT/etc/lineside
STATE_DIR=$ROOT/var/lib/lineside
LOGS_DIR=$ROOT/var/log/lineside
DOC_DIR=$ROOT/usr/share/doc/lineside

# On the real machine run a command; under --root only say what would run (never touch the host).
host() {
    if [ -n "$ROOT" ]; then
        echo "would run: $*"
    else
        echo "running: $*"
        "$@"
    fi
}

install_unit() {
    if [ -z "$BIN" ]; then
        BIN=$(command -v lineside || true)
    fi
    case "$BIN" in
        /*) ;;
        *) echo "install.sh: lineside not found; pass --bin /path/to/lineside" >&2; exit 1 ;;
    esac
    if [ -z "$ROOT" ] && [ ! -x "$BIN" ]; then
        echo "install.sh: $BIN is not executable" >&2
        exit 1
    fi
    case "$BIN" in
        /home/*|/root/*|/run/user/*)
            echo "install.sh: warning: $BIN is under a home directory, which ProtectHome=yes hides" >&2 ;;
    esac
    mkdir -p "$UNIT_DIR"
    sed "s#$PLACEHOLDER#$BIN#g" "$HERE/lineside.service" >"$UNIT_DIR/lineside.service.new"
    chmod 0644 "$UNIT_DIR/lineside.service.new"
    mv "$UNIT_DIR/lineside.service.new" "$UNIT_DIR/lineside.service"
    echo "installed $UNIT_DIR/lineside.service (ExecStart $BIN)"
    # The drop-ins installed are exactly the ones asked for this time.
    for variant in camera port502; do
        if { [ "$variant" = camera ] && [ "$CAMERA" = 1 ]; } || { [ "$variant" = port502 ] && [ "$PORT502" = 1 ]; }; then
            mkdir -p "$DROPIN_DIR"
            cp "$HERE/lineside.service.d/$variant.conf" "$DROPIN_DIR/$variant.conf"
            chmod 0644 "$DROPIN_DIR/$variant.conf"
            echo "installed $DROPIN_DIR/$variant.conf"
        elif [ -f "$DROPIN_DIR/$variant.conf" ]; then
            rm -f "$DROPIN_DIR/$variant.conf"
            echo "removed $DROPIN_DIR/$variant.conf"
        fi
    done
    if [ -d "$DROPIN_DIR" ]; then
        rmdir "$DROPIN_DIR" 2>/dev/null || true
    fi
}

install_config() {
    mkdir -p "$CONF_DIR" "$STATE_DIR/models" "$LOGS_DIR"
    chmod 0750 "$CONF_DIR" "$STATE_DIR" "$STATE_DIR/models" "$LOGS_DIR"
    if [ -e "$CONF_DIR/line.yaml" ]; then
        echo "kept $CONF_DIR/line.yaml (never overwritten)"
    else
        cp "$HERE/line.example.yaml" "$CONF_DIR/line.yaml"
        chmod 0640 "$CONF_DIR/line.yaml"
        echo "created $CONF_DIR/line.yaml from line.example.yaml: edit it, then: lineside run --check $CONF_DIR/line.yaml"
    fi
    if [ -f "$HERE/../docs/deployment.md" ]; then
        mkdir -p "$DOC_DIR"
        cp "$HERE/../docs/deployment.md" "$DOC_DIR/deployment.md"
    fi
    host chown root:"$USER_NAME" /etc/lineside /etc/lineside/line.yaml
    host chown -R "$USER_NAME":"$USER_NAME" /var/lib/lineside /var/log/lineside
}

create_user() {
    if [ -z "$ROOT" ] && getent passwd "$USER_NAME" >/dev/null; then
        echo "user $USER_NAME exists"
        return
    fi
    host useradd --system --user-group --home-dir /var/lib/lineside --no-create-home \
        --shell /usr/sbin/nologin --comment "lineside inspection appliance" "$USER_NAME"
}

do_install() {
    create_user
    install_unit
    install_config
    host systemctl daemon-reload
    host systemctl enable lineside.service
    if [ "$START" = 1 ]; then
        # --no-block: the unit is "activating" until READY=1 (model warm-up and first frame).
        host systemctl start --no-block lineside.service
    else
        echo "not started; start with: systemctl start lineside.service (logs: journalctl -u lineside -f)"
    fi
}

do_uninstall() {
    if [ -z "$ROOT" ] && ! command -v systemctl >/dev/null; then
        echo "install.sh: systemctl not found" >&2
        exit 1
    fi
    host systemctl disable --now lineside.service || true
    rm -f "$UNIT_DIR/lineside.service" "$DROPIN_DIR/camera.conf" "$DROPIN_DIR/port502.conf"
    if [ -d "$DROPIN_DIR" ]; then
        rmdir "$DROPIN_DIR" 2>/dev/null || echo "kept $DROPIN_DIR (holds files not installed by lineside)"
    fi
    rm -rf "$DOC_DIR"
    echo "removed $UNIT_DIR/lineside.service"
    host systemctl daemon-reload
    if [ "$PURGE" = 1 ]; then
        rm -rf "$CONF_DIR" "$STATE_DIR" "$LOGS_DIR"
        echo "purged $CONF_DIR $STATE_DIR $LOGS_DIR"
        host userdel "$USER_NAME" || true
    else
        echo "kept $CONF_DIR (config) and $STATE_DIR (records, models); --purge removes them"
    fi
}

if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or use --root DIR to stage into a directory)" >&2
    exit 1
fi
if [ "$UNINSTALL" = 1 ]; then
    do_uninstall
else
    do_install
fi
