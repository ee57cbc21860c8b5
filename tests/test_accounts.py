"""Accounts (issue 21, first part): people with roles and languages, passwords kept only as scrypt hashes,
one-time passwords printed alone for scripts, a growing wait then a lock after bad passwords, and an
archive's old shared `.credentials` converted and removed."""

from __future__ import annotations

import io
import sqlite3
import threading
from contextlib import closing

import pytest

from pipeline.cli.main import main
from pipeline.review import accounts
from pipeline.review.accounts import SignInRefused


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _every_byte(root) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_add_prints_the_password_alone_and_keeps_only_a_hash(tmp_path, capsys):
    archive = tmp_path / "archive"
    code, out, err = _cli(capsys, "users", "--out", str(archive), "add", "aigerim", "--role", "reviewer",
                          "--languages", "kk")
    assert code == 0, err
    password = out.strip()
    assert out == password + "\n" and len(password) >= 16
    assert accounts.authenticate(archive, "aigerim", password).languages == ("kk",)
    assert password.encode() not in _every_byte(archive), "no password in any file of the archive"
    assert (archive / accounts.FILE).stat().st_mode & 0o777 == 0o600
    code, out, _ = _cli(capsys, "users", "--out", str(archive), "list")
    assert code == 0 and out == "aigerim\treviewer\tkk\tmust change password\n"


def test_password_from_stdin_and_clear_refusals(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "archive"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert _cli(capsys, "users", "--out", str(archive), "add", "nurlan", "--role", "admin",
                "--password-stdin") == (0, "correct horse battery\n", "")
    assert accounts.authenticate(archive, "nurlan", "correct horse battery").role == "admin"
    code, out, err = _cli(capsys, "users", "--out", str(archive), "add", "nurlan", "--role", "reader")
    assert (code, out) == (2, "") and "exists already" in err and err.count("\n") == 1
    code, _, err = _cli(capsys, "users", "--out", str(archive), "add", "ayse", "--role", "reviewer")
    assert code == 2 and "--languages" in err
    code, _, err = _cli(capsys, "users", "--out", str(archive), "reset", "nobody")
    assert code == 2 and "no account called 'nobody'" in err
    code, _, err = _cli(capsys, "users", "--out", str(archive), "add", "../x", "--role", "reader")
    assert code == 2 and "not a usable account name" in err
    assert [a.name for a in accounts.accounts(archive)] == ["nurlan"], "a refusal changes nothing"


def test_bad_passwords_wait_longer_then_lock_until_reset(tmp_path, capsys):
    archive = tmp_path / "archive"
    password = accounts.add(archive, "reader1", "reader")
    now = 1000.0
    waits = []
    for _ in range(accounts.LOCK_AFTER):
        with pytest.raises(SignInRefused) as refused:
            accounts.authenticate(archive, "reader1", "guess", now=now)
        wait = refused.value.retry_after
        waits.append(wait)
        if wait:  # inside the wait even the right password is refused, unchecked
            with pytest.raises(SignInRefused, match="wait"):
                accounts.authenticate(archive, "reader1", password, now=now)
        now += wait + 0.001
    assert waits[:accounts.FREE_TRIES - 1] == [0.0] * (accounts.FREE_TRIES - 1)
    growing = waits[accounts.FREE_TRIES - 1:-1]
    assert growing == sorted(growing) and growing[0] > 0 and growing[-1] > growing[0]
    assert waits[-1] == 0.0, "locked: waiting no longer helps"
    with pytest.raises(SignInRefused, match="ask an admin to reset the account"):
        accounts.authenticate(archive, "reader1", password, now=now + 10_000)
    assert _cli(capsys, "users", "--out", str(archive), "list")[1].endswith("\tlocked\n")
    new = _cli(capsys, "users", "--out", str(archive), "reset", "reader1")[1].strip()
    assert new != password
    assert accounts.authenticate(archive, "reader1", new, now=now).name == "reader1"
    with pytest.raises(SignInRefused, match="wrong account name or password"):
        accounts.authenticate(archive, "reader1", password, now=now)


def test_an_unknown_name_and_a_wrong_password_read_the_same(tmp_path):
    archive = tmp_path / "archive"
    accounts.add(archive, "admin", "admin", password="right password here")
    messages = []
    for name in ("admin", "nobody"):
        with pytest.raises(SignInRefused) as refused:
            accounts.authenticate(archive, name, "wrong")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


def _refusals(archive, name: str, tries: int) -> list[tuple[str, float]]:
    """What `tries` wrong passwords in a row answer, each tried as soon as the last wait allows."""
    now, seen = 1000.0, []
    for _ in range(tries):
        with pytest.raises(SignInRefused) as refused:
            accounts.authenticate(archive, name, "wrong", now=now)
        seen.append((str(refused.value), refused.value.retry_after))
        now += refused.value.retry_after + 0.001
    return seen


def test_trying_names_never_tells_which_exist_or_are_disabled(tmp_path):
    """An unknown name waits and locks like an account, and a disabled or locked account says so only to
    the right password: a guesser cannot learn the team's names from the answers."""
    archive = tmp_path / "archive"
    accounts.add(archive, "admin", "admin", password="right password here")
    accounts.add(archive, "gone", "reader", password="another password")
    accounts.disable(archive, "gone")
    tries = accounts.LOCK_AFTER + 2
    answers = {name: _refusals(archive, name, tries) for name in ("admin", "nobody", "gone")}
    assert answers["admin"] == answers["nobody"] == answers["gone"]
    assert {message for message, _ in answers["admin"]} == {accounts.REFUSED, accounts.LOCKED}
    with pytest.raises(SignInRefused, match=accounts.LOCKED):
        accounts.authenticate(archive, "admin", "right password here", now=1e9)
    accounts.reset(archive, "gone", "a new password 1")
    accounts.disable(archive, "gone")
    with pytest.raises(SignInRefused, match="disabled"):
        accounts.authenticate(archive, "gone", "a new password 1")
    assert not any(b"nobody" in p.read_bytes() for p in archive.rglob("*") if p.is_file()), \
        "a name that is no account (maybe a password typed in the wrong field) is written nowhere"


def test_the_password_check_runs_outside_the_write_lock_and_every_guess_counts(tmp_path, monkeypatch):
    """While scrypt works on one try, the accounts database takes writes (sessions live there); three
    guesses at once are three failures, and right passwords at once all sign in."""
    archive = tmp_path / "archive"
    accounts.add(archive, "admin", "admin", password="right password here")
    hashing, release, real = threading.Event(), threading.Event(), accounts._hash
    def slow(*args):
        hashing.set()
        release.wait(30)
        return real(*args)
    monkeypatch.setattr(accounts, "_hash", slow)
    guesses = [threading.Thread(target=_guess, args=(archive,)) for _ in range(3)]
    for guess in guesses:
        guess.start()
    assert hashing.wait(30)
    with closing(sqlite3.connect(accounts.db_path(archive), timeout=0.5, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    release.set()
    for guess in guesses:
        guess.join(60)
    assert [a.name for a in accounts.accounts(archive)] == ["admin"]
    with closing(accounts.connect(archive)) as conn:
        assert conn.execute("SELECT failures FROM accounts").fetchone() == (3,)
    signed = []
    rights = [threading.Thread(target=lambda: signed.append(
        accounts.authenticate(archive, "admin", "right password here", now=1010.0).name)) for _ in range(4)]
    for right in rights:
        right.start()
    for right in rights:
        right.join(60)
    assert signed == ["admin"] * 4, "a right password is never refused for another try in flight"


def _guess(archive) -> None:
    with pytest.raises(SignInRefused):
        accounts.authenticate(archive, "admin", "wrong", now=1000.0)


def test_disable_stops_sign_in_and_keeps_the_account(tmp_path, capsys):
    archive = tmp_path / "archive"
    password = accounts.add(archive, "ug1", "reviewer", ("ug",))
    assert _cli(capsys, "users", "--out", str(archive), "disable", "ug1")[0] == 0
    with pytest.raises(SignInRefused, match="disabled"):
        accounts.authenticate(archive, "ug1", password)
    assert [a.disabled for a in accounts.accounts(archive)] == [True]
    reviewer = accounts.Account("ug1", "reviewer", ("ug",), False, False, False)
    assert reviewer.can_edit("ug") and not reviewer.can_edit("kk")


def test_old_shared_credentials_become_an_admin_and_the_file_goes(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / ".credentials").write_text("reviewer:old-shared-secret-123\n", encoding="utf-8")
    assert accounts.first_admin(archive) is None, "the converted account is the admin: no second one"
    assert not (archive / ".credentials").exists()
    account = accounts.authenticate(archive, "reviewer", "old-shared-secret-123")
    assert (account.role, account.must_change) == ("admin", False), "scripts that used it keep working"
    assert b"old-shared-secret-123" not in _every_byte(archive)


def test_first_start_announces_the_one_time_password_once_or_takes_testimony_auth(tmp_path, monkeypatch):
    monkeypatch.delenv("TESTIMONY_AUTH", raising=False)
    said: list[str] = []
    accounts.first_start(tmp_path / "a", announce=said.append)
    accounts.first_start(tmp_path / "a", announce=said.append)
    assert len(said) == 1 and "first admin 'admin'" in said[0]
    password = said[0].split("one-time password ")[1].split()[0]
    assert accounts.authenticate(tmp_path / "a", "admin", password).must_change
    monkeypatch.setenv("TESTIMONY_AUTH", "archivist:chosen by the archivist")
    accounts.first_start(tmp_path / "b", announce=said.append)
    assert "chosen by the archivist" not in said[-1]
    assert accounts.authenticate(tmp_path / "b", "archivist", "chosen by the archivist").role == "admin"


def test_first_start_makes_one_admin_once(tmp_path):
    archive = tmp_path / "archive"
    password = accounts.first_admin(archive)
    assert password and accounts.authenticate(archive, "admin", password).role == "admin"
    assert accounts.first_admin(archive) is None
    with sqlite3.connect(archive / accounts.FILE) as conn:
        (cost,) = conn.execute("SELECT cost FROM accounts").fetchone()
    assert cost == "n=32768,r=8,p=1", "the hash's cost is kept beside it"


def test_a_session_ends_at_sign_out_idle_lifetime_reset_and_disable(tmp_path):
    import time

    from pipeline.review import sessions

    archive = tmp_path / "archive"
    accounts.add(archive, "kk1", "reviewer", ("kk",))
    t0 = time.time() + 1
    token = sessions.start(archive, "kk1", now=t0)
    assert token.encode() not in _every_byte(archive), "only the token's hash is kept"
    assert sessions.lookup(archive, token, now=t0 + sessions.IDLE - 1).name == "kk1"
    steps = [t0 + sessions.IDLE * 0.9 * n for n in range(1, 20)]
    alive = [t for t in steps if sessions.lookup(archive, token, now=t) is not None]
    assert alive and max(alive) - t0 <= sessions.LIFETIME, "a busy session still ends at its lifetime"
    idle = sessions.start(archive, "kk1", now=t0)
    assert sessions.lookup(archive, idle, now=t0 + sessions.IDLE + 1) is None
    out = sessions.start(archive, "kk1", now=t0)
    sessions.end(archive, out)
    assert sessions.lookup(archive, out, now=t0) is None
    assert sessions.lookup(archive, "made-up", now=t0) is None
    before_reset = sessions.start(archive, "kk1")  # real clock from here: the reset's time is the real one
    accounts.reset(archive, "kk1")
    assert sessions.lookup(archive, before_reset) is None, "a reset ends the sessions started before it"
    live = sessions.start(archive, "kk1")
    assert sessions.lookup(archive, live).name == "kk1"
    accounts.disable(archive, "kk1")
    assert sessions.lookup(archive, live) is None, "a disabled account's session ends at once"
