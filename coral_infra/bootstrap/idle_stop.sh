# shellcheck shell=bash
# coral-machine idle stop: the pod stops itself after CORAL_IDLE_STOP seconds without activity,
# so a GPU nobody uses stops billing. A library of start.sh, not a program: start.sh sources it
# from beside itself only when CORAL_IDLE_STOP is set (the image has it there; inject mode
# writes it there from CORAL_IDLE_STOP_B64), once tailscaled and sshd run and the auth key is
# gone, then calls start_idle_stop. It uses start.sh's helpers and settings: log, redact,
# utc_now, file_size, parse_uint, sshd_dir, TS_STATE_DIR, TS_SOCKET, LOG_MAX_BYTES.
#
# Contract (environment):
#   CORAL_IDLE_STOP      seconds (set by the program from coral:machines[].idleStop): after that
#                        long without activity the pod stops itself through RunPod's REST API v2
#                        (POST /v2/pods/$RUNPOD_POD_ID/action stop) with the pod-scoped
#                        RUNPOD_API_KEY RunPod gives every pod. Activity: an open Tailscale SSH
#                        session (a child of this pod's tailscaled), an sshd connection (a child
#                        of the sshd start.sh started), or a GPU busier than
#                        CORAL_IDLE_GPU_PERCENT by nvidia-smi, where it exists. Every check is
#                        logged to $TS_STATE_DIR/idle.log (capped like tailscaled.log); anything
#                        the watcher cannot measure counts as activity, so its errors never stop
#                        the pod.
#   CORAL_IDLE_GPU_PERCENT (10) / CORAL_IDLE_CHECK_SECONDS (60)  the GPU threshold and how often
#                        the watcher looks.
#   CORAL_RUNPOD_API_URL default https://api.runpod.io: RunPod's API host (the program sets it
#                        only for a stack whose RunPod API is a stand-in).
#   RUNPOD_POD_ID, RUNPOD_API_KEY  set by RunPod in every pod; without them the idle stop is off.

idle_log() {
    local line
    utc_now
    redact "$*"
    line="$NOW $REPLY"
    if [[ -n ${RUNPOD_API_KEY:-} ]]; then line=${line//"$RUNPOD_API_KEY"/[REDACTED]}; fi
    if (($(file_size "$IDLE_LOG") >= LOG_MAX_BYTES)); then mv -f "$IDLE_LOG" "$IDLE_LOG.1"; fi
    printf '%s\n' "$line" >>"$IDLE_LOG"
}

# Fills the associative array `parent` (pid -> parent pid) from /proc.
read_process_tree() {
    local stat line
    local -a fields
    for stat in /proc/[0-9]*/stat; do
        { read -r line <"$stat"; } 2>/dev/null || continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        read -ra fields <<<"${line##*) }"
        parent[${line%% *}]=${fields[1]}
    done
    ((${#parent[@]} > 0))
}

descends_from() {
    local pid=$1 ancestor=$2 steps=0
    while [[ -n $pid && $pid != 0 ]] && ((steps++ < 512)); do
        if [[ $pid == "$ancestor" ]]; then return 0; fi
        pid=${parent[$pid]:-}
    done
    return 1
}

# Prints "<Tailscale SSH sessions> <sshd connections>" of this pod. Tailscale SSH runs each
# session as a child of tailscaled (the `be-child ssh` incubator, which becomes the user's
# shell); sshd serves each connection from a child of its listener. Only this pod's daemons
# count: the tailscaled under this script's process (PID 1 in a real pod), and the sshd named in
# the pid file start_sshd gave it.
count_ssh_sessions() {
    local -A parent=() daemons=()
    local pid listener="" tailscale=0 sshd=0
    local -a args
    read_process_tree || return 1
    for pid in "${!parent[@]}"; do
        { mapfile -d '' -t args <"/proc/$pid/cmdline"; } 2>/dev/null || continue
        if [[ " ${args[*]} " == *" --statedir=$TS_STATE_DIR "* && " ${args[*]} " == *" --socket=$TS_SOCKET "* ]] &&
            descends_from "$pid" "$BOOTSTRAP_PID"; then
            daemons[$pid]=tailscaled
        fi
    done
    if [[ -s $(sshd_dir)/sshd.pid ]]; then
        read -r listener <"$(sshd_dir)/sshd.pid" || listener=""
        if [[ $listener =~ ^[0-9]+$ && -n ${parent[$listener]:-} ]] &&
            { mapfile -d '' -t args <"/proc/$listener/cmdline"; } 2>/dev/null &&
            [[ "${args[*]}" == *sshd* ]]; then
            daemons[$listener]=sshd
        fi
    fi
    for pid in "${!parent[@]}"; do
        case "${daemons[${parent[$pid]}]:-}" in
            tailscaled) tailscale=$((tailscale + 1)) ;;
            sshd) sshd=$((sshd + 1)) ;;
        esac
    done
    printf '%s %s' "$tailscale" "$sshd"
}

# Prints the busiest GPU's utilisation in %, or "none" where there is no nvidia-smi; fails with
# what went wrong when nvidia-smi does.
gpu_utilisation() {
    local out value max=-1
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        printf 'none'
        return 0
    fi
    if ! out=$(timeout 30 nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>&1); then
        printf 'nvidia-smi failed: %s' "${out//$'\n'/ }"
        return 1
    fi
    while read -r value; do
        value=${value//[[:space:]%]/}
        if [[ -z $value ]]; then continue; fi
        if [[ ! $value =~ ^[0-9]+$ ]]; then
            printf 'nvidia-smi reported %q' "$value"
            return 1
        fi
        if ((value > max)); then max=$value; fi
    done <<<"$out"
    if ((max < 0)); then
        printf 'nvidia-smi listed no GPU'
        return 1
    fi
    printf '%s' "$max"
}

# Asks RunPod to stop this pod (REST API v2 podAction) with the pod-scoped key; the key reaches
# curl on stdin, never on a command line. Prints RunPod's answer; fails unless it is a 2xx.
request_pod_stop() {
    local url=$RUNPOD_API_URL/v2/pods/$RUNPOD_POD_ID/action out status body
    if command -v curl >/dev/null 2>&1; then
        out=$(printf 'header = "Authorization: Bearer %s"\n' "$RUNPOD_API_KEY" |
            curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' \
                --data '{"action":"stop"}' -w '\nHTTP %{http_code}' --config - "$url" 2>&1)
    else
        out=$(python3 - "$url" 2>&1 <<'PYTHON'
import os, sys, urllib.error, urllib.request
request = urllib.request.Request(
    sys.argv[1], data=b'{"action":"stop"}', method="POST",
    headers={"Authorization": "Bearer " + os.environ["RUNPOD_API_KEY"],
             "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(answer.read().decode(errors="replace")[:300]); print(f"HTTP {answer.status}")
except urllib.error.HTTPError as error:
    print(error.read().decode(errors="replace")[:300]); print(f"HTTP {error.code}")
except OSError as error:
    print(f"no answer: {error}")
PYTHON
)
    fi
    status=${out##*$'\n'} body=""
    if [[ $out == *$'\n'* ]]; then body=${out%$'\n'*}; fi
    body=${body//$'\n'/ }
    printf '%s%s' "$status" "${body:+: ${body:0:300}}"
    [[ $status =~ ^HTTP\ 2[0-9][0-9]$ ]]
}

# The watcher: one decision per CORAL_IDLE_CHECK_SECONDS, each logged. Measuring errors count
# as activity and a refused stop is asked again at the next check: its own errors never stop
# the pod, and nothing here can stop the script that started it.
watch_idle() {
    set +e
    local idle_since=$SECONDS idle sessions ts_sessions sshd_sessions gpu answer reasons item
    local -a busy
    while :; do
        sleep "$IDLE_CHECK"
        busy=()
        if sessions=$(count_ssh_sessions); then
            read -r ts_sessions sshd_sessions <<<"$sessions"
            if ((ts_sessions > 0)); then busy+=("$ts_sessions Tailscale SSH session(s)"); fi
            if ((sshd_sessions > 0)); then busy+=("$sshd_sessions sshd connection(s)"); fi
        else
            busy+=("sessions could not be counted (/proc unreadable; counted as activity)")
        fi
        if gpu=$(gpu_utilisation); then
            if [[ $gpu != none ]] && ((gpu >= IDLE_GPU_PERCENT)); then
                busy+=("GPU at ${gpu}%")
            fi
            [[ $gpu == none ]] && gpu="no nvidia-smi" || gpu="GPU ${gpu}%"
        else
            busy+=("GPU unknown: $gpu (counted as activity)")
        fi
        if ((${#busy[@]} > 0)); then
            idle_since=$SECONDS
            reasons=""
            for item in "${busy[@]}"; do reasons+="${reasons:+, }$item"; done
            idle_log "active: $reasons; keep running"
            continue
        fi
        idle=$((SECONDS - idle_since))
        if ((idle < IDLE_LIMIT)); then
            idle_log "idle ${idle}s of ${IDLE_LIMIT}s (no SSH session, $gpu): keep running"
            continue
        fi
        idle_log "idle ${idle}s of ${IDLE_LIMIT}s (no SSH session, $gpu): stopping this pod ($RUNPOD_POD_ID) through RunPod's API"
        log "idle for ${idle}s: asking RunPod to stop this pod (coral:machines[].idleStop; see $IDLE_LOG)"
        if answer=$(request_pod_stop); then
            # RunPod now stops the container; should it not, ask again after another idle time.
            idle_since=$SECONDS
            idle_log "RunPod accepted the stop: $answer"
        else
            idle_log "ERROR: RunPod did not stop this pod ($answer); keep running, asking again in ${IDLE_CHECK}s"
            log "ERROR: the idle stop failed ($answer); see $IDLE_LOG"
        fi
    done
}

# The entry point (start.sh calls it when CORAL_IDLE_STOP is set): checks what the watcher
# needs, each missing piece turning the idle stop off with a log line, then starts it.
start_idle_stop() {
    parse_uint IDLE_LIMIT CORAL_IDLE_STOP 0
    parse_uint IDLE_CHECK CORAL_IDLE_CHECK_SECONDS 60
    parse_uint IDLE_GPU_PERCENT CORAL_IDLE_GPU_PERCENT 10
    RUNPOD_API_URL=${CORAL_RUNPOD_API_URL:-https://api.runpod.io}
    RUNPOD_API_URL=${RUNPOD_API_URL%/}
    IDLE_LOG=$TS_STATE_DIR/idle.log
    BOOTSTRAP_PID=$$
    if ((IDLE_LIMIT == 0)); then
        log "ERROR: CORAL_IDLE_STOP=$CORAL_IDLE_STOP is not a number of seconds; the idle stop is off"
        return 1
    fi
    if [[ ! ${RUNPOD_POD_ID:-} =~ ^[A-Za-z0-9_]+$ || -z ${RUNPOD_API_KEY:-} ]]; then
        log "ERROR: the idle stop needs RunPod's RUNPOD_POD_ID and RUNPOD_API_KEY in the pod's environment, and they are missing; the idle stop is off"
        return 1
    fi
    if [[ ! $RUNPOD_API_URL =~ ^https?://[^[:space:]]+$ ]]; then
        log "ERROR: CORAL_RUNPOD_API_URL=$RUNPOD_API_URL is not an http(s) URL; the idle stop is off"
        return 1
    fi
    if ! command -v curl >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
        log "ERROR: the idle stop needs curl or python3 in the image; the idle stop is off"
        return 1
    fi
    mkdir -p "$TS_STATE_DIR"
    idle_log "idle stop on: this pod ($RUNPOD_POD_ID) stops itself after ${IDLE_LIMIT}s without an open SSH session or a GPU at ${IDLE_GPU_PERCENT}% or more (checked every ${IDLE_CHECK}s)"
    log "idle stop on: stops this pod after ${IDLE_LIMIT}s without activity; decisions in $IDLE_LOG"
    watch_idle &
}
