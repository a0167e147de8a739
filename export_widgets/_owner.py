"""Whether the process that owned a watch still runs, so a later process can tell its kernel has gone.

A watch row records the owner's pid, host name and process start time; the start time guards against a recycled
pid. Linux reads ``/proc``; elsewhere the optional ``psutil`` answers, or the start time is unknown.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys

__all__ = ["HOSTNAME", "PROCESS_STARTED", "owner_alive", "process_start_time"]

HOSTNAME = socket.gethostname()


def _linux_boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


_BOOT_TIME = _linux_boot_time() if sys.platform.startswith("linux") else None


def process_start_time(pid: int) -> float | None:
    """Epoch seconds when process ``pid`` started (None when this platform cannot tell)."""
    if _BOOT_TIME is not None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return _BOOT_TIME + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None
    try:
        psutil = importlib.import_module("psutil")  # optional (macOS/Windows without /proc); ships no types

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - not installed, no such process, access denied: all "cannot tell"
        return None


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


PROCESS_STARTED = process_start_time(os.getpid())


def owner_alive(pid: int | None, hostname: str | None, started_at: float | None) -> bool | None:
    """Whether the process that owned a watch still runs: None when it ran on another host (cannot tell).

    The start time guards against a recycled pid: a live process with a different start time is another one.
    """
    if pid is None or hostname != HOSTNAME:
        return None
    if not _pid_exists(pid):
        return False
    if started_at is None:
        return True
    now_started = process_start_time(pid)
    return now_started is None or abs(now_started - started_at) < 2.0
