"""cyclegan_edu.download, data_scripts/ and `cyclegan-edu download` against a real HTTP server.

The server runs on 127.0.0.1 in this process (http.server in a thread) and serves archives and
weight files the tests make. Each route can honour or ignore ``Range``, break off a transfer
midway, stall, or be missing (404); every request is logged with its ``Range`` header.
"""
from __future__ import annotations

import contextlib
import io
import re
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from cyclegan_edu import cli
from cyclegan_edu.download import (DownloadError, DownloadRequestError, dataset_folder, download_dataset,
                                   download_file, download_pretrained, pretrained_weights)
from cyclegan_edu.networks import ResnetGenerator
from cyclegan_edu.pretrained import load_generator

REPO = Path(__file__).resolve().parents[1]
NAME = "horse2zebra"
LAYOUT = {f"{NAME}/{folder}/{i}.png": bytes([i]) * 100 for folder in ("trainA", "trainB", "testA", "testB")
          for i in range(2)}


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path]``: a dict with ``body`` and optional ``mode`` ("range": honour
    Range (default), "ignore_range": always 200 with the whole body, "wrong_range": 206 from byte 0
    whatever was asked, "truncate": send half of what
    was asked for then hang up (once), "stall": send the headers and half the body, then wait,
    "sleep": wait before answering)."""

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, mode = route["body"], route.get("mode", "range")
        if mode == "sleep":
            server.release.wait(10)
            return
        start = 0
        asked = self.headers.get("Range")
        if asked and mode != "ignore_range":
            start = 0 if mode == "wrong_range" else int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if mode in ("truncate", "stall"):
            self.wfile.write(payload[:len(payload) // 2])
            self.wfile.flush()
            if mode == "stall":
                server.release.wait(10)
            route["mode"] = "range"  # break off once; the next request is served whole
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):  # keep the test output clean
        pass


@contextlib.contextmanager
def serving():
    """A fresh server on a free port: ``.url``, ``.routes`` (path -> route), ``.requests`` (path, Range)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests, httpd.release = {}, [], threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    with serving() as httpd:
        yield httpd


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_dataset() -> dict[str, bytes]:
    return {name.removeprefix(f"{NAME}/"): data for name, data in LAYOUT.items()}


# ---------------------------------------------------------------- download_file: streaming and resume

def test_download_file_is_byte_identical_and_leaves_no_part(server, tmp_path):
    body = bytes(range(256)) * 400
    server.routes["/f.bin"] = {"body": body}
    dest = download_file(server.url + "/f.bin", tmp_path / "f.bin", chunk_size=1000, progress=False)
    assert dest.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert server.requests == [("/f.bin", None)]


def test_broken_transfer_leaves_part_and_next_call_resumes_with_range(server, tmp_path):
    body = bytes(range(256)) * 400
    server.routes["/f.bin"] = {"body": body, "mode": "truncate"}
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=rf"broke off after {len(body) // 2} (of {len(body)} )?bytes"):
        download_file(server.url + "/f.bin", dest, progress=False)
    part = tmp_path / "f.bin.part"
    assert not dest.exists() and part.read_bytes() == body[:len(body) // 2]
    download_file(server.url + "/f.bin", dest, progress=False)
    assert server.requests[1] == ("/f.bin", f"bytes={len(body) // 2}-")
    assert dest.read_bytes() == body and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = bytes(range(256)) * 40
    server.routes["/f.bin"] = {"body": body, "mode": "ignore_range"}
    (tmp_path / "f.bin.part").write_bytes(body[:1000])
    dest = download_file(server.url + "/f.bin", tmp_path / "f.bin", progress=False)
    assert server.requests == [("/f.bin", "bytes=1000-")]
    assert dest.read_bytes() == body  # not the first 1000 bytes twice


def test_unasked_byte_range_restarts_cleanly(server, tmp_path):
    body = bytes(range(256)) * 40
    server.routes["/f.bin"] = {"body": body, "mode": "wrong_range"}
    (tmp_path / "f.bin.part").write_bytes(body[:1000])
    assert download_file(server.url + "/f.bin", tmp_path / "f.bin", progress=False).read_bytes() == body
    assert server.requests == [("/f.bin", "bytes=1000-"), ("/f.bin", None)]


def test_complete_part_is_renamed_on_416(server, tmp_path):
    body = b"x" * 5000
    server.routes["/f.bin"] = {"body": body}
    (tmp_path / "f.bin.part").write_bytes(body)
    assert download_file(server.url + "/f.bin", tmp_path / "f.bin", progress=False).read_bytes() == body
    assert server.requests == [("/f.bin", "bytes=5000-")]


def test_part_longer_than_the_file_starts_over(server, tmp_path):
    body = b"y" * 3000
    server.routes["/f.bin"] = {"body": body}
    (tmp_path / "f.bin.part").write_bytes(b"z" * 4000)
    assert download_file(server.url + "/f.bin", tmp_path / "f.bin", progress=False).read_bytes() == body
    assert server.requests == [("/f.bin", "bytes=4000-"), ("/f.bin", None)]


# ---------------------------------------------------------------- clean errors

def test_http_404_names_status_and_url(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download_dataset(NAME, tmp_path / "datasets", url_base=server.url, progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and f"{server.url}/{NAME}.zip" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["sleep", "stall"])
def test_time_out_is_a_clean_error(server, tmp_path, mode):
    server.routes["/f.bin"] = {"body": b"a" * 10_000, "mode": mode}
    with pytest.raises(DownloadError, match=r"timed out after 0\.3 s") as info:
        download_file(server.url + "/f.bin", tmp_path / "f.bin", timeout=0.3, progress=False)
    assert "\n" not in str(info.value) and not (tmp_path / "f.bin").exists()


def test_unreachable_server_suggests_the_offline_domains(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot reach .*toy --list"):
        download_dataset(NAME, tmp_path / "datasets", url_base=f"http://127.0.0.1:{port}", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(DownloadError, match=r"unknown dataset 'horse2cat'; choose one of: apple2orange, "):
        download_dataset("horse2cat", tmp_path)
    with pytest.raises(DownloadError, match=r"unknown pretrained generator 'nope'; .*style_monet"):
        download_pretrained("nope", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cityscapes_explains_the_manual_download(server, tmp_path):
    with pytest.raises(DownloadError, match=r"cityscapes-dataset\.com.*prepare_cityscapes_dataset\.py"):
        download_dataset("cityscapes", tmp_path, url_base=server.url)
    assert server.requests == []


# ---------------------------------------------------------------- datasets: extraction

def test_dataset_download_gives_the_official_layout(server, tmp_path):
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    target = download_dataset(NAME, tmp_path / "datasets", url_base=server.url + "/", progress=False)
    assert target == tmp_path / "datasets" / NAME
    assert files_under(target) == expected_dataset()
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [NAME]  # zip and staging folders gone


def test_dataset_download_resumes_after_a_broken_transfer(server, tmp_path):
    archive = make_zip(LAYOUT, zipfile.ZIP_STORED)
    server.routes[f"/{NAME}.zip"] = {"body": archive, "mode": "truncate"}
    with pytest.raises(DownloadError, match="run again to resume"):
        download_dataset(NAME, tmp_path, url_base=server.url, progress=False)
    assert (tmp_path / f"{NAME}.zip.part").stat().st_size == len(archive) // 2
    download_dataset(NAME, tmp_path, url_base=server.url, progress=False)
    assert server.requests[1][1] == f"bytes={len(archive) // 2}-"
    assert files_under(tmp_path / NAME) == expected_dataset()


def corrupt_crc_zip() -> bytes:
    """A stored zip whose first member's data has one byte flipped, so only the CRC test notices."""
    archive = bytearray(make_zip(LAYOUT, zipfile.ZIP_STORED))
    start = archive.index(bytes([0]) * 100)
    archive[start + 50] ^= 0xFF
    return bytes(archive)


@pytest.mark.parametrize("body, message", [(corrupt_crc_zip(), "CRC error"), (b"<html>not a zip</html>", "corrupt")],
                         ids=["bad-crc", "not-a-zip"])
def test_corrupt_archive_is_refused_and_deleted(server, tmp_path, body, message):
    server.routes[f"/{NAME}.zip"] = {"body": body}
    with pytest.raises(DownloadError, match=message):
        download_dataset(NAME, tmp_path, url_base=server.url, progress=False)
    assert list(tmp_path.iterdir()) == []


def symlink_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{NAME}/trainA/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("evil, reason", [
    ("../../escaped.txt", "climbs out"),
    ("ABSOLUTE", "absolute path"),
    (symlink_member(), "symbolic link"),
], ids=["dotdot", "absolute", "symlink"])
def test_zip_slip_is_refused_and_nothing_is_written_outside(server, tmp_path, evil, reason):
    root = tmp_path / "root"
    escaped = tmp_path / "escaped.txt"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in LAYOUT.items():
            zf.writestr(name, data)
        zf.writestr(str(escaped) if evil == "ABSOLUTE" else evil, b"../../escaped.txt")
    server.routes[f"/{NAME}.zip"] = {"body": buffer.getvalue()}
    with pytest.raises(DownloadError, match=f"refusing to extract .*{reason}"):
        download_dataset(NAME, root, url_base=server.url, progress=False)
    assert not escaped.exists()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == ["root"]  # archive deleted too


# ---------------------------------------------------------------- datasets: an existing copy

def test_existing_dataset_is_kept_without_force_and_replaced_with_force(server, tmp_path):
    old = tmp_path / NAME
    old.mkdir()
    (old / "mine.txt").write_text("my own work")
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    with pytest.raises(DownloadError, match=r"already exists and is not empty; pass --force"):
        download_dataset(NAME, tmp_path, url_base=server.url, progress=False)
    assert files_under(old) == {"mine.txt": b"my own work"} and server.requests == []

    server.routes[f"/{NAME}.zip"] = {"body": corrupt_crc_zip()}  # a failed forced download keeps the old copy
    with pytest.raises(DownloadError, match="CRC error"):
        download_dataset(NAME, tmp_path, url_base=server.url, force=True, progress=False)
    assert files_under(old) == {"mine.txt": b"my own work"}

    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    download_dataset(NAME, tmp_path, url_base=server.url, force=True, progress=False)
    assert files_under(old) == expected_dataset()
    assert [p.name for p in tmp_path.iterdir()] == [NAME]


def test_empty_existing_folder_needs_no_force(server, tmp_path):
    (tmp_path / NAME).mkdir()
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    assert files_under(download_dataset(NAME, tmp_path, url_base=server.url, progress=False)) == expected_dataset()


# ---------------------------------------------------------------- pretrained generators

def generator_bytes(seed: int = 0) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A tiny ResnetGenerator's state_dict (the official key names), as torch.save writes it."""
    torch.manual_seed(seed)
    state = ResnetGenerator(ngf=4, n_blocks=1).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def test_pretrained_download_loads_into_the_generator(server, tmp_path):
    body, state = generator_bytes()
    server.routes["/horse2zebra.pth"] = {"body": body}
    dest = download_pretrained("horse2zebra", tmp_path, url_base=server.url, progress=False)
    assert dest == tmp_path / "horse2zebra_pretrained" / "latest_net_G.pth"
    loaded = load_generator(dest).state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert [p.name for p in dest.parent.iterdir()] == ["latest_net_G.pth"]


def test_dataset_folder_and_pretrained_weights_download_once(server, tmp_path):
    """What the chapters call: the first call downloads, later calls reuse the files without a request."""
    body, _ = generator_bytes()
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    server.routes["/horse2zebra.pth"] = {"body": body}
    for _ in range(2):
        folder = dataset_folder(NAME, tmp_path / "datasets", url_base=server.url, progress=False)
        weights = pretrained_weights("horse2zebra", tmp_path / "checkpoints", url_base=server.url, progress=False)
    assert files_under(folder) == expected_dataset()
    assert weights == tmp_path / "checkpoints" / "horse2zebra_pretrained" / "latest_net_G.pth"
    assert [path for path, _ in server.requests] == [f"/{NAME}.zip", "/horse2zebra.pth"]


def test_garbage_pretrained_file_is_rejected_and_removed(server, tmp_path):
    server.routes["/horse2zebra.pth"] = {"body": b"<html>not found</html>" * 10}
    with pytest.raises(DownloadError, match=r"horse2zebra\.pth is not a usable generator, the download was deleted"):
        download_pretrained("horse2zebra", tmp_path, url_base=server.url, progress=False)
    assert list(tmp_path.rglob("*")) == []

    good, _ = generator_bytes(1)  # with force, a bad file never replaces a good one
    server.routes["/horse2zebra.pth"] = {"body": good}
    dest = download_pretrained("horse2zebra", tmp_path, url_base=server.url, progress=False)
    with pytest.raises(DownloadError, match="already exists; pass --force"):
        download_pretrained("horse2zebra", tmp_path, url_base=server.url, progress=False)
    server.routes["/horse2zebra.pth"] = {"body": good[:len(good) // 2]}  # a truncated file, served as complete
    with pytest.raises(DownloadError, match="not a usable generator"):
        download_pretrained("horse2zebra", tmp_path, url_base=server.url, force=True, progress=False)
    assert dest.read_bytes() == good and [p.name for p in dest.parent.iterdir()] == ["latest_net_G.pth"]


# ---------------------------------------------------------------- the command lines

SCRIPT_RUNS = {  # id: script and NAME; all run at once (each pays for importing torch)
    "ok": ("download_cyclegan_dataset.py", NAME),
    "404": ("download_cyclegan_dataset.py", "monet2photo"),
    "unknown": ("download_cyclegan_dataset.py", "horse2cat"),
    "unknown_pretrained": ("download_pretrained.py", "horse2cat"),
}


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path, str]]:
    """Each of SCRIPT_RUNS run as ``python data_scripts/SCRIPT NAME --root data --url-base URL`` in a
    fresh folder (so the scripts need neither the repository as working directory nor an install)."""
    with serving() as httpd:
        httpd.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
        started = {}
        for key, (script, name) in SCRIPT_RUNS.items():
            cwd = tmp_path_factory.mktemp(key)
            started[key] = cwd, subprocess.Popen(
                [sys.executable, str(REPO / "data_scripts" / script), name, "--root", "data", "--url-base", httpd.url],
                cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs = {}
        for key, (cwd, process) in started.items():
            stdout, stderr = process.communicate(timeout=120)
            runs[key] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), cwd, httpd.url
    return runs


def test_dataset_script_downloads(script_runs):
    done, cwd, _ = script_runs["ok"]
    assert done.returncode == 0, done.stderr
    assert files_under(cwd / "data" / NAME) == expected_dataset()
    assert done.stdout == f"saved to {Path('data') / NAME}\n"


SCRIPT_ERRORS = {  # id: exit status (as the CLI's: 2 for a request to change, 1 for the server) and stderr
    "404": (1, r"error: HTTP 404 Not Found from {url}/monet2photo\.zip; check the name and --url-base"),
    "unknown": (2, r"error: unknown dataset 'horse2cat'; choose one of: apple2orange, .*, horse2zebra, .*"),
    "unknown_pretrained": (2, r"error: unknown pretrained generator 'horse2cat'; choose one of: horse2zebra, .*"),
}


@pytest.mark.parametrize("key", SCRIPT_ERRORS)
def test_scripts_fail_with_one_line(script_runs, key):
    done, cwd, url = script_runs[key]
    status, error = SCRIPT_ERRORS[key]
    assert done.returncode == status and done.stdout == ""
    assert re.fullmatch(error.format(url=re.escape(url)) + "\n", done.stderr), done.stderr
    assert list((cwd / "data").glob("*")) == []


def test_cli_download_subcommand(server, tmp_path, capsys):
    body, _ = generator_bytes()
    server.routes["/style_monet.pth"] = {"body": body}
    assert cli.main(["download", "pretrained", "style_monet", "--root", str(tmp_path), "--url-base", server.url]) == 0
    assert (tmp_path / "style_monet_pretrained" / "latest_net_G.pth").read_bytes() == body
    capsys.readouterr()
    assert cli.main(["download", "dataset", NAME, "--root", str(tmp_path), "--url-base", server.url]) == 1
    error = capsys.readouterr().err
    assert re.fullmatch(r"cyclegan-edu: error: HTTP 404 Not Found from \S+/horse2zebra\.zip; .*\n", error)


# ---------------------------------------------------------------- time-outs and exit codes

@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")], ids=["zero", "negative", "nan", "inf"])
def test_a_bad_timeout_is_named_as_such_not_as_a_bad_url(server, tmp_path, timeout):
    server.routes["/f.bin"] = {"body": b"a" * 100}
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    expected = rf"timeout {re.escape(repr(timeout))} \(--timeout\): the seconds to wait for the server must be a positive number"
    for call in (lambda: download_file(server.url + "/f.bin", tmp_path / "f.bin", timeout=timeout, progress=False),
                 lambda: download_dataset(NAME, tmp_path, url_base=server.url, timeout=timeout, progress=False),
                 lambda: download_pretrained(NAME, tmp_path, url_base=server.url, timeout=timeout, progress=False)):
        with pytest.raises(DownloadRequestError, match=expected):
            call()
    assert server.requests == [] and list(tmp_path.iterdir()) == []


def cli_download(server, tmp_path, *args: str) -> list[str]:
    return ["download", *args, "--root", str(tmp_path), "--url-base", server.url]


@pytest.mark.parametrize("args, error", [
    (["dataset", "horse2cat"], r"unknown dataset 'horse2cat'; choose one of: apple2orange, .*"),
    (["pretrained", "nope"], r"unknown pretrained generator 'nope'; choose one of: .*"),
    (["dataset", NAME, "--timeout", "0"], r"timeout 0\.0 \(--timeout\): .* must be a positive number, e\.g\. --timeout 30"),
    (["dataset", NAME, "--timeout", "-5"], r"timeout -5\.0 \(--timeout\): .*"),
    (["pretrained", NAME, "--timeout", "nan"], r"timeout nan \(--timeout\): .*"),
    (["dataset", "cityscapes"], r"cityscapes cannot be downloaded automatically .*prepare_cityscapes_dataset\.py .*"),
    (["dataset", NAME], r"\S+/horse2zebra already exists and is not empty; pass --force .*"),
    (["pretrained", NAME], r"\S+/latest_net_G\.pth already exists; pass --force .*"),
    (["dataset", "maps", "--url-base", "localhost:1"], r"bad URL 'localhost:1/maps\.zip' \(no http:// or https:// "
                                                          r"server\); --url-base must start with http:// or https://"),
    (["dataset", "maps", "--url-base", "http://"], r"bad URL 'http:/maps\.zip' \(no http:// .*"),
    (["dataset", "maps", "--url-base", "http://127.0.0.1:99999"], r"bad URL \S+ \(Port out of range 0-65535\); .*"),
    (["pretrained", "sat2map", "--url-base", "http://127.0.0.1:1/my files"], r"bad URL '\S+ files/sat2map\.pth' "
                                                                            r"\(URL can't contain control characters.*"),
], ids=["unknown-dataset", "unknown-pretrained", "timeout-0", "timeout-negative", "timeout-nan", "cityscapes",
        "existing-dataset", "existing-pretrained", "url-base-without-scheme", "url-base-without-server",
        "url-base-port", "url-base-space"])
def test_cli_download_user_errors_exit_2_and_fetch_nothing(server, tmp_path, capsys, args, error):
    """With a copy of horse2zebra (dataset and generator) already there: a bad --timeout is named before it."""
    server.routes[f"/{NAME}.zip"] = {"body": make_zip(LAYOUT)}
    server.routes[f"/{NAME}.pth"] = {"body": generator_bytes()[0]}
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "mine.txt").write_text("my own work")
    (tmp_path / f"{NAME}_pretrained").mkdir()
    (tmp_path / f"{NAME}_pretrained" / "latest_net_G.pth").write_text("my own weights")
    before = files_under(tmp_path)
    command = ["download", *args, "--root", str(tmp_path)]
    if "--url-base" not in args:
        command += ["--url-base", server.url]
    assert cli.main(command) == 2
    assert re.fullmatch(rf"cyclegan-edu: error: {error}\n", capsys.readouterr().err)
    assert server.requests == [] and files_under(tmp_path) == before


@pytest.mark.parametrize("route, args, error", [
    (None, ["dataset", NAME], r"HTTP 404 Not Found from \S+/horse2zebra\.zip; check the name and --url-base"),
    ({"body": b"a" * 10_000, "mode": "sleep"}, ["dataset", NAME, "--timeout", "0.3"],
     r"timed out after 0\.3 s waiting for \S+/horse2zebra\.zip; run again to retry"),
    ({"body": make_zip(LAYOUT, zipfile.ZIP_STORED), "mode": "truncate"}, ["dataset", NAME],
     r"transfer of \S+/horse2zebra\.zip broke off after \d+ of \d+ bytes; run again to resume"),
    ({"body": b"<html>not a zip</html>"}, ["dataset", NAME], r"\S+/horse2zebra\.zip is corrupt or incomplete .*"),
    ({"body": b"<html>not found</html>"}, ["pretrained", NAME], r"\S+/horse2zebra\.pth is not a usable generator, .*"),
], ids=["http-404", "time-out", "broken-transfer", "corrupt-archive", "not-a-generator"])
def test_cli_download_network_and_server_failures_exit_1(server, tmp_path, capsys, route, args, error):
    if route is not None:
        server.routes[f"/{NAME}.{'zip' if args[0] == 'dataset' else 'pth'}"] = route
    assert cli.main(cli_download(server, tmp_path, *args)) == 1
    assert re.fullmatch(rf"cyclegan-edu: error: {error}", capsys.readouterr().err.splitlines()[-1])  # after the progress bar


def test_cli_download_without_a_network_exits_1(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert cli.main(["download", "dataset", NAME, "--root", str(tmp_path), "--url-base", f"http://127.0.0.1:{port}"]) == 1
    assert re.fullmatch(r"cyclegan-edu: error: cannot reach \S+ \(.*\); no network\? .*toy --list\n",
                        capsys.readouterr().err)
