"""preflight.Undo on real directories: a failed start removes what it made and nothing else."""

from __future__ import annotations

from batchd.config import preflight
from batchd.config.settings import Settings


def _settings(tmp_path, state="state", socket="run/batchd.sock") -> Settings:
    return Settings(state_dir=tmp_path / state, socket=tmp_path / socket)


def test_new_directories_go_with_everything_in_them(tmp_path):
    settings = _settings(tmp_path, state="a/b/state", socket="r/s/batchd.sock")
    undo = preflight.Undo(settings)
    undo.mkdir(settings.state_dir, 0o750)
    undo.mkdir(settings.socket.parent, 0o750)
    settings.database.write_text("half a database")
    undo.locked = True
    undo.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_existing_state_dir_keeps_its_entries_and_an_existing_database(tmp_path):
    settings = _settings(tmp_path)
    settings.state_dir.mkdir()
    (settings.state_dir / "local").mkdir()
    settings.database.write_text("data")
    undo = preflight.Undo(settings)
    undo.mkdir(settings.state_dir, 0o750)
    for new in ("batchd.lock", "batchd.sqlite3-wal", "batchd.sqlite3-shm", "other"):
        (settings.state_dir / new).write_text("")
    (settings.state_dir / "local" / "jobs").mkdir()
    undo.locked = True
    undo.run()
    assert sorted(p.name for p in settings.state_dir.iterdir()) == [
        "batchd.sqlite3", "batchd.sqlite3-shm", "batchd.sqlite3-wal", "local"]
    assert (settings.state_dir / "local" / "jobs").is_dir()   # inside an entry that existed


def test_a_new_database_in_an_existing_state_dir_is_removed(tmp_path):
    settings = _settings(tmp_path)
    settings.state_dir.mkdir()
    undo = preflight.Undo(settings)
    for new in ("batchd.lock", "batchd.sqlite3", "batchd.sqlite3-wal"):
        (settings.state_dir / new).write_text("")
    undo.locked = True
    undo.run()
    assert list(settings.state_dir.iterdir()) == [] and settings.state_dir.is_dir()


def test_without_the_lock_or_with_a_live_socket_nothing_shared_is_removed(tmp_path):
    settings = _settings(tmp_path, socket="state/batchd.sock")
    undo = preflight.Undo(settings)
    undo.mkdir(settings.state_dir, 0o750)
    (settings.state_dir / "batchd.sqlite3").write_text("another daemon's")
    undo.run()                       # never locked: a racing daemon may own it
    assert (settings.state_dir / "batchd.sqlite3").exists()
    undo.locked, undo.contested = True, True
    undo.run()                       # the socket another daemon answers on lives here
    assert (settings.state_dir / "batchd.sqlite3").exists()


def test_region_names():
    for good in ("us-east-1", "eu-central-2", "us-gov-west-1", "cn-northwest-1",
                 "us-isob-east-1", "ap-southeast-4"):
        assert preflight.is_region(good), good
    for bad in ("", "mars", "useast1", "US-EAST-1", "us-east", "us east 1", "us-east-1 ",
                "us-east-1\n"):
        assert not preflight.is_region(bad), bad
