"""Ctrl-C: a Python process blocked in `Subscriber.poll(timeout=60)`
exits with KeyboardInterrupt on SIGINT. The time from the signal to the
KeyboardInterrupt is printed (a measurement on a shared machine, never
asserted): both processes read CLOCK_MONOTONIC, one clock on Linux."""

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import MDBUS_BIN

# The child: subscribes (waiting for the publisher the parent starts after
# it), follows the feed until told it is idle (a line on stdin), then
# blocks in poll(timeout=60) `rounds` times; each SIGINT is caught and
# timed, but the last, which is let through (exit by KeyboardInterrupt).
CHILD = r"""
import sys, time
import mdbus
feed, rounds, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sub = mdbus.Subscriber(feed, replay=True, open_timeout=60)
while not sub.live:
    sub.poll(max=1 << 20, timeout=0.1)
print("live", flush=True)
if mode == "idle":
    sys.stdin.readline()  # the publisher has exited
    while len(sub.poll(max=1 << 20, timeout=0)):
        pass
for k in range(rounds):
    try:  # (a SIGINT right after the line lands in the try too)
        print(f"polling {k}", flush=True)
        while True:  # a live feed returns batches: poll again
            sub.poll(max=4096, timeout=60)
            if mode == "idle":
                print("returned", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted {k} {time.monotonic_ns()}", flush=True)
        if k == rounds - 1:
            raise
"""


class Lines:
    """The child's stdout lines, read by a thread; `expect` waits for a
    line starting with `prefix` under a watchdog."""

    def __init__(self, proc):
        self.proc, self.lines, self.cond = proc, [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def expect(self, prefix, seconds):
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                for i, line in enumerate(self.lines):
                    if line is None:
                        raise AssertionError(
                            f"the child exited ({self.proc.wait()}) before {prefix!r}: {self.proc.stderr.read()}"
                        )
                    if line.startswith(prefix):
                        del self.lines[: i + 1]
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {prefix!r}: {self.lines}")
                self.cond.wait(left)


def sleeping(pid):
    """Whether the process's main thread sleeps (in a wait, not running)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


def wait_for(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.mark.parametrize("mode", ["idle", "live"])
def test_sigint_interrupts_a_blocking_poll(tmp_path, mode, capsys):
    if not MDBUS_BIN.exists():
        pytest.skip(f"{MDBUS_BIN} not built")
    feed = f"pyint-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rounds = 5 if mode == "idle" else 1
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), feed, str(rounds), mode], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Idle: a short feed the child follows to its end; live: one that
    # runs on while the child is interrupted (unless the machine is so
    # slow that it ended first: the poll is then idle).
    duration = "1" if mode == "idle" else "4"
    publisher = subprocess.Popen(
        [str(MDBUS_BIN), "publish", "--feed", feed, "--wal", str(tmp_path / "wal"), "--synthetic", "--rate", "20000",
         "--duration", duration, "--no-board", "--segment-bytes", "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        lines = Lines(child)
        lines.expect("live", 60)
        if mode == "idle":
            assert publisher.wait(timeout=60) == 0, publisher.stderr.read()
            child.stdin.write("idle\n")
            child.stdin.flush()
        latencies = []
        for k in range(rounds):
            lines.expect(f"polling {k}", 30)
            if mode == "idle":
                # In the wait (asleep), not between bytecodes.
                wait_for(lambda: sleeping(child.pid), 30, "the child to block in poll")
            sent = time.monotonic_ns()
            child.send_signal(signal.SIGINT)
            got = int(lines.expect(f"interrupted {k}", 30).split()[2])
            latencies.append((got - sent) / 1e6)
        _, err = child.communicate(timeout=30)
        exited = (time.monotonic_ns() - sent) / 1e6
        # Python ends an uncaught KeyboardInterrupt by dying of SIGINT.
        assert child.returncode == -signal.SIGINT, err
        assert "KeyboardInterrupt" in err
        assert "returned" not in lines.lines, "an idle poll returned before its timeout"
        assert publisher.wait(timeout=60) == 0, publisher.stderr.read()
    finally:
        for proc in (child, publisher):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with capsys.disabled():
        print(f"\nSIGINT -> KeyboardInterrupt in Subscriber.poll(timeout=60), {mode} feed: "
              f"median {statistics.median(latencies):.2f} ms of {[round(x, 2) for x in latencies]}; "
              f"process exit {exited:.0f} ms after the last SIGINT")


# The child: reads the WAL again and again (`read_wal` in one call, or
# `iter_wal` batch by batch) until SIGINT, `rounds` times, as above.
READER = r"""
import sys, time
import mdbus
wal, feed, rounds, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for k in range(rounds):
    try:
        print(f"reading {k}", flush=True)
        while True:
            if how == "read_wal":
                mdbus.read_wal(wal, feed, kind="all")
            else:
                for _ in mdbus.iter_wal(wal, feed, kind="tick"):
                    pass
    except KeyboardInterrupt:
        print(f"interrupted {k} {time.monotonic_ns()}", flush=True)
        if k == rounds - 1:
            raise
"""


@pytest.mark.parametrize("how", ["read_wal", "iter_wal"])
def test_sigint_interrupts_a_long_wal_read(published, tmp_path, how, capsys):
    script = tmp_path / "reader.py"
    script.write_text(READER)
    rounds = 3
    child = subprocess.Popen(
        [sys.executable, str(script), str(published.wal), published.feed, str(rounds), how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = Lines(child)
        latencies = []
        for k in range(rounds):
            lines.expect(f"reading {k}", 30)
            # Once the read is under way (the interpreter started and
            # imported before the line).
            wait_for(lambda: not sleeping(child.pid), 30, "the child to read")
            sent = time.monotonic_ns()
            child.send_signal(signal.SIGINT)
            got = int(lines.expect(f"interrupted {k}", 30).split()[2])
            latencies.append((got - sent) / 1e6)
        _, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGINT, err
        assert "KeyboardInterrupt" in err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with capsys.disabled():
        print(f"\nSIGINT -> KeyboardInterrupt in a {how} loop over {len(published.segments())} segments: "
              f"median {statistics.median(latencies):.2f} ms of {[round(x, 2) for x in latencies]}")


# The child: once mdbus is imported, numpy's version check (Python code
# that the numpy crate ran at a read's first array, where a SIGINT became a
# PanicException) raises KeyboardInterrupt if it runs again; a read and a
# conversion must not run it.
NUMPY_LOOKUP = r"""
import sys
import numpy, numpy.lib
import mdbus
import mdbus._convert

def refuse(*args, **kwargs):
    raise KeyboardInterrupt("numpy's version check ran after import")

numpy.lib.NumpyVersion = refuse
ticks = mdbus.read_wal(sys.argv[1], sys.argv[2], kind="tick")
cols = mdbus._convert._columns(ticks, "tick", float_prices=True)  # gather: an array argument borrowed
print(len(ticks), len(cols[0][2]), flush=True)
"""


def test_numpy_is_looked_up_at_import_not_in_a_read(published, tmp_path):
    script = tmp_path / "lookup.py"
    script.write_text(NUMPY_LOOKUP)
    run = subprocess.run(
        [sys.executable, str(script), str(published.wal), published.feed],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    n, rows = map(int, run.stdout.split())
    assert n > 0 and rows == n, run.stdout
