#!/usr/bin/env bash
# bench/run.sh DIR - runs every benchmark built in DIR (build/opt/bench from
# `make bench`), each under a header, together with the optional baselines
# that live outside the C programs:
#
#   switch  + Boost.Context (bench/switch_boost.cc), built with c++ -O2 when
#             <boost/context/detail/fcontext.hpp> is found (libboost-context-dev)
#   skynet  + Go (bench/go/skynet.go), when `go` is on PATH
#   memory  + Go (bench/go/memory.go), when `go` is on PATH
#   chan    + Go (bench/go/chanpingpong.go, bench/go/chanfanout.go), when
#             `go` is on PATH
#   sleep   + Go (bench/go/sleep.go), when `go` is on PATH
#   echo    + Go (bench/go/echo_server.go), when `go` is on PATH: the Go
#             server's path is passed to bench/echo, which runs it beside
#             the others and prints the ratios itself. echo also needs the
#             examples (echo_server, echo_client) built beside DIR.
#
# Optional baselines are built into DIR. A missing or broken optional
# baseline prints one line and is skipped; only a failing weft benchmark makes
# the run exit non-zero (after all benchmarks have run). Ratios against the
# optional baselines are computed here from the "name value unit" lines both
# programs print, in the same `make bench` run. WEFT_BENCH_SCALE passes
# through to every program.
set -u -o pipefail

dir=${1:?usage: bench/run.sh BENCH_DIR}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$dir" && pwd) || exit 1
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
failed=()

# The value of figure $1 in the log, or nothing.
value() {
    awk -v n="$1" '$1 == n { v = $2 } END { if (v != "") print v }' "$log"
}

# ratio NAME OURS BASELINE WHAT: prints "NAME BASELINE/OURS x (WHAT)" when
# both figures are in the log.
ratio() {
    local ours base
    ours=$(value "$2")
    base=$(value "$3")
    if [ -n "$ours" ] && [ -n "$base" ]; then
        awk -v n="$1" -v o="$ours" -v b="$base" -v w="$4" 'BEGIN {
            r = o > 0 ? b / o : 0
            printf (r < 10 ? "%s %.2f x (%s)\n" : "%s %.1f x (%s)\n"), n, r, w
        }' | tee -a "$log"
    fi
}

# run_weft NAME [ARG...]: runs DIR/NAME ARG..., appending its output to the log.
run_weft() {
    echo
    echo "== $1 =="
    if [ ! -x "$dir/$1" ]; then
        echo "$1: not built"
        failed+=("$1")
        return
    fi
    if ! "$dir/$1" "${@:2}" 2>&1 | tee -a "$log"; then
        echo "$1: FAILED"
        failed+=("$1")
    fi
}

# Optional baselines print to the log too, but never fail the run.
run_optional() {
    "$@" 2>&1 | tee -a "$log" || echo "$(basename "$1"): FAILED (optional baseline, ignored)"
}

have_go() {
    if ! command -v go >/dev/null 2>&1; then
        echo "go: not installed, baseline skipped"
        return 1
    fi
    # Keep Go's caches out of $HOME (which may be unset) and never download
    # anything: the programs use the standard library only.
    export GOCACHE=${GOCACHE:-$dir/.gocache}
    export GOPATH=${GOPATH:-$dir/.gopath}
    export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=
    return 0
}

# build_go NAME: bench/go/NAME.go -> DIR/NAME_go.
build_go() {
    if (cd "$here/go" && go build -o "$dir/$1_go" "$1.go") 2>&1; then
        return 0
    fi
    echo "go: building $1.go failed, baseline skipped"
    return 1
}

have_boost() {
    echo '#include <boost/context/detail/fcontext.hpp>' |
        "${CXX:-c++}" -x c++ -E - >/dev/null 2>&1
}

# ---- the benchmarks -------------------------------------------------------

run_weft create_join

run_weft switch
if have_boost; then
    if "${CXX:-c++}" -O2 -o "$dir/switch_boost" "$here/switch_boost.cc" -lboost_context 2>&1; then
        run_optional "$dir/switch_boost"
        ratio switch.ratio_boost switch.weft switch.boost "boost/weft; above 1: weft faster"
    else
        echo "boost: building switch_boost.cc failed, baseline skipped"
    fi
else
    echo "boost: libboost-context-dev not installed, baseline skipped"
fi

run_weft skynet
if have_go && build_go skynet; then
    run_optional "$dir/skynet_go"
    ratio skynet.ratio_go skynet.weft skynet.go "go/weft"
fi

run_weft memory
if have_go && build_go memory; then
    for n in 100000 1000000; do
        run_optional "$dir/memory_go" "$n"
    done
    # Pair each Go figure with the weft figure of the same label.
    for g in $(awk '$1 ~ /^memory_.*\.go$/ { print $1 }' "$log"); do
        label=${g%.go}
        ratio "$label.ratio_go" "$label.weft" "$g" "go/weft"
    done
fi

run_weft chan
if have_go && build_go chanpingpong && build_go chanfanout; then
    run_optional "$dir/chanpingpong_go"
    ratio chan_pingpong.ratio_go chan_pingpong.weft chan_pingpong.go "go/weft; above 1: weft faster"
    run_optional "$dir/chanfanout_go"
    # Throughput: bigger is better, so the figures go in swapped (weft/go).
    ratio chan_1p4c.ratio_go chan_1p4c.go chan_1p4c.weft "weft/go throughput; above 1: weft faster"
fi

run_weft sleep
if have_go && build_go sleep; then
    run_optional "$dir/sleep_go"
    ratio sleep_100k.ratio_go sleep_100k.weft sleep_100k.go "go/weft; above 1: weft faster"
fi

if have_go && build_go echo_server; then
    run_weft echo "$dir/echo_server_go"
else
    run_weft echo
fi

# Any other benchmark program, added later, runs after these.
for src in "$here"/*.c; do
    name=$(basename "$src" .c)
    case $name in
    create_join | switch | skynet | memory | chan | sleep | echo) ;;
    *) run_weft "$name" ;;
    esac
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: FAILED: ${failed[*]}"
    exit 1
fi
echo "bench: all benchmarks ran"
