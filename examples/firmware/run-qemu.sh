#!/usr/bin/env bash
# Builds the QEMU image of examples/firmware and runs it on an emulated Cortex-M4 (QEMU
# `mps2-an386`), the engine answering a captured ISC dhcpd primary (see README.md):
#   1. an image with one expected answer made wrong must FAIL (the checks bite);
#   2. the defmt image must PASS; its log is decoded with defmt-print when that is installed;
#   3. the text image must PASS (built last: it is the one left in target/ and sized by CI).
# Each emulator run is bounded by `timeout` (QEMU_TIMEOUT seconds, default 120).
set -euo pipefail
cd "$(dirname "$0")"

target=thumbv7em-none-eabihf
elf=target/$target/release/failover-qemu
logs=target/qemu
mkdir -p "$logs"

build() {
    cargo build --release --target "$target" --bin failover-qemu "$@"
}

# Runs $elf; its semihosting output goes to $1, the exit status is the image's (124 on timeout).
# -icount shift=0: a deterministic virtual clock, 1 ns per instruction (the timing figure).
run() {
    timeout --kill-after=5 "${QEMU_TIMEOUT:-120}" qemu-system-arm -M mps2-an386 -nographic \
        -monitor none -serial none -semihosting-config enable=on,target=native \
        -icount shift=0 -kernel "$elf" >"$1"
}

# The report without the per-action and per-event trace (kept in the log file).
report() {
    grep -v -E '^(INFO  )?(action|event): ' "$1" || true
}

echo "--- 1. one expectation made wrong: the run must fail"
FAILOVER_QEMU_WRONG_EXPECTATION=1 build --features qemu
status=0
run "$logs/wrong.log" || status=$?
report "$logs/wrong.log"
if [ "$status" -eq 0 ] || ! grep -q '^FAIL: ' "$logs/wrong.log"; then
    echo "run-qemu.sh: the image with a wrong expectation did not fail (status $status)" >&2
    exit 1
fi

echo "--- 2. defmt image"
build --features defmt
status=0
run "$logs/defmt.bin" || status=$?
if command -v defmt-print >/dev/null 2>&1; then
    defmt-print -e "$elf" <"$logs/defmt.bin" >"$logs/defmt.log"
    report "$logs/defmt.log"
    echo "($(grep -c '^INFO ' "$logs/defmt.log") defmt INFO lines in $logs/defmt.log)"
    if ! grep -q '^PASS: ' "$logs/defmt.log" && [ "$status" -eq 0 ]; then
        status=1
    fi
else
    echo "defmt-print not installed (cargo install defmt-print): log not decoded"
fi
if [ "$status" -ne 0 ]; then
    echo "run-qemu.sh: the defmt image failed (status $status)" >&2
    exit 1
fi
size -A "$elf" | grep -E '^(\.text|\.rodata|\.bss)'

echo "--- 3. text image"
build --features qemu
status=0
run "$logs/run.log" || status=$?
report "$logs/run.log"
if [ "$status" -ne 0 ] || ! grep -q '^PASS: ' "$logs/run.log"; then
    echo "run-qemu.sh: the conversation failed (status $status; full log: $logs/run.log)" >&2
    exit 1
fi
size -A "$elf" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit)'
