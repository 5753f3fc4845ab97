#!/usr/bin/env bash
# Measures the softphone's own cost against the issue's targets (idle: < 1 % of a core and
# < 150 MB resident; monitoring a call: < 5 % of a core).
#
# It builds bin/ringside and bin/perf-democenter (the demo call center of `ringside --demo`
# — ringside-media, bot agents, customers calling them — as a process of its own), starts
# both under Xvfb, signs the softphone in as the supervisor sam with --server/--user, and
# reads /proc/PID of the softphone alone:
#   - CPU: utime+stime from /proc/PID/stat over PERF_WINDOW seconds, in % of one core,
#     PERF_REPEAT times (the spread matters on a shared machine);
#   - memory: VmRSS, and from smaps_rollup Pss_Anon (Go heap, stacks, C mallocs) and
#     Pss_File (the binary, libraries); the share of libLLVM (Mesa's software GL, which
#     Xvfb needs and a machine with a GPU driver does not load) is summed apart from smaps.
# First on the dashboard with the demo call listed ("idle"), then with the monitoring
# window of that call open (levels moving, timer running): the script presses Monitor
# Call with xdotool, as a user would, so the product needs no test-only switch. Last, for
# reference, a second softphone showing only its sign-in window: Fyne's own idle floor
# (PERF_FLOOR=0 skips it).
#
#   scripts/perf-softphone.sh                 # PERF_WINDOW=30 PERF_REPEAT=3 PERF_SETTLE=10
#   PERF_TAGS= scripts/perf-softphone.sh      # build tags for bin/ringside (default no_emoji,migrated_fynedo, as make build)
#   PERF_OVERLAY=0 scripts/perf-softphone.sh  # stock Fyne (default: patched by third_party/fyne-patches, as make build)
#   RINGSIDE_PPROF=127.0.0.1:6061 scripts/perf-softphone.sh   # and profile it meanwhile:
#   go tool pprof -seconds 30 http://127.0.0.1:6061/debug/pprof/profile
#
# Needs: go, xvfb-run, xdotool, curl, jq. Sound: none under Xvfb (the null backend).
set -euo pipefail
cd "$(dirname "$0")/.."

SPAN=${PERF_WINDOW:-30}
REPEAT=${PERF_REPEAT:-3}
SETTLE=${PERF_SETTLE:-10}
PERF_TAGS=${PERF_TAGS-no_emoji,migrated_fynedo}

if [ -z "${PERF_INNER:-}" ]; then
	for tool in go xvfb-run xdotool curl jq; do
		command -v "$tool" >/dev/null || { echo "perf-softphone: needs $tool" >&2; exit 1; }
	done
	echo "building bin/ringside and bin/perf-democenter" >&2
	overlay=
	if [ "${PERF_OVERLAY:-1}" = 1 ]; then overlay=-overlay=$(go run scripts/fyne-overlay.go); fi
	go build $overlay ${PERF_TAGS:+-tags "$PERF_TAGS"} -o bin/ringside ./cmd/ringside
	go build -o bin/perf-democenter scripts/perf-democenter.go
	export PERF_INNER=1 LANG=en_US.UTF-8
	exec xvfb-run -a -s "-screen 0 1024x700x24" "$0" "$@"
fi

tmp=$(mktemp -d -t ringside-perf.XXXXXX)
pids=()
cleanup() {
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

bin/perf-democenter >"$tmp/center.out" 2>"$tmp/center.err" &
pids+=($!)
for _ in $(seq 100); do
	url=$(sed -n 's/^url=//p' "$tmp/center.out")
	[ -n "$url" ] && break
	sleep 0.2
done
[ -n "$url" ] || { echo "perf-softphone: the demo center did not start" >&2; cat "$tmp/center.err" >&2; exit 1; }

RINGSIDE_PASSWORD=sam-pw bin/ringside --server "$url" --user sam --log-level warn 2>"$tmp/ringside.err" &
phone=$!
pids+=("$phone")

token=$(curl -fsS -XPOST "$url/api/login" -d '{"user":"sam","password":"sam-pw"}' | jq -r .token)
api() { curl -fsS -H "Authorization: Bearer $token" "$url$1"; }

# wait_for TIMEOUT CMD...: until CMD succeeds.
wait_for() {
	local until=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $until ] || return 1
		sleep 0.5
	done
}
has_window() { xdotool search --name "$1"; }
wait_for 30 has_window "Ringside.*sam" || { echo "perf-softphone: no main window" >&2; cat "$tmp/ringside.err" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# sample NAME [PID]: one CPU window and the memory at its end, as one line.
sample() {
	local pid=${2:-$phone} t0 c0 t1 c1
	t0=$(date +%s.%N) c0=$(ticks "$pid")
	sleep "$SPAN"
	t1=$(date +%s.%N) c1=$(ticks "$pid")
	local rss anon file llvm
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	anon=$(awk '/^Pss_Anon:/ {print $2}' "/proc/$pid/smaps_rollup")
	file=$(awk '/^Pss_File:/ {print $2}' "/proc/$pid/smaps_rollup")
	llvm=$(awk '/^[0-9a-f]+-/ {m = ($6 ~ /libLLVM/)} m && /^Rss:/ {s += $2} END {print s + 0}' "/proc/$pid/smaps")
	awk -v n="$1" -v c=$((c1 - c0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" -v rss="$rss" -v anon="$anon" -v file="$file" -v llvm="$llvm" 'BEGIN {
		printf "%-8s cpu %5.2f %%  rss %4.0f MB  pss_anon %4.0f MB  pss_file %4.0f MB  (libLLVM rss %3.0f MB)\n",
			n, 100 * c / hz / (t1 - t0), rss / 1024, anon / 1024, file / 1024, llvm / 1024 }'
}

load() { cut -d' ' -f1 /proc/loadavg; }

echo "softphone pid $phone against $url; $REPEAT × ${SPAN}s per state; load $(load)"
sleep "$SETTLE"
for _ in $(seq "$REPEAT"); do sample idle; done

# The demo's customers talk 3–3.6 min, then call again 4 s later. Sam (team red) sees
# alice's call. Monitor a call young enough to outlast the samples.
need=$((REPEAT * SPAN + SETTLE + 15))
young_calls() {
	api /api/calls | jq -e --argjson need "$need" \
		'[.[] | select(.state == "talking" and .monitorable and .answered_at != null)
		 | select((now - (.answered_at | sub("\\.[0-9]+"; "") | fromdateiso8601)) < (180 - $need))]'
}
young_call() { young_calls | jq -e 'length > 0'; }
if ! young_call >/dev/null; then
	echo "waiting for a fresh call (up to 4 min)…"
	wait_for 240 young_call || { echo "perf-softphone: no call to monitor" >&2; exit 1; }
fi
call=$(young_calls | jq -r '.[0].id')

# Press that call's Monitor Call, as a user would. The main window is centred (980×620 on
# 1024×700); the dashboard lists active calls oldest first, a phone call's row 99 pixels
# apart and a live call's (a line more) 139, and the button sits at the right of its row,
# 42 pixels below the top of a phone call's row (the first row's top is at y=154).
y=$(api /api/calls | jq --arg id "$call" '
	[.[] | select(.state != "ended")] | sort_by(.started_at | sub("\\.[0-9]+"; "") | fromdateiso8601)
	| (map(.id) | index($id)) as $i
	| 154 + 42 + ([.[:$i][] | if .kind == "live" then 139 else 99 end] | add // 0)')
eval "$(xdotool search --name "Ringside.*sam" getwindowgeometry --shell | sed 's/^/GEOM_/')"
xdotool mousemove $((GEOM_X + 812)) $((GEOM_Y + y))
sleep 0.3
xdotool click 1
wait_for 20 has_window "^Monitoring " || { echo "perf-softphone: Monitor Call did not open the window" >&2; exit 1; }
sleep "$SETTLE"
monitored() { api "/api/calls/$call" | jq -e '.state == "talking" and ([.monitors[]? | select(.user == "sam")] | length > 0)'; }
for _ in $(seq "$REPEAT"); do
	line=$(sample in-call)
	if monitored >/dev/null; then echo "$line"; else echo "$line  (the call ended meanwhile: not counted)"; fi
done

# For reference, Fyne's own floor: a second softphone showing only its sign-in window
# (no session, nothing changing), which still runs GLFW's 60 Hz event loop.
if [ "${PERF_FLOOR:-1}" = 1 ]; then
	mkdir -p "$tmp/home"
	HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" bin/ringside --log-level warn 2>/dev/null &
	signin=$!
	pids+=("$signin")
	wait_for 30 has_window "Sign in" || { echo "perf-softphone: no sign-in window" >&2; exit 1; }
	sleep "$SETTLE"
	for _ in $(seq "$REPEAT"); do sample sign-in "$signin"; done
fi
echo "load at the end $(load); nproc $(nproc)"
