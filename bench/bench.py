#!/usr/bin/env python3
"""Whole-tool benchmarks: dedupe side by side with its peers, in one run.

    python3 bench/bench.py            # everything (scan + find), 3 rounds
    python3 bench/bench.py scan       # dedupe scan vs find and fd
    python3 bench/bench.py find       # dedupe vs fclones and jdupes + the seed's table
    python3 bench/bench.py --rounds 5 --quick find
    sudo python3 bench/bench.py cold  # adaptive I/O: -t choices and peers, cold and warm
    sudo python3 bench/bench.py cache # the hash cache: re-runs (also on a slower disk), resume, fclones --cache
    python3 bench/bench.py link       # dedupe link vs fclones link and jdupes -L (bench/link.py)

Trees are made with `dedupe gen` (deterministic) under $BENCH_DIR
(default: target/bench) and reused while their parameters are unchanged.
Every tool runs once to warm the page cache, then the tools take turns,
round after round; the table shows the median wall time, the largest peak
RSS (from wait4), and the ratio to the best peer. No wall-clock threshold
fails anything: these are numbers to read, on a shared, noisy machine.
The group counts of every duplicate finder are printed side by side: they
must agree (a cross-tool oracle).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEDUPE = os.path.join(ROOT, "target", "release", "dedupe")

# name -> (dedupe gen arguments, description)
TREES = {
    "seed-10k": (["--files", "10000", "--dirs", "500", "--max-size", "80KiB", "--seed", "10"],
                 "10,000 files / 500 dirs (the seed's shape)"),
    "mixed-100k": (["--files", "100000", "--dirs", "2000", "--sizes", "lognormal", "--median", "16KiB",
                    "--max-size", "4MiB", "--dup-ratio", "0.2", "--seed", "100"],
                   "100,000 files, log-normal sizes up to 4 MiB, ~20% duplicates"),
    "small-1m": (["--files", "1000000", "--dirs", "10000", "--max-size", "2KiB", "--seed", "1000"],
                 "1,000,000 files of 0-2 KiB in 10,000 dirs"),
    "large-100": (["--files", "100", "--dirs", "5", "--min-size", "8MiB", "--max-size", "96MiB",
                   "--dup-ratio", "0.33", "--near-ratio", "0.1", "--seed", "7"],
                  "100 large files of 8-96 MiB, a third duplicated"),
    "scan-100k": (["--files", "100000", "--dirs", "2000", "--max-size", "0", "--seed", "5"],
                  "100,000 empty files in 2,000 dirs (scan growth check)"),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_tools(need):
    missing = []
    for tool, how in need:
        if shutil.which(tool) is None:
            missing.append(how)
    for how in missing:
        print(f"installing: {' '.join(how)}", file=sys.stderr)
        try:
            sh(how, stdout=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"  could not install ({e}); that peer is skipped", file=sys.stderr)


def tree(base, name):
    args, _ = TREES[name]
    path = os.path.join(base, name)
    stamp = os.path.join(base, name + ".args")
    want = " ".join(args)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return path
    shutil.rmtree(path, ignore_errors=True)
    print(f"generating {name}: dedupe gen {want}", file=sys.stderr)
    sh([DEDUPE, "gen", path] + args)
    with open(stamp, "w") as f:
        f.write(want)
    return path


def measure(cmd, out_path):
    """Runs cmd with stdout to out_path; returns (seconds, peak RSS MiB, exit code).

    Peak RSS comes from GNU time, not from wait4 here: a child forked from
    this Python process would count Python's own pages in its peak.
    """
    stats = out_path + ".time"
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", stats] + cmd,
                               stdout=out, stderr=subprocess.DEVNULL)
        secs = time.perf_counter() - start
    with open(stats) as f:
        lines = [l for l in f.read().split() if l.isdigit()]
    peak_kib = int(lines[-1]) if lines else 0
    return secs, peak_kib / 1024.0, code


def fdupes_groups(path):
    """Groups in fdupes-style output (paths, blank line between groups)."""
    groups, current = 0, 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                current += 1
            else:
                if current > 1:
                    groups += 1
                current = 0
    return groups + (1 if current > 1 else 0)


def line_count(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def run_table(title, tools, rounds, scratch):
    """tools: list of (name, cmd, is_ours). Returns {name: (median s, peak MiB, out_path)}."""
    results = {name: [] for name, _, _ in tools}
    peaks = {name: 0.0 for name, _, _ in tools}
    outs = {}
    for name, cmd, _ in tools:  # warm-up: page cache, binaries
        outs[name] = os.path.join(scratch, name.replace(" ", "_") + ".out")
        measure(cmd, outs[name])
    for r in range(rounds):
        order = tools if r % 2 == 0 else list(reversed(tools))
        for name, cmd, _ in order:
            secs, peak, code = measure(cmd, outs[name])
            results[name].append(secs)
            peaks[name] = max(peaks[name], peak)
            if code not in (0, 1):
                print(f"  {name} exited {code}", file=sys.stderr)
    med = {n: statistics.median(v) for n, v in results.items()}
    peers = [n for n, _, ours in tools if not ours]
    best_peer = min((med[n] for n in peers), default=None)
    print(f"\n### {title}\n")
    print("| tool | median wall | peak RSS | vs best peer |")
    print("|---|---|---|---|")
    for name, _, ours in tools:
        ratio = f"{med[name] / best_peer:.2f}x" if best_peer else "-"
        print(f"| {name} | {med[name]:.3f} s | {peaks[name]:.1f} MiB | {ratio} |")
    return {n: (med[n], peaks[n], outs[n]) for n in med}


def bench_scan(base, rounds, scratch):
    ensure_tools([("fdfind", ["apt-get", "install", "-y", "-qq", "fd-find"])])
    for name in ["scan-100k", "small-1m"]:
        path = tree(base, name)
        tools = [
            ("dedupe scan", [DEDUPE, "scan", "--progress", "never", path], True),
            ("dedupe scan --parallel-scan", [DEDUPE, "scan", "--parallel-scan", "--progress", "never", path], True),
            ("find -printf %s", ["find", path, "-type", "f", "-printf", "%s\n"], False),
        ]
        if shutil.which("fdfind"):
            tools.append(("fd -u -t f", ["fdfind", "-u", "-t", "f", ".", path], False))
        res = run_table(f"scan: {TREES[name][1]}", tools, rounds, scratch)
        print()
        for tool, (secs, peak, out) in res.items():
            n = line_count(out)
            print(f"- {tool}: {n} files, {n / secs:,.0f} files/s")
        find_rate = line_count(res["find -printf %s"][2]) / res["find -printf %s"][0]
        ours = line_count(res["dedupe scan"][2]) / res["dedupe scan"][0]
        print(f"- dedupe scan / find files/s: {ours / find_rate:.2f}x (target >= 1.5x); "
              f"dedupe scan peak {res['dedupe scan'][1]:.1f} MiB (target < 32 MiB)")


def first_result(cmd, scratch):
    """Runs a JSON Lines command; returns (seconds to the first group line,
    total seconds, peak RSS MiB, the summary object)."""
    stats = os.path.join(scratch, "first.time")
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", stats] + cmd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first, last = None, None
    for line in proc.stdout:
        if first is None and line.startswith(b'{"type":"group"'):
            first = time.perf_counter() - start
        last = line
    proc.wait()
    secs = time.perf_counter() - start
    with open(stats) as f:
        digits = [l for l in f.read().split() if l.isdigit()]
    return first, secs, (int(digits[-1]) / 1024.0 if digits else 0.0), json.loads(last) if last else {}


def bench_find(base, rounds, scratch, names):
    ensure_tools([
        ("jdupes", ["apt-get", "install", "-y", "-qq", "jdupes"]),
        ("fclones", ["cargo", "install", "fclones", "--version", "0.35.0", "--locked"]),
    ])
    fclones = shutil.which("fclones") or os.path.expanduser("~/.cargo/bin/fclones")
    for name in names:
        path = tree(base, name)
        tools = [("dedupe", [DEDUPE, "--no-cache", "--progress", "never", "--format", "fdupes", path], True)]
        if os.path.exists(fclones):
            tools.append(("fclones 0.35", [fclones, "--progress=false", "group", "--format", "fdupes", path], False))
        if shutil.which("jdupes"):
            tools.append(("jdupes", ["jdupes", "-r", "-q", path], False))
        res = run_table(f"find: {TREES[name][1]}", tools, rounds, scratch)
        counts = {tool: fdupes_groups(out) for tool, (_, _, out) in res.items()}
        agree = "agree" if len(set(counts.values())) == 1 else "DISAGREE"
        print(f"\ngroups found: {', '.join(f'{t} {c}' for t, c in counts.items())} ({agree})")
        # The seed's table, streaming vs traditional. Time to first result is
        # measured from outside: process start to the first group line on
        # stdout (median of the rounds).
        rows = []
        for mode, flag in [("Traditional", "--no-streaming"), ("Streaming", "--streaming")]:
            firsts, rates, peak = [], [], 0.0
            for _ in range(rounds):
                first, secs, p, summary = first_result([DEDUPE, flag, "--no-cache", "--progress", "never",
                                                        "--format", "jsonl", path], scratch)
                firsts.append(first)
                rates.append(summary.get("files_scanned", 0) / secs)
                peak = max(peak, p)
            known = [f for f in firsts if f is not None]
            rows.append((mode, statistics.median(rates), peak,
                         statistics.median(known) * 1000 if known else None))
        print("\n| Mode | Files/sec | Memory Peak | Time to First Result |")
        print("|---|---|---|---|")
        for mode, rate, peak, first in rows:
            ftxt = "-" if first is None else f"{first / 1000:.3f}s"
            print(f"| {mode} | {rate:,.0f} | {peak:.1f} MB | {ftxt} |")


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def device_rate(base):
    """The device's cold sequential read rate (bytes/s): the large tree's
    files read whole, cold, by 1 and by 4 parallel `cat`s; the faster."""
    path = tree(base, "large-100")
    files = sorted((os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs),
                   key=os.path.getsize, reverse=True)
    pick, total = [], 0
    for f in files:
        if total > 2 << 30:
            break
        pick.append(f)
        total += os.path.getsize(f)
    best = 0.0
    for streams in (1, 4):
        drop_caches()
        start = time.perf_counter()
        procs = [subprocess.Popen(["cat"] + pick[i::streams], stdout=subprocess.DEVNULL)
                 for i in range(streams)]
        for p in procs:
            p.wait()
        rate = total / (time.perf_counter() - start)
        print(f"device: {total / 2**30:.2f} GiB read cold by {streams} stream(s): "
              f"{rate / 1e6:.0f} MB/s", file=sys.stderr)
        best = max(best, rate)
    return best


def bytes_read(path, flags):
    """Bytes a dedupe run reads (from its JSON summary)."""
    out = subprocess.run([DEDUPE, "--no-cache", "--progress", "never", "--format", "json"] + flags + [path],
                         capture_output=True, check=False).stdout
    summary = json.loads(out).get("summary", {})
    return sum(st.get("bytes_read", 0) for st in summary.get("stages", []))


def bench_cold(base, rounds, names):
    """Adaptive I/O: the default against fixed --threads, cold and warm,
    and the peers cold, all in one run. Cold runs drop the page cache
    before every run (root only)."""
    if os.geteuid() != 0:
        sys.exit("cold mode drops the page cache: run it as root")
    ensure_tools([
        ("jdupes", ["apt-get", "install", "-y", "-qq", "jdupes"]),
        ("fclones", ["cargo", "install", "fclones", "--version", "0.35.0", "--locked"]),
    ])
    fclones = shutil.which("fclones") or os.path.expanduser("~/.cargo/bin/fclones")
    rate = device_rate(base)
    print(f"\n### adaptive I/O, {rounds} round(s), page cache dropped before every cold run\n")
    print(f"device cold sequential rate: {rate / 1e6:.0f} MB/s\n")
    print("| tree | run | default | -t 2 | -t 8 | -t 32 | -t 64 | fclones | jdupes "
          "| default / best -t | default / faster peer | read floor | default / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    configs = [("default", [])] + [(f"-t {t}", ["-t", str(t)]) for t in (2, 8, 32, 64)]
    for name in names:
        path = tree(base, name)
        peers = []
        if os.path.exists(fclones):
            peers.append(("fclones", [fclones, "--progress=false", "group", "--format", "fdupes", path]))
        if shutil.which("jdupes"):
            peers.append(("jdupes", ["jdupes", "-r", "-q", path]))
        floor = bytes_read(path, []) / rate
        for mode in ("cold", "warm"):
            times = {}
            runs = configs + (peers if mode == "cold" else [])
            if mode == "warm":  # one run of each to fill the page cache
                for _, flags in configs:
                    subprocess.run([DEDUPE, "--no-cache", "--progress", "never"] + flags + [path],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for r in range(rounds):
                # Each round starts at another run: on a virtual disk the
                # host's cache warms as a session goes on, and a fixed order
                # would charge that to whichever runs first.
                for label, extra in runs[r % len(runs):] + runs[:r % len(runs)]:
                    cmd = extra if label in ("fclones", "jdupes") else \
                        [DEDUPE, "--no-cache", "--progress", "never"] + extra + [path]
                    if mode == "cold":
                        drop_caches()
                    start = time.perf_counter()
                    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    times.setdefault(label, []).append(time.perf_counter() - start)
            med = {k: statistics.median(v) for k, v in times.items()}
            best_t = min(med[l] for l, _ in configs[1:])
            peer = min((med[p] for p, _ in peers if p in med), default=None)
            cell = lambda k: f"{med[k]:.2f} s" if k in med else "-"
            print(f"| {name} | {mode} | " + " | ".join(cell(l) for l, _ in configs) + " | "
                  + " | ".join(cell(p) for p in ("fclones", "jdupes")) + " | "
                  + f"{med['default'] / best_t:.2f}x | "
                  + (f"{med['default'] / peer:.2f}x" if peer else "-") + " | "
                  + (f"{floor:.2f} s | {med['default'] / floor:.2f}x |" if mode == "cold" else "- | - |"),
                  flush=True)


def timed_io(cmd):
    """Runs cmd; returns (seconds, bytes read from disk, stdout). Disk
    reads are GNU time's %I (file-system inputs, 512-byte blocks), so page
    cache hits do not count."""
    with tempfile.NamedTemporaryFile("r") as stats:
        start = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%I", "-o", stats.name] + cmd,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        secs = time.perf_counter() - start
        digits = [l for l in open(stats.name).read().split() if l.isdigit()]
    return secs, (int(digits[-1]) * 512 if digits else 0), out


def summary_bytes(out):
    """Bytes the run's stages read, from its JSON report."""
    try:
        stages = json.loads(out).get("summary", {}).get("stages", [])
    except ValueError:
        return 0
    return sum(st.get("bytes_read", 0) for st in stages)


def slow_disk(path, rounds, rerun, fclones_rerun):
    """The cold re-run against a cold scan with the disk's read IOPS capped
    (bench/throttle.py): where the walk waits for the device."""
    from throttle import Throttle, timed  # noqa: PLC0415 (its own file)

    throttle = Throttle(path)
    if not throttle.available():
        print("- slower disk: skipped (no block-I/O cgroup on this machine)")
        return
    try:
        for iops in (10000, 2000):
            throttle.set(iops)
            runs = {"re-run": [], "scan": [], "fclones": []}
            for _ in range(rounds):
                for label, cmd in [("re-run", rerun),
                                   ("scan", [DEDUPE, "scan", "--progress", "never", path]),
                                   ("fclones", fclones_rerun)]:
                    if cmd:
                        drop_caches()
                        runs[label].append(timed(cmd, throttle))
            m = {k: statistics.median(v) for k, v in runs.items() if v}
            peer = f", fclones --cache re-run {m['fclones']:.2f} s" if "fclones" in m else ""
            print(f"- read IOPS capped at {iops:,}: re-run {m['re-run']:.2f} s, scan {m['scan']:.2f} s: "
                  f"{m['re-run'] / m['scan']:.2f}x{peer}")
    finally:
        throttle.close()


def bench_cache(base, rounds):
    """The hash cache: a cold re-run against a cold scan and the first run,
    the cost of filling a new cache, a resumed run, and fclones --cache."""
    if os.geteuid() != 0:
        sys.exit("cache mode drops the page cache: run it as root")
    ensure_tools([("fclones", ["cargo", "install", "fclones", "--version", "0.35.0", "--locked"])])
    fclones = shutil.which("fclones") or os.path.expanduser("~/.cargo/bin/fclones")
    fclones_cache = os.path.expanduser("~/.cache/fclones")
    path = tree(base, "mixed-100k")
    cache = tempfile.mkdtemp(prefix="dedupe-bench-cache-")
    run = lambda *flags: [DEDUPE, "--progress", "never", "--format", "json"] + list(flags) + [path]
    rows = {}
    # Re-run of the 100k tree, page cache dropped before every run.
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        time.sleep(3.5)  # nothing in the tree is "racily" new
        for label, cmd in [("first run (fills the cache)", run("--cache-dir", cache)),
                           ("re-run with the cache", run("--cache-dir", cache)),
                           ("--no-cache", run("--no-cache")),
                           ("dedupe scan", [DEDUPE, "scan", "--progress", "never", path])]:
            drop_caches()
            secs, disk, out = timed_io(cmd)
            rows.setdefault(label, []).append((secs, disk, summary_bytes(out)))
        if os.path.exists(fclones):
            shutil.rmtree(fclones_cache, ignore_errors=True)
            for label in ("fclones --cache, first run", "fclones --cache, re-run"):
                drop_caches()
                secs, disk, _ = timed_io([fclones, "--progress=false", "group", "--cache", path])
                rows.setdefault(label, []).append((secs, disk, 0))
    med = {k: (statistics.median(a for a, _, _ in v), statistics.median(b for _, b, _ in v),
               statistics.median(c for _, _, c in v)) for k, v in rows.items()}
    print(f"\n### hash cache: {TREES['mixed-100k'][1]}, cold, {rounds} round(s)\n")
    print("| run | wall | read from disk (%I) | stage bytes read |")
    print("|---|---|---|---|")
    for k, (secs, disk, staged) in med.items():
        print(f"| {k} | {secs:.2f} s | {disk / 2**20:,.0f} MiB | {staged / 2**20:,.0f} MiB |")
    re, first, scan = med["re-run with the cache"], med["first run (fills the cache)"], med["dedupe scan"]
    print(f"\n- re-run / cold scan: {re[0] / scan[0]:.2f}x (target <= 1.5x)")
    print(f"- re-run disk reads / first run's: {re[1] / max(first[1], 1):.1%} (target <= 10%)")
    if "fclones --cache, re-run" in med:
        print(f"- re-run / fclones --cache re-run: {re[0] / med['fclones --cache, re-run'][0]:.2f}x")
    slow_disk(path, rounds, run("--cache-dir", cache),
              [fclones, "--progress=false", "group", "--cache", path] if os.path.exists(fclones) else None)

    # Killed at 60% of a run (SIGKILL), then re-run: stage bytes read.
    kills = []
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        drop_caches()
        full_secs, _, out = timed_io(run("--no-cache"))
        full = summary_bytes(out)
        drop_caches()
        proc = subprocess.Popen(run("--cache-dir", cache), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(0.6 * full_secs)
        proc.kill()
        proc.wait()
        drop_caches()
        _, _, out = timed_io(run("--cache-dir", cache))
        kills.append(summary_bytes(out) / max(full, 1))
    print(f"- killed at 60% of a run, the re-run read {statistics.median(kills):.0%} "
          "of a full run's bytes (target <= 70%)")

    # Filling a new cache on the 1M small-file tree, warm.
    small = tree(base, "small-1m")
    subprocess.run([DEDUPE, "--no-cache", "--progress", "never", small], stdout=subprocess.DEVNULL)
    fill = {"--no-cache": [], "new cache": [], "re-run with it": []}
    peaks = {label: [] for label in fill}
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        for label in fill:
            flags = ["--no-cache"] if label == "--no-cache" else ["--cache-dir", cache]
            with tempfile.NamedTemporaryFile("r") as rss:
                start = time.perf_counter()
                subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, DEDUPE, "--progress", "never"]
                               + flags + [small], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                fill[label].append(time.perf_counter() - start)
                digits = [l for l in open(rss.name).read().split() if l.isdigit()]
                peaks[label].append(int(digits[-1]) / 1024 if digits else 0.0)
    nc, nw = statistics.median(fill["--no-cache"]), statistics.median(fill["new cache"])
    print(f"- {TREES['small-1m'][1]}, warm: --no-cache {nc:.2f} s, filling a new cache "
          f"{nw:.2f} s: {nw / nc:.2f}x (target <= 1.15x)")
    print("- peak RSS on it (`/usr/bin/time -f %M`, target <= 100 MiB): "
          + ", ".join(f"{label} {max(v):.1f} MiB (runs: {', '.join(f'{x:.1f}' for x in v)})"
                      for label, v in peaks.items()))
    shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all", "scan", "find", "cold", "cache", "link"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="only the 10k and 100k trees for find")
    ap.add_argument("--trees", nargs="*", help="find trees to run (default: all)")
    args = ap.parse_args()
    base = os.path.abspath(os.environ.get("BENCH_DIR", os.path.join(ROOT, "target", "bench")))
    os.makedirs(base, exist_ok=True)
    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    ensure_tools([("/usr/bin/time", ["apt-get", "install", "-y", "-qq", "time"])])
    print(f"# dedupe benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"{args.rounds} rounds, {'cold and warm' if args.what in ('cold', 'cache') else 'warm cache'}")
    names = args.trees or (["seed-10k", "mixed-100k"] if args.quick
                           else ["seed-10k", "mixed-100k", "small-1m", "large-100"])
    with tempfile.TemporaryDirectory() as scratch:
        if args.what in ("all", "scan"):
            bench_scan(base, args.rounds, scratch)
        if args.what in ("all", "find"):
            bench_find(base, args.rounds, scratch, names)
        if args.what == "cold":
            bench_cold(base, args.rounds, names)
        if args.what == "cache":
            bench_cache(base, args.rounds)
        if args.what == "link":
            from link import bench_link  # noqa: PLC0415 (its own file; it imports this one)
            bench_link(base, args.rounds)


if __name__ == "__main__":
    main()
