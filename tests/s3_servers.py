"""Real S3 servers for tests: moto's server in-process (always) and Ceph RGW (when configured).

Import the fixtures into a test module to use them:

    from .s3_servers import S3Server, aws_env, bucket, moto_server, rgw_server, s3_server  # noqa: F401

`s3_server` is parametrised over both servers; the RGW variant runs when
XETSTORE_TEST_RGW_ENDPOINT and AWS keys are set (`eval "$(tools/rgw start)"`)
and is skipped with that reason otherwise. Tests may use boto3 directly to set
up buckets and to look at what xetstore stored: an independent view of the server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from .fault_proxy import FaultProxy

__all__ = ["S3Server", "RGW_ENV", "aws_env", "moto_server", "rgw_server", "s3_server", "bucket", "proxied"]

RGW_ENV = "XETSTORE_TEST_RGW_ENDPOINT"
_RGW_SKIP = (
    f"Ceph RGW not configured: set {RGW_ENV} and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
    '(eval "$(tools/rgw start)")'
)


@dataclass
class S3Server:
    name: str
    endpoint: str

    def client(self, endpoint: str | None = None) -> Any:
        return boto3.session.Session().client(  # not boto3's default session: it caches the environment
            "s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )  # fmt: skip

    def url(self, bucket: str, prefix: str = "repo", endpoint: str | None = None) -> str:
        return f"s3://{bucket}/{prefix}?endpoint={endpoint or self.endpoint}"

    def new_bucket(self) -> str:
        name = f"xetstore-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object under `prefix`, with its size, as the server lists it."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}

    def remove_bucket(self, bucket: str) -> None:
        client = self.client()
        keys = list(self.keys(bucket))
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for the test servers; no profile, config file or endpoint of the user's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server("moto", f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rgw_server() -> S3Server:
    endpoint = os.environ.get(RGW_ENV)
    if not endpoint or not os.environ.get("AWS_ACCESS_KEY_ID"):
        pytest.skip(_RGW_SKIP)
    return S3Server("rgw", endpoint)


@pytest.fixture(params=[pytest.param("moto", marks=pytest.mark.s3), pytest.param("rgw", marks=pytest.mark.s3)])
def s3_server(request: pytest.FixtureRequest, aws_env: None) -> S3Server:
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket, removed with everything in it afterwards."""
    name = s3_server.new_bucket()
    yield name
    s3_server.remove_bucket(name)


@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test server; its `endpoint` goes in repository URLs."""
    host, _, port = s3_server.endpoint.removeprefix("http://").partition(":")
    proxy = FaultProxy(host, int(port)).start()
    yield proxy
    proxy.stop()
