#!/usr/bin/env bash
# Runs the comparison benchmarks and the allocation count, and prints the BENCHMARKS.md table.
#   scripts/bench.sh > /tmp/table.md
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo bench --quiet --features emulator --bench compare -- --output-format bencher >"$out/times" 2>"$out/log"
cargo bench --quiet --bench allocations >"$out/allocs" 2>>"$out/log"

python3 - "$out/times" "$out/allocs" <<'PY'
import re, sys, platform, subprocess

times = {}
for line in open(sys.argv[1]):
    m = re.match(r"test (.+?) \.\.\. bench:\s+([\d,]+) ns/iter \(\+/- ([\d,]+)\)", line)
    if m:
        times[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
allocs = {}
for line in open(sys.argv[2]):
    shape, config, n = line.rstrip("\n").split("\t")
    allocs[(shape, config)] = float(n)

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
print(f"Machine: {cpu()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; {rustc}; {platform.system()} {platform.release()}\n")

OPTIONS = "with file, line, thread names"
configs = [c for (s, c) in allocs if s == "one span" and OPTIONS not in c]
options = [c for (s, c) in allocs if s == "one span" and OPTIONS in c]
for shape in ["one span", "three nested spans"]:
    print(f"### {shape.capitalize()}\n")
    print("| configuration | sink ns/event | ratio | pipe ns/event | ratio | allocations/event |")
    print("|---|---:|---:|---:|---:|---:|")
    base = {w: times.get(f"{shape} | {w}/fmt().json() (baseline)", (0, 0))[0] for w in ("sink", "pipe")}
    for config in configs:
        cells = []
        for w in ("sink", "pipe"):
            t = times.get(f"{shape} | {w}/{config}")
            if t is None:
                cells += ["–", "–"]
            else:
                cells += [f"{t[0]:,} ± {t[1]:,}", f"{t[0] / base[w]:.2f}×" if base[w] else "–"]
        print(f"| {config} | {' | '.join(cells)} | {allocs[(shape, config)]:g} |")
    print()

print(f"### With the callsite's file and line and the thread name, one span\n")
print("Each ratio is to the stock formatter with the same options on.\n")
print("| configuration | sink ns/event | ratio | allocations/event |")
print("|---|---:|---:|---:|")
base = times.get(f"one span | sink/fmt().json() {OPTIONS}", (0, 0))[0]
for config in options:
    t = times.get(f"one span | sink/{config}")
    if t:
        print(f"| {config} | {t[0]:,} ± {t[1]:,} | {t[0] / base:.2f}× | {allocs[('one span', config)]:g} |")
print()

print("### Two threads at once, one span\n")
print("| configuration | sink ns/event (both threads) | ratio | pipe ns/event (both threads) | ratio |")
print("|---|---:|---:|---:|---:|")
for config in ["fmt().json() (baseline)", "ours, Nested"]:
    cells = []
    for w in ("sink", "pipe"):
        base = times[f"two threads | one span | {w}/fmt().json() (baseline)"][0]
        t = times[f"two threads | one span | {w}/{config}"][0]
        cells += [f"{t:,}", f"{t / base:.2f}×"]
    print(f"| {config} | {' | '.join(cells)} |")
print()
print("### Start-up\n")
print("| case | time |")
print("|---|---:|")
for name, (t, spread) in times.items():
    if name.startswith("startup/"):
        print(f"| {name.split('/', 1)[1]} | {t / 1000:,.1f} µs ± {spread / 1000:,.1f} |")
PY
