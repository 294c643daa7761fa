#!/usr/bin/env bash
# coral-machine container bootstrap: joins the tailnet with a persistent identity, turns on
# Tailscale SSH, starts the image's sshd on 2222, then execs the container's main command.
#
# Contract (environment; every value is optional):
#   TAILSCALE_AUTHKEY | TS_AUTHKEY | TS_AUTH_KEY   auth key (first non-empty wins); else the file
#                        $TS_STATE_DIR/authkey (must be mode 0600: fixed with a warning). Used ONLY
#                        when the backend needs login; passed to `tailscale up` as --auth-key=file:
#                        (never on a command line), removed from the environment of every child.
#   TS_STATE_DIR         default /workspace/deps/runtime/tailscale (mode 0700): tailscaled.state,
#                        tailscaled.log (+ .1), authkey, bin/<version>/ (downloaded binaries).
#   TS_SOCKET            default /var/run/tailscale/tailscaled.sock: the CLI's own default, so a
#                        plain `tailscale status` in a shell works, and never on the network volume
#                        (unix sockets on network filesystems are unreliable).
#   TS_HOSTNAME          default coral-machine.
#   TS_USERSPACE         unset = auto: $CORAL_TUN_DEVICE (default /dev/net/tun) is a character
#                        device -> kernel networking, else userspace; if kernel-mode tailscaled
#                        dies at once (no NET_ADMIN), it is restarted in userspace. true/false force.
#   TS_ACCEPT_DNS        default false (containerboot's default: leave /etc/resolv.conf alone).
#   TS_EXTRA_ARGS        extra args for `tailscale up` (split on whitespace, as containerboot does).
#   TS_TAILSCALED_EXTRA_ARGS  extra args for tailscaled.
#   TS_AUTH_ONCE         accepted for containerboot compatibility; this script always logs in only
#                        when the backend needs it, so "false" is ignored with a warning.
#   TS_LOG_MAX_BYTES     default 10485760: tailscaled.log is rotated to tailscaled.log.1 at every
#                        start and whenever it reaches this size (at most 2x on disk).
#   CORAL_TAILSCALE_BIN_DIR  directory holding tailscale + tailscaled (else PATH, else the cache
#                        $TS_STATE_DIR/bin/<version>/, else a verified download into that cache).
#   CORAL_CLI_LINK_DIR   default /usr/local/bin (on every default PATH): when a new shell's PATH would
#                        not find the binaries this script runs (inject mode: they live on the volume),
#                        it links tailscale and tailscaled there, so `tailscale status` works in any
#                        shell. Empty = no links.
#   CORAL_CLI_SOCKET     default /var/run/tailscale/tailscaled.sock, where the CLI looks without
#                        --socket: when TS_SOCKET is elsewhere, it is linked there (unless another
#                        tailscaled's socket is). Empty = no link.
#   CORAL_TAILSCALE_VERSION / CORAL_TAILSCALE_SHA256 / CORAL_TAILSCALE_URL  what to download; a
#                        version other than the pinned one needs its own SHA-256.
#   CORAL_TUN_DEVICE     TUN device path checked in auto mode.
#   CORAL_SSHD           default 1; 0 = do not start sshd.
#   CORAL_SSHD_PORT      default 2222 (22 is refused: Tailscale SSH owns 22 on the tailnet).
#   CORAL_SSHD_BIN       default: sshd on PATH or /usr/sbin/sshd.
#   CORAL_SSHD_HOST_KEY_DIR  default <parent of TS_STATE_DIR>/sshd: host key kept on the volume so
#                        the sshd host identity survives pod re-creation.
#   PUBLIC_KEY           RunPod's convention: appended to ~/.ssh/authorized_keys for sshd.
#   CORAL_TAILSCALED_START_TIMEOUT (30) / CORAL_LOGIN_TIMEOUT (60)  seconds; every wait is bounded.
#   CORAL_IDLE_STOP      seconds (set by the program from coral:machines[].idleStop; unset = off):
#                        after that long without activity the pod stops itself. The watcher is
#                        idle_stop.sh, sourced from beside this script only then: its header
#                        documents it and its own settings (CORAL_IDLE_GPU_PERCENT,
#                        CORAL_IDLE_CHECK_SECONDS, CORAL_RUNPOD_API_URL).
#   CORAL_IDLE_STOP_B64  inject mode: idle_stop.sh, base64-encoded (the pod provider sets it with
#                        CORAL_IDLE_STOP); written beside this script at every start.
#
# Behaviour on every start (idempotent):
#   0. tailscale and tailscaled on the default PATH, tailscaled's socket at the CLI's default path
#      (links, see CORAL_CLI_LINK_DIR and CORAL_CLI_SOCKET): plain `tailscale status`,
#      `tailscale ip -4` and `tailscale ssh` work in any shell, in both bootstrap modes.
#   1. tailscaled runs under a supervisor (restarted with backoff if it dies), log size-capped.
#      A socket left at TS_SOCKET by a tailscaled that was killed is found by one connect()
#      and removed, without waiting on it.
#   2. BackendState NeedsLogin -> `tailscale up --reset --auth-key=file:... --hostname=...
#      --accept-dns=... --ssh --timeout=... $TS_EXTRA_ARGS` (--reset: `up` never fails on
#      settings changed earlier with `set`). Running -> no login, no key. Stopped -> plain
#      `tailscale up`.
#   3. Once Running without a login: `tailscale set --ssh --hostname=... --accept-dns=...`
#      (Tailscale SSH on 22; `set` changes only these, so a manual change never crash-loops).
#   4. sshd on $CORAL_SSHD_PORT, if the image has one.
#   5. With CORAL_IDLE_STOP: the idle watcher (idle_stop.sh), in the background.
#   6. exec "$@" (or sleep forever). A failed login never stops the container: tailscaled keeps
#      running and the log says what to do.
#
# Reset the tailnet identity: stop the pod, delete $TS_STATE_DIR/tailscaled.state (or everything
# in $TS_STATE_DIR except authkey and bin/), start it again with a valid auth key -> a new device.
#
# Bake into an image: `start.sh --install-tailscale DIR` downloads and verifies the pinned
# binaries into DIR and exits (used by the Dockerfile beside this file).
set -euo pipefail

readonly PINNED_TAILSCALE_VERSION="1.98.10"
# SHA-256 of tailscale_1.98.10_<arch>.tgz as published by Tailscale (pkgs.tailscale.com).
readonly PINNED_SHA256_AMD64="52490ce0832b245857e2afef7426d6ae5a4b49fb391412833cc95729bd23f7de"
readonly PINNED_SHA256_ARM64="d74a84e07cb1948d9f09a23ae161417c6127e562949773705c95d0762be2809d"

# Where the tailscale CLI looks for tailscaled without --socket (Linux), and the PATH a new
# login shell or a Tailscale SSH session of root gets on Debian/Ubuntu images.
readonly CLI_DEFAULT_SOCKET="/var/run/tailscale/tailscaled.sock"
readonly DEFAULT_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

AUTH_KEY=""

# Sets REPLY to $1 with every auth key in it replaced by [REDACTED].
redact() {
    REPLY=$1
    if [[ -n $AUTH_KEY ]]; then
        REPLY=${REPLY//"$AUTH_KEY"/[REDACTED]}
    fi
    # Tailscale keys have a recognisable prefix; scrub any that came from elsewhere too.
    if [[ $REPLY == *tskey-* ]]; then
        REPLY=$(printf '%s' "$REPLY" | sed -E 's/tskey-[A-Za-z0-9_-]+/tskey-[REDACTED]/g')
    fi
}

# Sets NOW to the UTC time, without a process of its own (the boot's time is in the path).
utc_now() {
    TZ=UTC0 printf -v NOW '%(%Y-%m-%dT%H:%M:%SZ)T' -1
}

log() {
    utc_now
    redact "$*"
    printf '%s [coral-bootstrap] %s\n' "$NOW" "$REPLY" >&2
}

# Sets variable $1 to the value of the boolean env var $2 as true/false (or $3, its default);
# bad values fall back with a warning instead of aborting, because an abort here would be a
# crash loop. Assigned in place rather than printed into $(...): no process per setting.
parse_bool() {
    local _name=$2 _default=$3 _value=${!2:-}
    case "${_value,,}" in
        "") printf -v "$1" '%s' "$_default" ;;
        1 | true | yes | on) printf -v "$1" 'true' ;;
        0 | false | no | off) printf -v "$1" 'false' ;;
        *)
            log "WARNING: $_name=$_value is not true/false; using $_default"
            printf -v "$1" '%s' "$_default"
            ;;
    esac
}

# Sets variable $1 to the positive integer in env var $2, else to $3 (with a warning if set).
parse_uint() {
    local _name=$2 _default=$3 _value=${!2:-}
    if [[ -z $_value ]]; then
        printf -v "$1" '%s' "$_default"
    elif [[ $_value =~ ^[0-9]+$ ]] && ((10#$_value > 0)); then
        printf -v "$1" '%s' "$((10#$_value))"
    else
        log "WARNING: $_name=$_value is not a positive integer; using $_default"
        printf -v "$1" '%s' "$_default"
    fi
}

file_size() {
    if [[ -f $1 ]]; then stat -c %s "$1"; else printf '0'; fi
}

# Reads tailscaled's output line by line, appends it to the log and rotates the log to .1 when
# it reaches the cap, so a chatty or wedged tailscaled cannot fill the volume.
cap_log() {
    local file=$1 max=$2 line size
    local LC_ALL=C
    size=$(file_size "$file")
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ -n $AUTH_KEY ]]; then line=${line//"$AUTH_KEY"/[REDACTED]}; fi
        printf '%s\n' "$line" >>"$file"
        size=$((size + ${#line} + 1))
        if ((size >= max)); then
            mv -f "$file" "$file.1"
            size=0
        fi
    done
}

tailscale_arch() {
    case "$(uname -m)" in
        x86_64 | amd64) printf 'amd64' ;;
        aarch64 | arm64) printf 'arm64' ;;
        *) uname -m ;;
    esac
}

download() {
    local url=$1 dest=$2
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --connect-timeout 10 --max-time 300 --retry 2 -o "$dest" "$url"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 30 -t 3 -O "$dest" "$url"
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())' "$url" "$dest"
    else
        log "ERROR: neither curl, wget nor python3 is available to download tailscale"
        return 1
    fi
}

# Downloads the pinned release, refuses it unless its SHA-256 matches, and puts tailscale and
# tailscaled into $1, each by a rename, so a half-finished download never looks like a binary.
install_tailscale() {
    local dest=$1 version=${CORAL_TAILSCALE_VERSION:-$PINNED_TAILSCALE_VERSION}
    local arch expected url work actual name
    arch=$(tailscale_arch)
    expected=${CORAL_TAILSCALE_SHA256:-}
    if [[ -z $expected && $version == "$PINNED_TAILSCALE_VERSION" ]]; then
        case "$arch" in
            amd64) expected=$PINNED_SHA256_AMD64 ;;
            arm64) expected=$PINNED_SHA256_ARM64 ;;
        esac
    fi
    if [[ ! $expected =~ ^[0-9a-f]{64}$ ]]; then
        log "ERROR: no pinned SHA-256 for tailscale $version on $arch; set CORAL_TAILSCALE_SHA256 (64 hex digits) or use version $PINNED_TAILSCALE_VERSION"
        return 1
    fi
    url=${CORAL_TAILSCALE_URL:-https://pkgs.tailscale.com/stable/tailscale_${version}_${arch}.tgz}
    work=$(mktemp -d "${TMPDIR:-/tmp}/coral-tailscale.XXXXXX")
    log "downloading tailscale $version ($arch) from $url"
    if ! download "$url" "$work/tailscale.tgz"; then
        log "ERROR: download of $url failed"
        rm -rf "$work"
        return 1
    fi
    actual=$(sha256sum "$work/tailscale.tgz" | cut -d' ' -f1)
    if [[ $actual != "$expected" ]]; then
        log "ERROR: checksum mismatch for $url: expected sha256 $expected, got $actual; refusing to install it"
        rm -rf "$work"
        return 1
    fi
    if ! tar -xzf "$work/tailscale.tgz" -C "$work" --no-same-owner ||
        [[ ! -f $(echo "$work"/tailscale_*/tailscale) || ! -f $(echo "$work"/tailscale_*/tailscaled) ]]; then
        log "ERROR: $url passed the checksum but does not hold tailscale_*/tailscale and tailscaled"
        rm -rf "$work"
        return 1
    fi
    mkdir -p "$dest"
    for name in tailscaled tailscale; do
        install -m 0755 "$work"/tailscale_*/"$name" "$dest/.$name.partial"
        mv -f "$dest/.$name.partial" "$dest/$name"
    done
    rm -rf "$work"
    log "installed tailscale $version into $dest (sha256 verified)"
}

# Sets TAILSCALE and TAILSCALED; order: explicit dir, PATH, cache on the volume, download.
resolve_binaries() {
    local cache
    if [[ -n ${CORAL_TAILSCALE_BIN_DIR:-} ]]; then
        TAILSCALE=$CORAL_TAILSCALE_BIN_DIR/tailscale
        TAILSCALED=$CORAL_TAILSCALE_BIN_DIR/tailscaled
        if [[ -x $TAILSCALE && -x $TAILSCALED ]]; then return 0; fi
        log "ERROR: CORAL_TAILSCALE_BIN_DIR=$CORAL_TAILSCALE_BIN_DIR has no executable tailscale and tailscaled"
        return 1
    fi
    if TAILSCALE=$(command -v tailscale) && TAILSCALED=$(command -v tailscaled); then
        return 0
    fi
    cache=$TS_STATE_DIR/bin/${CORAL_TAILSCALE_VERSION:-$PINNED_TAILSCALE_VERSION}
    TAILSCALE=$cache/tailscale
    TAILSCALED=$cache/tailscaled
    if [[ -x $TAILSCALE && -x $TAILSCALED ]]; then
        log "using cached tailscale binaries in $cache"
        return 0
    fi
    install_tailscale "$cache"
}

# The first executable called $1 on the default PATH of a new shell, if any.
first_on_default_path() {
    local dir
    local -a dirs
    IFS=: read -ra dirs <<<"$DEFAULT_PATH"
    for dir in "${dirs[@]}"; do
        if [[ -f $dir/$1 && -x $dir/$1 ]]; then
            printf '%s' "$dir/$1"
            return 0
        fi
    done
    return 1
}

# Makes a plain `tailscale` (and `tailscaled`) in any new shell run the binaries this script runs:
# links in $CLI_LINK_DIR unless the default PATH already finds them. Never replaces a file that is
# not a link (another install): it says so instead.
link_binaries_onto_path() {
    local name target found link
    [[ -n $CLI_LINK_DIR ]] || return 0
    for name in tailscale tailscaled; do
        target=$TAILSCALE
        if [[ $name == tailscaled ]]; then target=$TAILSCALED; fi
        found=$(first_on_default_path "$name") || true
        if [[ -n $found && $found -ef $target ]]; then continue; fi
        link=$CLI_LINK_DIR/$name
        if [[ -e $link && ! -L $link ]]; then
            log "WARNING: $link is another $name than $target: a plain '$name' in a shell runs that one; call $target by path"
            continue
        fi
        if mkdir -p "$CLI_LINK_DIR" 2>/dev/null && ln -sfn "$target" "$link" 2>/dev/null; then
            log "linked $link -> $target, so '$name' works in any shell"
        else
            log "WARNING: cannot link $link -> $target; call $target by path"
        fi
    done
}

# When TS_SOCKET is not where the CLI looks by default, links the default path to it, so
# `tailscale status` needs no --socket. Leaves another tailscaled's socket alone.
link_default_socket() {
    [[ -n $CLI_SOCKET ]] || return 0
    local socket_dir cli_dir
    socket_dir=$(dirname "$TS_SOCKET")
    cli_dir=$(dirname "$CLI_SOCKET")
    if [[ $socket_dir -ef $cli_dir && $(basename "$TS_SOCKET") == "$(basename "$CLI_SOCKET")" ]]; then
        return 0
    fi
    if [[ -S $CLI_SOCKET && ! -L $CLI_SOCKET ]]; then
        log "WARNING: $CLI_SOCKET is another tailscaled's socket: in a shell use tailscale --socket=$TS_SOCKET"
        return 0
    fi
    if mkdir -p "$cli_dir" 2>/dev/null && ln -sfn "$TS_SOCKET" "$CLI_SOCKET" 2>/dev/null; then
        log "linked $CLI_SOCKET -> $TS_SOCKET (the CLI's default socket)"
    else
        log "WARNING: cannot link $CLI_SOCKET -> $TS_SOCKET; in a shell use tailscale --socket=$TS_SOCKET"
    fi
}

# Runs tailscaled forever (this function is the body of a background process): restarts it with
# exponential backoff, and in auto mode falls back to userspace networking when kernel mode dies
# right away (typically: no CAP_NET_ADMIN despite /dev/net/tun).
supervise_tailscaled() {
    set +e
    local mode=$NET_MODE backoff=1 started rc
    local -a args
    while :; do
        args=(--statedir="$TS_STATE_DIR" --socket="$TS_SOCKET")
        if [[ $mode == userspace ]]; then args+=(--tun=userspace-networking); fi
        args+=("${TAILSCALED_EXTRA_ARGS[@]}")
        started=$SECONDS
        "$TAILSCALED" "${args[@]}" 2>&1 | cap_log "$TS_LOG" "$LOG_MAX_BYTES"
        rc=${PIPESTATUS[0]}
        if [[ $mode == kernel && $USERSPACE_SETTING == auto ]] && ((SECONDS - started < 10)); then
            log "tailscaled exited with code $rc within seconds in kernel networking mode (see $TS_LOG); falling back to userspace networking"
            mode=userspace
            backoff=1
            continue
        fi
        if ((SECONDS - started >= 60)); then backoff=1; fi
        log "tailscaled exited with code $rc (see $TS_LOG); restarting in ${backoff}s"
        sleep "$backoff"
        backoff=$((backoff * 2 > 60 ? 60 : backoff * 2))
    done
}

ts() {
    timeout "$((CLI_TIMEOUT))" "$TAILSCALE" --socket="$TS_SOCKET" "$@"
}

backend_state() {
    local out
    out=$(ts status --json 2>/dev/null) || true
    if [[ $out =~ \"BackendState\":\ *\"([A-Za-z]*)\" ]]; then printf '%s' "${BASH_REMATCH[1]}"; fi
}

# Whether anything accepts connections on socket $1, by one connect(): what tailscaled itself
# checks before it replaces a socket file. The CLI cannot tell quickly: on a socket nobody
# serves it retries for 2 to 5 seconds, taking it for a tailscaled still starting. perl is in
# every Debian and Ubuntu image (perl-base is essential), python3 in most others.
# Returns 0 (something answers), 1 (nothing: a stale socket) or 2 (no way to tell here).
socket_accepts() {
    if command -v perl >/dev/null 2>&1; then
        # shellcheck disable=SC2016 # a perl program: its $s is perl's
        timeout 5 perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or exit 2;
            exit(connect($s, pack_sockaddr_un($ARGV[0])) ? 0 : 1)' "$1"
    elif command -v python3 >/dev/null 2>&1; then
        timeout 5 python3 -c 'import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
except OSError:
    sys.exit(1)' "$1"
    else
        return 2
    fi
}

# Waits (bounded) for the socket file of the tailscaled just started, every 20 ms: the CLI,
# asked before it exists, would sleep 250 ms between its own retries.
wait_for_socket() {
    local deadline=$((SECONDS + START_TIMEOUT))
    while [[ ! -S $TS_SOCKET ]] && ((SECONDS < deadline)); do sleep 0.02; done
}

# Waits (bounded) until tailscaled answers with a settled state; prints it, or nothing.
wait_for_backend() {
    local deadline=$((SECONDS + START_TIMEOUT)) state=""
    while ((SECONDS < deadline)); do
        state=$(backend_state)
        if [[ -n $state && $state != NoState && $state != Starting ]]; then
            printf '%s' "$state"
            return 0
        fi
        sleep 0.1
    done
    printf '%s' "$state"
}

manual_instructions() {
    log "to join by hand from a shell in the pod: put the key in $TS_STATE_DIR/authkey (chmod 600) and restart the pod, or run:"
    log "  tailscale --socket=$TS_SOCKET up --auth-key=file:$TS_STATE_DIR/authkey --hostname=$TS_HOSTNAME && tailscale --socket=$TS_SOCKET set --ssh"
    log "  (equivalent to the one-liner: tailscale up --authkey=<KEY> --ssh --hostname=$TS_HOSTNAME)"
}

explain_login_failure() {
    local output=$1 lowered=${1,,}
    if [[ $lowered == *"invalid key"* || $lowered == *"expired"* || $lowered == *"not found"* || $lowered == *"authkey"* || $lowered == *"auth key"* || $lowered == *"not valid"* ]]; then
        log "the control plane REJECTED the auth key (invalid, expired, revoked, or a used one-off key): create a new auth key, set TAILSCALE_AUTHKEY (or $TS_STATE_DIR/authkey) and restart the pod"
    elif [[ $lowered == *"timeout"* || $lowered == *"timed out"* || $lowered == *"deadline"* ]]; then
        log "login did not complete within ${LOGIN_TIMEOUT}s: the control plane is unreachable, or the device awaits approval in the admin console; tailscaled keeps trying in the background"
    elif [[ $lowered == *"connection refused"* || $lowered == *"no such host"* || $lowered == *"dial"* ]]; then
        log "the control plane could not be reached (check TS_EXTRA_ARGS --login-server and outbound network); tailscaled keeps trying in the background"
    else
        log "login failed for an unrecognised reason; tailscaled keeps running"
    fi
    if [[ -n $output ]]; then log "tailscale up said: $output"; fi
    manual_instructions
}

# Logs in with the auth key; the key reaches tailscale only as a 0600 file named on the command
# line, never as the key itself.
login() {
    local key_arg key_file="" rc=0 output
    if [[ -n $AUTH_KEY ]]; then
        key_file=$(umask 077 && mktemp "${TMPDIR:-/tmp}/coral-authkey.XXXXXX")
        printf '%s\n' "$AUTH_KEY" >"$key_file"
        key_arg=file:$key_file
        log "logging in as $TS_HOSTNAME with the auth key from the environment"
    elif [[ -s $AUTHKEY_FILE ]]; then
        key_arg=file:$AUTHKEY_FILE
        log "logging in as $TS_HOSTNAME with the auth key from $AUTHKEY_FILE"
    else
        log "ERROR: this device needs to log in but no auth key was given (TAILSCALE_AUTHKEY / TS_AUTHKEY / $AUTHKEY_FILE)"
        manual_instructions
        return 1
    fi
    # --ssh here, not in a `set` after `up` returns: Tailscale SSH is on as the device comes up.
    output=$(timeout "$((LOGIN_TIMEOUT + 15))" "$TAILSCALE" --socket="$TS_SOCKET" up --reset \
        --auth-key="$key_arg" --hostname="$TS_HOSTNAME" --accept-dns="$ACCEPT_DNS" --ssh \
        --timeout="${LOGIN_TIMEOUT}s" "${UP_EXTRA_ARGS[@]}" 2>&1) || rc=$?
    if [[ -n $key_file ]]; then rm -f "$key_file"; fi
    if ((rc == 0)); then
        log "logged in to the tailnet"
        return 0
    fi
    if ((rc == 124)); then output="timed out after $((LOGIN_TIMEOUT + 15))s. $output"; fi
    log "ERROR: tailscale up failed (exit code $rc)"
    explain_login_failure "$output"
    return 1
}

check_authkey_file() {
    local mode
    if [[ -e $AUTHKEY_FILE ]]; then
        mode=$(stat -c %a "$AUTHKEY_FILE")
        if [[ $mode != 600 && $mode != 400 ]]; then
            log "WARNING: $AUTHKEY_FILE had mode $mode (readable by others); changed to 600"
            chmod 600 "$AUTHKEY_FILE"
        fi
    fi
}

choose_network_mode() {
    case "$USERSPACE_SETTING" in
        true)
            NET_MODE=userspace
            log "networking: userspace (TS_USERSPACE=true)"
            ;;
        false)
            NET_MODE=kernel
            log "networking: kernel TUN (TS_USERSPACE=false)"
            ;;
        *)
            if [[ -c $TUN_DEVICE ]]; then
                NET_MODE=kernel
                log "networking: kernel TUN ($TUN_DEVICE present; TS_USERSPACE unset)"
            else
                NET_MODE=userspace
                log "networking: userspace ($TUN_DEVICE absent; TS_USERSPACE unset)"
            fi
            ;;
    esac
}

start_tailscale() {
    local state="" probe=0 socket_dir=. logged_in=false
    # Each command here is a process tailscaled waits for: only what it needs, only if needed.
    # shellcheck disable=SC2174 # 0700 is for the state dir alone, not for its parents
    if [[ ! -d $TS_STATE_DIR ]]; then mkdir -p -m 700 "$TS_STATE_DIR"; fi
    check_authkey_file
    if ! resolve_binaries; then
        log "ERROR: tailscale is not available; continuing without the tailnet"
        return 1
    fi
    if [[ $TS_SOCKET == */* ]]; then socket_dir=${TS_SOCKET%/*}; fi
    if [[ ! -d ${socket_dir:-/} ]]; then mkdir -p "$socket_dir"; fi
    # Only ask the CLI when something answers on the socket: with no daemon it takes 2 to 5
    # seconds to give up. A socket nobody answers on (its tailscaled was killed, and the
    # directory survived the restart) is removed at once, as tailscaled would remove it.
    if [[ -S $TS_SOCKET ]]; then
        socket_accepts "$TS_SOCKET" || probe=$?
        if ((probe == 1)); then
            log "removing the stale socket $TS_SOCKET: no tailscaled answers on it (the last one was killed)"
            rm -f "$TS_SOCKET"
        else
            state=$(backend_state)
        fi
    fi
    if [[ -n $state ]]; then
        log "tailscaled is already running on $TS_SOCKET; not starting another"
    else
        if [[ -s $TS_LOG ]]; then mv -f "$TS_LOG" "$TS_LOG.1"; fi
        choose_network_mode
        log "starting tailscaled (state $TS_STATE_DIR, socket $TS_SOCKET, log $TS_LOG)"
        supervise_tailscaled &
    fi
    wait_for_socket
    state=$(wait_for_backend)
    # Not on tailscaled's way to the tailnet: done once it is there (or gave up). The state
    # dir is created 0700 above; one whose mode was changed since is fixed here.
    chmod 700 "$TS_STATE_DIR"
    link_binaries_onto_path
    link_default_socket
    log "tailscaled backend state: ${state:-unknown}"
    case "$state" in
        Running) log "already logged in (persisted identity); the auth key is not used" ;;
        NeedsLogin)
            login || return 1
            logged_in=true
            ;;
        Stopped)
            log "tailscale was stopped (tailscale down); bringing it up"
            if ! ts up >/dev/null 2>&1; then
                log "ERROR: tailscale up failed; run 'tailscale --socket=$TS_SOCKET up' by hand"
                return 1
            fi
            ;;
        NeedsMachineAuth)
            log "the device is logged in but awaits approval in the tailnet admin console; approve it, then Tailscale SSH turns on at the next start (or run: tailscale --socket=$TS_SOCKET set --ssh)"
            return 1
            ;;
        *)
            log "ERROR: tailscaled did not answer within ${START_TIMEOUT}s (see $TS_LOG); it keeps running in the background"
            return 1
            ;;
    esac
    # A login's `up --reset` set all three already; otherwise `set` changes only these.
    if [[ $logged_in == false ]] &&
        ! ts set --ssh --hostname="$TS_HOSTNAME" --accept-dns="$ACCEPT_DNS" >/dev/null 2>&1; then
        log "ERROR: tailscale set --ssh failed; run 'tailscale --socket=$TS_SOCKET set --ssh' by hand"
        return 1
    fi
    log "Tailscale SSH enabled; reachable as $TS_HOSTNAME ($(ts ip -4 2>/dev/null | head -n 1 || true))"
}

start_sshd() {
    local sshd_bin key_dir host_key pid_file sshd_on
    parse_bool sshd_on CORAL_SSHD true
    if [[ $sshd_on == false ]]; then
        log "sshd disabled (CORAL_SSHD=0)"
        return 0
    fi
    if [[ ! $SSHD_PORT =~ ^[0-9]+$ ]] || ((SSHD_PORT < 1 || SSHD_PORT > 65535)); then
        log "ERROR: CORAL_SSHD_PORT=$SSHD_PORT is not a port number (1-65535); sshd not started"
        return 1
    fi
    if ((SSHD_PORT == 22)); then
        log "ERROR: CORAL_SSHD_PORT=22 refused: Tailscale SSH owns port 22 on the tailnet; use 2222"
        return 1
    fi
    sshd_bin=${CORAL_SSHD_BIN:-$(command -v sshd || printf '/usr/sbin/sshd')}
    if [[ ! -x $sshd_bin ]]; then
        log "no sshd in this image; only Tailscale SSH (port 22 on the tailnet) is available"
        return 0
    fi
    key_dir=$(sshd_dir)
    host_key=$key_dir/ssh_host_ed25519_key
    pid_file=$key_dir/sshd.pid
    mkdir -p "$key_dir"
    chmod 700 "$key_dir"
    if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        log "sshd already running (pid $(cat "$pid_file"))"
        return 0
    fi
    if [[ ! -f $host_key ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "$TS_HOSTNAME" -f "$host_key" >/dev/null
    fi
    if [[ -n ${PUBLIC_KEY:-} ]]; then
        mkdir -p "$HOME/.ssh"
        chmod 700 "$HOME/.ssh"
        if ! grep -qxF "$PUBLIC_KEY" "$HOME/.ssh/authorized_keys" 2>/dev/null; then
            printf '%s\n' "$PUBLIC_KEY" >>"$HOME/.ssh/authorized_keys"
        fi
        chmod 600 "$HOME/.ssh/authorized_keys"
    fi
    if [[ ! -d /run/sshd ]]; then mkdir -p /run/sshd 2>/dev/null || true; fi
    if "$sshd_bin" -p "$SSHD_PORT" -h "$host_key" -o "PidFile=$pid_file"; then
        log "sshd listening on port $SSHD_PORT (host key $host_key)"
    else
        log "ERROR: sshd failed to start on port $SSHD_PORT"
        return 1
    fi
}

# Where sshd keeps its host key and pid file: on the volume, beside the tailnet state.
sshd_dir() {
    printf '%s' "${CORAL_SSHD_HOST_KEY_DIR:-$(dirname "$TS_STATE_DIR")/sshd}"
}

# The idle stop is a concept of its own: idle_stop.sh, beside this script (the image has it
# there; in inject mode it travels in CORAL_IDLE_STOP_B64 and is written there at every start,
# so what the pod's env carries always wins over a file an earlier start left). Sourced only
# when the idle stop is on, so it uses this script's helpers; otherwise nothing of it runs.
load_idle_stop() {
    local file=./idle_stop.sh # with no slash, `source` would search PATH first
    if [[ ${BASH_SOURCE[0]} == */* ]]; then file=${BASH_SOURCE[0]%/*}/idle_stop.sh; fi
    if [[ -n ${CORAL_IDLE_STOP_B64:-} ]]; then
        if ! printf '%s' "$CORAL_IDLE_STOP_B64" | base64 -d >"$file.partial" 2>/dev/null ||
            ! mv -f "$file.partial" "$file"; then
            rm -f "$file.partial"
            log "ERROR: CORAL_IDLE_STOP_B64 could not be decoded into $file; the idle stop is off"
            return 1
        fi
    fi
    if [[ ! -f $file ]]; then
        log "ERROR: CORAL_IDLE_STOP is set but $file is missing (inject mode: the pod's env has no CORAL_IDLE_STOP_B64); the idle stop is off"
        return 1
    fi
    # shellcheck source=SCRIPTDIR/idle_stop.sh
    if ! source "$file"; then
        log "ERROR: $file could not be loaded; the idle stop is off"
        return 1
    fi
}

main() {
    TS_STATE_DIR=${TS_STATE_DIR:-/workspace/deps/runtime/tailscale}
    TS_SOCKET=${TS_SOCKET:-$CLI_DEFAULT_SOCKET}
    CLI_LINK_DIR=${CORAL_CLI_LINK_DIR-/usr/local/bin}
    CLI_SOCKET=${CORAL_CLI_SOCKET-$CLI_DEFAULT_SOCKET}
    TS_HOSTNAME=${TS_HOSTNAME:-coral-machine}
    TS_LOG=$TS_STATE_DIR/tailscaled.log
    AUTHKEY_FILE=$TS_STATE_DIR/authkey
    TUN_DEVICE=${CORAL_TUN_DEVICE:-/dev/net/tun}
    SSHD_PORT=${CORAL_SSHD_PORT:-2222}
    parse_bool USERSPACE_SETTING TS_USERSPACE auto
    parse_bool ACCEPT_DNS TS_ACCEPT_DNS false
    parse_uint LOG_MAX_BYTES TS_LOG_MAX_BYTES 10485760
    parse_uint START_TIMEOUT CORAL_TAILSCALED_START_TIMEOUT 30
    parse_uint LOGIN_TIMEOUT CORAL_LOGIN_TIMEOUT 60
    CLI_TIMEOUT=15
    read -ra UP_EXTRA_ARGS <<<"${TS_EXTRA_ARGS:-}"
    read -ra TAILSCALED_EXTRA_ARGS <<<"${TS_TAILSCALED_EXTRA_ARGS:-}"
    parse_bool AUTH_ONCE TS_AUTH_ONCE true
    if [[ $AUTH_ONCE == false ]]; then
        log "WARNING: TS_AUTH_ONCE=false ignored: the auth key is only ever used when the device needs to log in"
    fi
    # The key leaves the environment here so neither tailscaled, sshd nor the main command see it.
    AUTH_KEY=${TAILSCALE_AUTHKEY:-${TS_AUTHKEY:-${TS_AUTH_KEY:-}}}
    unset TAILSCALE_AUTHKEY TS_AUTHKEY TS_AUTH_KEY

    if [[ ${1:-} == --install-tailscale ]]; then
        if [[ -z ${2:-} ]]; then
            log "usage: start.sh --install-tailscale DIR"
            return 2
        fi
        install_tailscale "$2"
        return
    fi

    if ! start_tailscale; then
        log "continuing without a working tailnet connection; the main process starts anyway"
    fi
    start_sshd || true
    AUTH_KEY=""
    if [[ -n ${CORAL_IDLE_STOP:-} ]] && load_idle_stop; then start_idle_stop || true; fi
    if (($# > 0)); then
        log "starting the main command: $1"
        exec "$@"
    fi
    log "no main command given; waiting forever"
    exec sleep infinity
}

main "$@"
