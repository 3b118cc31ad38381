"""The CLI against a server: ``curate serve`` in a subprocess, commands with ``--workspace URL``.

Most commands run in-process through :func:`curate.cli.main` (the same code as the console script,
which costs seconds of imports per call on a loaded machine); the serve command and one client
command run as real console-script subprocesses.

Remote semantics checked here: dataset roots are server paths (below ``--data-root``), id files
are read on the client and uploaded, exports are written on the client.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import curate
from curate.cli import main

WRITE = "cli-write-token"
READ = "cli-read-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    for var in ("CURATE_TOKEN", "CURATE_WORKSPACE", "CURATE_TOKENS"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*args: str, env: dict | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        for key in env or {}:
            monkeypatch.delenv(key)
        return Result(code, out.out, out.err)

    return invoke


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "curate"
    base = {k: v for k, v in os.environ.items() if k not in ("CURATE_TOKEN", "CURATE_WORKSPACE", "CURATE_TOKENS")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env={**base, **(env or {})},
                          timeout=300)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Iterator[str]:
    ws_dir = tmp_path_factory.mktemp("cli-remote") / "ws"
    port = _free_port()
    exe = Path(sys.executable).parent / "curate"
    log = (ws_dir.parent / "server.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "serve", "--workspace", str(ws_dir), "--host", "127.0.0.1", "--port", str(port),
         "--token-write", WRITE, "--token-read", READ, "--data-root", str(synth_root.parent),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"curate serve did not start: {(ws_dir.parent / 'server.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
        log.close()


def test_cli_commands_against_a_url(served: str, synth_root: Path, tmp_path: Path, cli) -> None:
    w = ["--workspace", served, "--token", WRITE]
    r = run_cli("ingest", "kitti", str(synth_root), *w)  # the console script, as a user runs it
    assert r.returncode == 0, r.stderr
    assert "ingested" in r.stdout
    r = cli("embed", "--model", "bev-hist", *w)
    assert r.returncode == 0, r.stderr
    assert "embedding bev-hist" in r.stdout
    out = tmp_path / "sel.csv"
    r = cli("select", "--strategy", "kcenter", "--budget", "5", "--embedding", "bev-hist",
                "--where", "frame_index >= 3", "--out", str(out), *w)
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()
    picked = [row["id"] for row in csv.DictReader(out.open())]  # written on the client
    remote = curate.connect(served, token=READ)
    assert picked == remote.run(run_id).ids and len(picked) == 5
    # token from the environment; id file read here and uploaded
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(picked[:2]) + "\n")
    r = cli("label", "--ids", str(ids_file), env={"CURATE_WORKSPACE": served, "CURATE_TOKEN": WRITE})
    assert r.returncode == 0, r.stderr
    assert sorted(remote.labeled_ids()) == sorted(picked[:2])
    r = cli("label", "--run", run_id, *w)
    assert r.returncode == 0 and "5 labeled in total" in r.stdout, r.stdout + r.stderr
    r = cli("runs", "--workspace", served, "--token", READ)
    assert r.returncode == 0 and run_id in r.stdout and "kcenter" in r.stdout
    txt = tmp_path / "train.txt"
    r = cli("export", run_id, "--out", str(txt), "--workspace", served, "--token", READ)
    assert r.returncode == 0, r.stderr
    assert txt.read_text().split() == picked


@pytest.mark.parametrize("args,token,message", [
    (["runs"], None, "needs a token"),
    (["runs"], "wrong", "unknown token"),
    (["label", "--run", "run-000001"], READ, "needs a 'write' token"),
    (["select", "--strategy", "random", "--budget", "100000", "--embedding", "bev-hist"], WRITE, "lower the budget"),
    (["ingest", "kitti", "/etc"], WRITE, "outside the folders"),
    (["demo", "--small"], WRITE, "needs a workspace directory"),
])
def test_cli_remote_errors_are_one_line(served: str, args: list[str], token: str | None, message: str,
                                        cli) -> None:
    extra = ["--token", token] if token else []
    r = cli(*args, "--workspace", served, *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("curate: error: ") and message in lines[0], r.stderr


def test_cli_unreachable_server_is_a_clear_error(cli) -> None:
    r = cli("runs", "--workspace", f"http://127.0.0.1:{_free_port()}", "--token", "x")
    assert r.returncode == 2
    assert "cannot reach the curate server" in r.stderr and "Traceback" not in r.stderr


def test_cli_pretrain_against_a_url_reads_the_config_here(served: str, synth_root: Path, tmp_path: Path,
                                                          cli) -> None:
    w = ["--workspace", served, "--token", WRITE]
    remote = curate.connect(served, token=WRITE)
    if remote.count() == 0:  # this test alone: the module's server starts empty
        remote.ingest({"kind": "kitti", "root": synth_root.name})
    config = tmp_path / "ssl.toml"  # a client file: read here, sent as a dict
    config.write_text(
        'name = "cli-ssl"\n'
        "[model]\nnum_group = 16\ngroup_size = 16\ndecoder_depth = 1\n"
        "[data]\nnum_points = 256\n"
        "[loss]\nimage = 0.0\n"
        "[train]\nsteps = 2\nbatch_size = 4\nwarmup_steps = 0\nnum_workers = 0\ndevice = \"cpu\"\n"
    )
    r = cli("pretrain", "--config", str(config), *w)
    assert r.returncode == 0, r.stderr
    checkpoint = r.stdout.strip().splitlines()[-1]
    assert checkpoint.endswith("checkpoints/cli-ssl/last.pt")  # a path on the server
    job = remote.jobs()[-1]
    assert job.kind == "pretrain" and job.state == "succeeded" and job.result["steps"] == 2
    r = cli("pretrain", "--config", str(config), "--workspace", served, "--token", READ)
    assert r.returncode == 2 and "needs a 'write' token" in r.stderr
