"""The backend contract over memory, folder, moto's S3 server and Ceph RGW; S3 specifics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from xetstore.backends import open_backend
from xetstore.backends.base import Backend
from xetstore.backends.cache import CachingBackend
from xetstore.backends.folder import FolderBackend
from xetstore.backends.memory import MemoryBackend
from xetstore.backends.retrying import RetryingBackend
from xetstore.backends.s3 import S3Backend
from xetstore.backends.wrapper import BackendWrapper
from xetstore.errors import AccessDenied, BackendError, ConfigError, ObjectNotFound, TransientBackendError

from .backend_contract import BackendContract
from .backend_wrappers import FaultyBackend
from .fault_proxy import Fault, FaultProxy
from .s3_servers import S3Server, aws_env, bucket, moto_server, proxied, rgw_server, s3_server  # noqa: F401

# -- the contract, once per backend ----------------------------------------------


class _FailingSource:
    """A payload whose parts fail midway through being read."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"first part"
        raise OSError("the data source failed midway")


class TestMemoryBackend(BackendContract):
    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        return MemoryBackend()

    def interrupt_put(self, request: pytest.FixtureRequest, backend: Backend, key: str, data: bytes) -> None:
        with pytest.raises(OSError):
            backend.put(key, _FailingSource())  # type: ignore[arg-type]


_FOLDER_CHILD = """
import sys
from pathlib import Path
from xetstore.backends.folder import FolderBackend
FolderBackend(Path(sys.argv[1])).put(sys.argv[2], bytes(512 * 1024 * 1024))
"""


def innermost(backend: Backend) -> Backend:
    """The backend under any wrappers."""
    while isinstance(backend, BackendWrapper):
        backend = backend.inner
    return backend


class TestFolderBackend(BackendContract):
    leaves_temps = True

    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        return FolderBackend(request.getfixturevalue("tmp_path") / "backend")

    def interrupt_put(self, request: pytest.FixtureRequest, backend: Backend, key: str, data: bytes) -> None:
        """SIGKILL a process while its put is writing the temp file."""
        folder = innermost(backend)
        assert isinstance(folder, FolderBackend)
        child = subprocess.Popen([sys.executable, "-c", _FOLDER_CHILD, str(folder.root), key])
        try:
            while not list(folder.temp_files()):  # the put has begun writing
                assert child.poll() is None, "the put finished before it could be interrupted"
                time.sleep(0.001)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL
        assert len(list(folder.temp_files())) == 1  # left for cleanup, invisible to readers


# The wrappers a repository puts around its backend keep the same contract.


class TestRetryingMemoryBackend(TestMemoryBackend):
    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        return RetryingBackend(super().make_backend(request), base_delay=0.001)


class TestRetryingFolderBackend(TestFolderBackend):
    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        return RetryingBackend(super().make_backend(request), base_delay=0.001)


class TestCachingFolderBackend(TestFolderBackend):
    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        cache_dir = request.getfixturevalue("tmp_path") / "range-cache"
        return CachingBackend(super().make_backend(request), cache_dir, max_bytes=1 << 20)


@pytest.mark.s3
class TestS3Backend(BackendContract):
    many_keys = 25  # in pages of 10

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest, bucket: str) -> Backend:  # noqa: F811
        return self.make_backend(request)

    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        server: S3Server = request.getfixturevalue("s3_server")
        backend = S3Backend.from_url(server.url(request.getfixturevalue("bucket")))
        backend.page_size = 10
        request.addfinalizer(backend.close)
        return backend

    def interrupt_put(self, request: pytest.FixtureRequest, backend: Backend, key: str, data: bytes) -> None:
        """Drop the connection after 1 MiB of the request body, through the fault proxy."""
        backend = innermost(backend)
        assert isinstance(backend, S3Backend)
        proxy: FaultProxy = request.getfixturevalue("proxied")
        server: S3Server = request.getfixturevalue("s3_server")
        cut = proxy.add(Fault("reset_request", method="PUT", after=1024 * 1024))
        through_proxy = S3Backend.from_url(server.url(backend.bucket, endpoint=proxy.endpoint))
        with through_proxy, pytest.raises(TransientBackendError) as info:
            through_proxy.put(key, data)
        assert cut.fired == 1
        assert info.value.key == key


@pytest.mark.s3
class TestRetryingCachingS3Backend(TestS3Backend):
    """As a repository opens an S3 URL: a range cache over retries over S3."""

    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        cache_dir = request.getfixturevalue("tmp_path") / "range-cache"
        retrying = RetryingBackend(super().make_backend(request), base_delay=0.001)
        return CachingBackend(retrying, cache_dir, max_bytes=1 << 20)


# -- S3: configuration ------------------------------------------------------------


@pytest.mark.s3
def test_s3_url_options(aws_env: None) -> None:  # noqa: F811
    b = S3Backend.from_url("s3://bkt/some/prefix/?endpoint=http://127.0.0.1:1&region=eu-west-3&addressing=virtual")
    assert (b.bucket, b.prefix) == ("bkt", "some/prefix/")
    assert b._client.meta.region_name == "eu-west-3"
    assert b._client.meta.endpoint_url == "http://127.0.0.1:1"
    assert b._client.meta.config.s3 == {"addressing_style": "virtual"}
    plain = S3Backend.from_url("s3://bkt?endpoint=http://127.0.0.1:1")
    assert plain.prefix == "" and plain._client.meta.config.s3 == {"addressing_style": "path"}
    assert plain._client.meta.region_name == "us-east-1"  # a custom endpoint needs some region
    # Plain HTTP: botocore signs the body's SHA-256; HTTPS: an unsigned body with a CRC32.
    assert plain._client.meta.config.request_checksum_calculation == "when_required"
    tls = S3Backend.from_url("s3://bkt?endpoint=https://s3.example.org")
    assert tls._client.meta.config.request_checksum_calculation == "when_supported"
    aws = S3Backend.from_url("s3://bkt/p?region=eu-west-3")
    assert aws._client.meta.endpoint_url == "https://s3.eu-west-3.amazonaws.com"
    assert aws._client.meta.config.s3 is None  # botocore's own choice of addressing on AWS


@pytest.mark.s3
@pytest.mark.parametrize(
    "url, message",
    [
        ("s3://bkt/p?access_key=AKIA", "credentials never go in a repository URL"),
        ("s3://bkt/p?secret=x", "credentials never go in a repository URL"),
        ("s3://bkt/p?colour=blue", "unknown option(s) colour"),
        ("s3://bkt/p?addressing=sideways", "addressing must be one of"),
        ("s3:///prefix", "is not an S3 URL"),
    ],
)
def test_s3_url_refused(aws_env: None, url: str, message: str) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        S3Backend.from_url(url)


@pytest.mark.s3
def test_s3_endpoint_from_environment(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    backend = open_backend(f"s3://{bucket}/env")
    assert isinstance(backend, RetryingBackend)  # open_backend retries S3 calls
    assert backend.put("config", b"c")
    assert s3_server.keys(bucket) == {"env/config": 1}


@pytest.mark.s3
def test_s3_list_past_1000_keys(s3_server: S3Server, bucket: str) -> None:  # noqa: F811
    backend = S3Backend.from_url(s3_server.url(bucket))
    keys = {f"shards/{i:04x}" for i in range(1001)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: backend.put(k, b""), keys))
    listed = [i.key for i in backend.list("shards/")]
    assert len(listed) == 1001 and set(listed) == keys


@pytest.mark.s3
def test_s3_ignores_foreign_objects(s3_server: S3Server, bucket: str) -> None:  # noqa: F811
    s3_server.client().put_object(Bucket=bucket, Key="repo/README.TXT", Body=b"hi")
    s3_server.client().put_object(Bucket=bucket, Key="elsewhere/xorbs/x", Body=b"hi")
    backend = S3Backend.from_url(s3_server.url(bucket))
    backend.put("xorbs/x", b"mine")
    assert [i.key for i in backend.list()] == ["xorbs/x"]


# -- S3: errors ---------------------------------------------------------------------


@pytest.mark.s3
def test_s3_missing_bucket_is_a_clear_error(s3_server: S3Server) -> None:
    backend = S3Backend.from_url(s3_server.url("xetstore-no-such-bucket"))
    with pytest.raises(BackendError, match="bucket xetstore-no-such-bucket does not exist") as info:
        backend.put("config", b"c")
    assert not isinstance(info.value, TransientBackendError)


@pytest.mark.s3
def test_s3_wrong_credentials_are_access_denied(rgw_server: S3Server, aws_env: None) -> None:  # noqa: F811
    """moto accepts any signature, so only the real server shows this."""
    bucket_name = rgw_server.new_bucket()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            with pytest.raises(AccessDenied, match="check the credentials") as info:
                S3Backend.from_url(rgw_server.url(bucket_name)).get("config")
            assert info.value.key == "config"
            mp.setenv("AWS_ACCESS_KEY_ID", "nobody")
            with pytest.raises(AccessDenied):
                S3Backend.from_url(rgw_server.url(bucket_name)).put("config", b"c")
    finally:
        rgw_server.remove_bucket(bucket_name)


@pytest.mark.s3
def test_s3_unreachable_endpoint_is_transient(aws_env: None) -> None:  # noqa: F811
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = RetryingBackend(S3Backend.from_url(f"s3://bkt/p?endpoint=http://127.0.0.1:{port}"), 2, 0.0)
    with pytest.raises(TransientBackendError, match=r"config: .*gave up after 2 attempts"):
        backend.get("config")


@pytest.mark.s3
@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", method="PUT", status=503),
        Fault("status", method="PUT", status=500),
        Fault("reset_request", method="PUT", after=4096),
        Fault("lose_response", method="PUT"),
    ],
    ids=["503", "500", "reset", "lost-ack"],
)
def test_s3_put_faults(s3_server: S3Server, bucket: str, proxied: FaultProxy, fault: Fault) -> None:  # noqa: F811
    data = os.urandom(300_000)
    raw = S3Backend.from_url(s3_server.url(bucket, endpoint=proxied.endpoint))
    fault = proxied.add(replace(fault))  # a fresh copy: parameters are shared by runs
    with pytest.raises(TransientBackendError) as info:
        raw.put("xorbs/f", data)
    assert info.value.key == "xorbs/f" and fault.fired == 1
    # Retried: the same put is harmless whether or not the first one landed.
    fault.times += 1
    wrote = RetryingBackend(raw, 3, 0.0).put("xorbs/f", data)
    assert fault.fired == 2
    assert wrote is (fault.action != "lose_response")
    assert raw.get("xorbs/f") == data


@pytest.mark.s3
def test_s3_body_damaged_in_transit_is_refused_and_retried(
    s3_server: S3Server, bucket: str, proxied: FaultProxy  # noqa: F811
) -> None:
    """The server checks the body against its signed SHA-256 (or checksum) and refuses it."""
    if s3_server.name == "moto":
        pytest.skip("moto's server does not check request bodies against their hashes")
    data = os.urandom(300_000)
    raw = S3Backend.from_url(s3_server.url(bucket, endpoint=proxied.endpoint))
    damage = proxied.add(Fault("corrupt_request", method="PUT", after=123_456))
    with pytest.raises(TransientBackendError):
        raw.put("xorbs/c", data)
    assert damage.fired == 1
    assert not raw.exists("xorbs/c")
    damage.times += 1
    assert RetryingBackend(raw, 3, 0.0).put("xorbs/c", data) is True
    assert damage.fired == 2 and raw.get("xorbs/c") == data


@pytest.mark.s3
@pytest.mark.parametrize(
    "fault",
    [Fault("status", method="GET", status=503), Fault("cut_response", method="GET", after=50_000)],
    ids=["503", "cut"],
)
def test_s3_get_faults(s3_server: S3Server, bucket: str, proxied: FaultProxy, fault: Fault) -> None:  # noqa: F811
    data = os.urandom(300_000)
    raw = S3Backend.from_url(s3_server.url(bucket, endpoint=proxied.endpoint))
    raw.put("xorbs/g", data)
    fault = proxied.add(replace(fault))  # a fresh copy: parameters are shared by runs
    with pytest.raises(TransientBackendError):
        raw.get("xorbs/g", 1000, 250_000)
    fault.times += 1
    assert RetryingBackend(raw, 3, 0.0).get("xorbs/g", 1000, 250_000) == data[1000:250_000]
    assert fault.fired == 2


@pytest.mark.s3
def test_s3_listing_retried_whole(s3_server: S3Server, bucket: str, proxied: FaultProxy) -> None:  # noqa: F811
    raw = S3Backend.from_url(s3_server.url(bucket, endpoint=proxied.endpoint))
    raw.page_size = 5
    for i in range(12):
        raw.put(f"shards/{i:02d}", b"s")
    second_page = proxied.add(Fault("status", method="GET", path_contains="continuation-token", status=503))
    listed = [i.key for i in RetryingBackend(raw, 3, 0.0).list("shards/")]
    assert second_page.fired == 1
    assert sorted(listed) == [f"shards/{i:02d}" for i in range(12)]


# -- the retry policy ------------------------------------------------------------------


def test_retrying_retries_only_transient_errors() -> None:
    inner = FaultyBackend(MemoryBackend())
    inner.put("xorbs/a", b"abc")
    delays: list[float] = []
    backend = RetryingBackend(inner, attempts=4, base_delay=0.1, sleep=delays.append)
    inner.fail("get", times=3)
    assert backend.get("xorbs/a") == b"abc"
    assert len(delays) == 3 and all(0 <= d <= 0.1 * 2**i for i, d in enumerate(delays))
    inner.fail("get", error=lambda key: AccessDenied(key, "no"))
    with pytest.raises(AccessDenied):
        backend.get("xorbs/a")
    with pytest.raises(ObjectNotFound):
        backend.get("xorbs/missing")
    assert len(delays) == 3  # permanent errors are not retried


def test_retrying_gives_up_with_one_clear_error() -> None:
    inner = FaultyBackend(MemoryBackend())
    inner.fail("put", "xorbs/", times=10)
    backend = RetryingBackend(inner, attempts=3, base_delay=0.0)
    with pytest.raises(TransientBackendError) as info:
        backend.put("xorbs/abc", b"data")
    assert info.value.key == "xorbs/abc"
    assert "gave up after 3 attempts to write it" in str(info.value)
    assert inner.calls["put"] == 3
    assert not inner.exists("xorbs/abc")


@pytest.mark.s3
def test_s3_settings_from_an_aws_profile(
    s3_server: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Endpoint, region and keys from ~/.aws-style files, chosen by ?profile= or AWS_PROFILE."""
    key_id, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    config = tmp_path / "aws-config"
    config.write_text(f"[profile team]\nregion = eu-west-3\nendpoint_url = {s3_server.endpoint}\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[team]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)

    backend = S3Backend.from_url(f"s3://{bucket}/team?profile=team")
    assert backend._client.meta.region_name == "eu-west-3"
    assert backend._client.meta.config.s3 == {"addressing_style": "path"}  # a custom endpoint
    assert backend.put("config", b"c")
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert open_backend(f"s3://{bucket}/team").get("config") == b"c"
    assert s3_server.keys(bucket) == {"team/config": 1}
    assert secret not in backend.url
