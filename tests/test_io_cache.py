"""The one download cache (enformer.io.cache): root, offline switches, atomic download."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from enformer.io import cache
from enformer.version import __version__


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/ok`` (10 bytes), ``/short`` (announces 10, sends 4); anything else is 404."""

    agents: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).agents.append(self.headers.get("User-Agent", ""))
        if self.path in ("/ok", "/short"):
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"0123456789" if self.path == "/ok" else b"0123")
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def base(monkeypatch) -> Iterator[str]:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    handler = type("H", (_Handler,), {"agents": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.agents
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_cache_root_and_offline_switches(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ENFORMER_CACHE", str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
    assert cache.resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    assert cache.resolve_cache_dir(None) == tmp_path / "c"
    for var in cache.OFFLINE_ENVS:
        monkeypatch.delenv(var, raising=False)
    assert cache.offline_reason() is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert cache.offline_switch() is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "Yes")
    assert cache.offline_reason() == "offline mode is on (HF_HUB_OFFLINE=Yes)"
    monkeypatch.setenv("ENFORMER_OFFLINE", "1")
    assert cache.offline_switch() == "ENFORMER_OFFLINE"


def test_download_is_atomic_and_names_the_url(base, tmp_path: Path):
    url, agents = base
    dest = tmp_path / "sub" / "file.bin"
    assert cache.download(url + "/ok", dest) == dest
    assert dest.read_bytes() == b"0123456789"
    assert agents == [f"enformer/{__version__}"]
    failures = {
        "/missing": ("http", "HTTP 404"),
        "/short": ("cut-short", "got 4 of 10 bytes"),
    }
    for path, (kind, text) in failures.items():
        with pytest.raises(cache.DownloadError) as info:
            cache.download(url + path, tmp_path / "sub" / "other.bin")
        assert info.value.kind == kind and text in str(info.value)
        assert f"download of {url}{path} failed" in str(info.value)
    with pytest.raises(cache.DownloadError, match="more than 5 bytes") as info:
        cache.download(url + "/ok", dest, max_bytes=5)
    assert info.value.kind == "too-large"

    def reject(part: Path) -> None:
        assert part.read_bytes() == b"0123456789" and part.name.endswith(".part")
        raise ValueError("not what we wanted")

    with pytest.raises(cache.DownloadError, match="not what we wanted") as info:
        cache.download(url + "/ok", tmp_path / "sub" / "third.bin", check=reject)
    assert info.value.kind == "rejected"
    # Failures left nothing behind, and the earlier file under its final name is intact.
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]
    assert dest.read_bytes() == b"0123456789"
