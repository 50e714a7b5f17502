"""A full disk under the state directory: batchd refuses new work with a clear error (503,
batchctl exit 8), keeps running and answering, loses nothing, and takes work again once space
is freed. The full disk is real: a 32 MiB tmpfs mounted on the state directory (needs root)."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess

import pytest

from tests import raw_http

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk_daemon(daemon_factory):
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2")
    daemon.state_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0750", "tmpfs",
                              str(daemon.state_dir)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield daemon.start()
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()
        subprocess.run(["umount", "-l", str(daemon.state_dir)], capture_output=True)


def fill(directory) -> int:
    """Write until the filesystem says ENOSPC; return the bytes written."""
    written = 0
    chunk = b"\0" * (256 * 1024)
    with open(directory / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        while True:  # the last few KiB
            try:
                written += fh.write(b"\0" * 4096)
            except OSError:
                return written


def test_full_disk_refuses_new_work_and_keeps_what_it_has(small_disk_daemon):
    daemon = small_disk_daemon
    root = daemon.root
    (root / "small.csv").write_text("sample_name,file_name\na,x\nb,y\n")
    daemon.ctl("import", "before", "--metadata", str(root / "small.csv"))
    rows = "".join(f"sample-{i:06d},s3://bucket/some/long/prefix/file-{i:06d}.fastq.gz,"
                   f"{'x' * 80}\n" for i in range(60_000))
    big = root / "big.csv"
    big.write_text("sample_name,file_name,notes\n" + rows)   # ~9 MiB of samples

    fill(daemon.state_dir)
    result = daemon.ctl("import", "after", "--metadata", str(big), check=False)
    assert result.returncode == 8, (result.stdout, result.stderr)
    assert "cannot write its state database" in result.stderr
    assert "frees disk space" in result.stderr and "Traceback" not in result.stderr

    # Still running, still answering, nothing lost; health says why it refuses work.
    daemon.assert_alive()
    daemon.ctl("ping")
    code, body = raw_http.get(daemon.socket, "/v1/projects")
    projects = {p["name"]: p for p in json.loads(body)["projects"]}
    assert code == 200 and set(projects) == {"before"} and projects["before"]["samples"] == 2
    code, body = raw_http.get(daemon.socket, "/healthz")
    assert code == 503 and json.loads(body)["db_writable"] is False
    status = daemon.ctl("daemon", "status", check=False)
    assert status.returncode == 8 and "NOT WRITABLE" in status.stdout

    # An administrator frees space: work is taken again, no restart needed.
    (daemon.state_dir / "filler").unlink()
    code, _ = raw_http.get(daemon.socket, "/healthz")
    assert code == 200
    daemon.ctl("import", "after", "--metadata", str(big))
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.state_dir / "batchd.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {r[0]: r[1] for r in db.execute(
            "SELECT p.name, count(s.id) FROM projects p JOIN samples s ON s.project_id = p.id "
            "GROUP BY p.name")}
    assert names == {"before": 2, "after": 60_000}
