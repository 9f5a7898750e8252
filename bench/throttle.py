"""A slower disk for the cache benchmark: the same device, its read IOPS
capped for the benchmark's processes by a block-I/O cgroup.

Why: on this machine's virtual disk a cold walk of the 100k tree takes
0.3-0.5 s and keeps both CPUs busy, so anything a re-run adds (lookups,
grouping) adds to the wall time one for one. Users' libraries sit on hard
disks, NAS shares and USB drives, where the walk waits for the device and
the CPUs idle. Capping read IOPS (device mapper's delay target would be
closer to a real disk, but this kernel has no device mapper) shows the
re-run against a scan where the disk, not the CPU, sets the pace.

cgroup v2 (`io.max`) or v1 (`blkio.throttle.read_iops_device`), whichever
the machine has; without either, the section is skipped with a note.
"""

import os
import subprocess
import time

V2 = "/sys/fs/cgroup"
V1 = "/sys/fs/cgroup/blkio"
NAME = "dedupe-bench-slow"


def disk_of(path):
    """The major:minor of the whole disk holding `path` (a partition's
    limits are set on its disk)."""
    dev = os.stat(path).st_dev
    majmin = f"{os.major(dev)}:{os.minor(dev)}"
    sysdir = os.path.realpath(f"/sys/dev/block/{majmin}")
    if os.path.exists(os.path.join(sysdir, "partition")):
        with open(os.path.join(os.path.dirname(sysdir), "dev")) as f:
            majmin = f.read().strip()
    return majmin


class Throttle:
    """A cgroup whose members read at most `iops` requests a second from
    the disk holding `path`. `preexec` puts a child process into it."""

    def __init__(self, path):
        self.disk = disk_of(path)
        self.dir = None
        if os.path.exists(os.path.join(V2, "cgroup.controllers")):
            with open(os.path.join(V2, "cgroup.controllers")) as f:
                if "io" in f.read().split():
                    with open(os.path.join(V2, "cgroup.subtree_control"), "w") as f:
                        f.write("+io")
                    self.dir, self.v2 = os.path.join(V2, NAME), True
        elif os.path.exists(os.path.join(V1, "blkio.throttle.read_iops_device")):
            self.dir, self.v2 = os.path.join(V1, NAME), False
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)

    def available(self):
        return self.dir is not None

    def set(self, iops):
        if self.v2:
            name, value = "io.max", f"{self.disk} riops={iops or 'max'}"
        else:
            name, value = "blkio.throttle.read_iops_device", f"{self.disk} {iops}"
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value)

    def preexec(self):
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def close(self):
        if self.dir:
            self.set(0)
            try:
                os.rmdir(self.dir)
            except OSError:
                pass


def timed(cmd, throttle):
    """Wall seconds of `cmd` run in the throttled cgroup."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=throttle.preexec, check=False)
    return time.perf_counter() - start
