"""An S3-compatible backend (AWS S3, Ceph RGW, MinIO, R2): the only module that imports boto3.

    s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:7480&region=us-east-1&addressing=path&profile=NAME

Endpoint, region, profile and credentials come from the standard AWS configuration
(AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/...), and the
URL query overrides the first four. Credentials never appear in a URL and are never
written anywhere by xetstore. botocore's own retries are disabled (one attempt per
call): `RetryingBackend` is the one place that retries.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qs, urlparse

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from ..errors import AccessDenied, BackendError, ConfigError, ObjectNotFound, TransientBackendError
from .base import Backend, ObjectInfo, Payload, validate_key

__all__ = ["S3Backend"]

log = logging.getLogger("xetstore")

_T = TypeVar("_T")

_QUERY_KEYS = ("endpoint", "region", "addressing", "profile")
_ADDRESSING = ("path", "virtual", "auto")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
}  # fmt: skip
_TRANSIENT = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestLimitExceeded",
    "TooManyRequests", "RequestTimeout", "InternalError", "ServiceUnavailable",
    "ConditionalRequestConflict", "OperationAborted", "BadDigest", "XAmzContentSHA256Mismatch",
}  # fmt: skip
_NO_CREDENTIALS = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)
_CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
# Dropped, refused or timed-out connections and bodies cut short: worth another try.
_NETWORK = (
    bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError,
    bx.ResponseStreamingError, bx.FlexibleChecksumError,
)  # fmt: skip


class S3Backend(Backend):
    """Objects under `prefix/` in one bucket; one thread-safe boto3 client."""

    remote = True

    def __init__(self, client: Any, bucket: str, prefix: str, url: str, page_size: int = 1000) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = url
        self.page_size = page_size

    @classmethod
    def from_url(cls, url: str) -> S3Backend:
        """The backend an `s3://BUCKET/PREFIX?...` URL names."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"{url!r} is not an S3 URL; use s3://BUCKET/PREFIX")
        options = _options(url, parsed.query)
        try:
            # A session is not thread-safe; the client built from it is.
            session = boto3.session.Session(profile_name=options.get("profile"))
            client = _client(session, options, options.get("addressing"), "when_supported")
            endpoint = client.meta.endpoint_url
            # Self-hosted servers (RGW, MinIO, ...) rarely resolve bucket subdomains.
            addressing = options.get("addressing") or ("path" if _custom_endpoint(endpoint) else None)
            # Over plain HTTP botocore signs the body's SHA-256, which the server checks:
            # a CRC32 as well would cost one more pass over every xorb and add nothing
            # (and older servers, e.g. Ceph RGW 16, ignore x-amz-checksum-* headers, so
            # an unsigned body with a CRC32 would go unchecked there).
            checksums = "when_required" if endpoint.startswith("http:") else "when_supported"
            if (addressing, checksums) != (options.get("addressing"), "when_supported"):
                client = _client(session, options, addressing, checksums)
        except (bx.BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot use {url}: {exc}") from None
        prefix = parsed.path.strip("/")
        shown = f"s3://{parsed.netloc}/{prefix}" + (f"?{parsed.query}" if parsed.query else "")
        return cls(client, parsed.netloc, prefix, shown)

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # -- the Backend contract -------------------------------------------------

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        name = self._name(key)
        if start < 0 or (end is not None and end < 0):
            raise ValueError(f"negative range [{start}, {end}) for {key}")
        if end is not None and end <= start:
            self.stat(key)  # an empty range of a missing object is still missing
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            args["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            response = self._call(key, lambda: self._client.get_object(**args), range_ok=True)
        except _PastTheEnd:
            return b""
        return self._call(key, lambda: _body(key, response, start, end))

    def put(self, key: str, data: Payload) -> bool:
        name = self._name(key)

        def put() -> bool:
            if isinstance(data, os.PathLike):  # a spooled file: botocore streams it
                with open(data, "rb") as body:
                    return self._put_object(name, body)
            stream = data if isinstance(data, bytes) else _PartsReader(data)  # a fresh one per attempt
            return self._put_object(name, stream)

        return self._call(key, put)

    def _put_object(self, name: str, body: Any) -> bool:
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=body, IfNoneMatch="*")
        except bx.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                return False  # content-named: the existing object holds these bytes
            raise
        return True

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        head = self._call(key, lambda: self._client.head_object(Bucket=self.bucket, Key=name))
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._call(key, lambda: self._client.delete_object(Bucket=self.bucket, Key=name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            page = self._call(prefix or "(all keys)", lambda: self._list_page(prefix, token))  # noqa: B023 (called at once)
            for item in page.get("Contents", ()):
                info = self._info(item)
                if info is not None:
                    yield info
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def close(self) -> None:
        self._client.close()

    # -- plumbing -------------------------------------------------------------

    def _list_page(self, prefix: str, token: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": self.page_size}
        if token:
            args["ContinuationToken"] = token
        page: dict[str, Any] = self._client.list_objects_v2(**args)
        return page

    def _info(self, item: dict[str, Any]) -> ObjectInfo | None:
        key = item["Key"][len(self.prefix) :]
        try:
            validate_key(key)
        except ConfigError:
            log.debug("ignoring foreign object %s in %s", item["Key"], self.url)
            return None
        return ObjectInfo(key, int(item["Size"]), item["LastModified"].timestamp())

    def _call(self, key: str, fn: Callable[[], _T], range_ok: bool = False) -> _T:
        """Run one S3 request; translate every botocore failure into a xetstore error."""
        try:
            return fn()
        except bx.ClientError as exc:
            if range_ok and _code(exc) in ("InvalidRange", "416"):
                raise _PastTheEnd() from None
            _raise_client_error(key, self, exc)
        except _NO_CREDENTIALS as exc:
            raise AccessDenied(key, f"no usable S3 credentials ({exc}); {_CREDENTIALS_HINT}") from None
        except bx.SSLError as exc:  # a certificate problem does not pass by itself
            raise BackendError(key, f"TLS failure talking to {self.url}: {exc}") from None
        except _NETWORK as exc:
            raise TransientBackendError(key, f"{type(exc).__name__}: {exc}") from None
        except bx.BotoCoreError as exc:
            raise BackendError(key, f"S3 client error: {exc}") from None


class _PastTheEnd(Exception):
    """A range that starts at or after the end of an existing object."""


def _raise_client_error(key: str, backend: S3Backend, exc: bx.ClientError) -> NoReturn:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    message = exc.response.get("Error", {}).get("Message") or code
    if code in _MISSING:
        raise ObjectNotFound(key, backend.url) from None
    if code == "NoSuchBucket":
        where = f"bucket {backend.bucket} does not exist at {backend.url}"
        raise BackendError(key, f"{where}; create it first (e.g. aws s3 mb s3://{backend.bucket})") from None
    if code in _DENIED or status == 403:
        hint = "check the credentials and the bucket policy"
        raise AccessDenied(key, f"S3 refused access ({code}: {message}); {hint}") from None
    if code in _TRANSIENT or status in (408, 429) or status >= 500:
        raise TransientBackendError(key, f"S3 error {code} (HTTP {status}): {message}") from None
    raise BackendError(key, f"S3 error {code} (HTTP {status}): {message}") from None


def _code(exc: bx.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _body(key: str, response: dict[str, Any], start: int, end: int | None) -> bytes:
    """The requested bytes, after checking that the server answered the range asked for."""
    data: bytes = response["Body"].read()  # raises IncompleteReadError if the body is cut short
    if not (start or end is not None):
        return data
    answered = response.get("ContentRange")  # "bytes FIRST-LAST/SIZE"
    if not answered:  # the server ignored the Range header and sent the whole object
        return data[start:end]
    first = answered.removeprefix("bytes ").split("-", 1)[0]
    if first != str(start):
        raise BackendError(key, f"asked for bytes from {start}, the server sent {answered}")
    return data


class _PartsReader(io.RawIOBase):
    """A payload's parts as one seekable stream: botocore reads it to sign and checksum it,
    seeks back and sends it, without the parts ever being joined into one buffer."""

    def __init__(self, data: Payload) -> None:
        super().__init__()
        if isinstance(data, os.PathLike):
            raise TypeError("a spooled file is streamed by botocore, not through _PartsReader")
        parts: Sequence[bytes | bytearray | memoryview]
        parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        self._parts = [memoryview(p).cast("B") for p in parts]
        self._starts: list[int] = []
        total = 0
        for part in self._parts:
            self._starts.append(total)
            total += len(part)
        self._size = total
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        part = self._parts[i][self._pos - self._starts[i] :]
        n = min(len(buffer), len(part))
        memoryview(buffer).cast("B")[:n] = part[:n]
        self._pos += n
        return n


def _options(url: str, query: str) -> dict[str, str]:
    raw = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(raw) - set(_QUERY_KEYS))
    if unknown:
        secretish = [k for k in unknown if "key" in k.lower() or "secret" in k.lower() or "token" in k.lower()]
        if secretish:
            raise ConfigError(
                f"credentials never go in a repository URL ({', '.join(secretish)}); "
                "use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            )
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in {url}; known: {', '.join(_QUERY_KEYS)}")
    options = {k: v[-1] for k, v in raw.items()}
    if options.get("addressing", "path") not in _ADDRESSING:
        raise ConfigError(f"addressing must be one of {', '.join(_ADDRESSING)}, not {options['addressing']!r}")
    return options


def _client(
    session: boto3.session.Session, options: dict[str, str], addressing: str | None, checksums: str
) -> Any:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # retried in RetryingBackend only
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        s3={"addressing_style": addressing} if addressing else None,
        request_checksum_calculation=checksums,
    )
    region = options.get("region") or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=options.get("endpoint"), region_name=region, config=config)


def _custom_endpoint(endpoint: str) -> bool:
    """Whether the client talks to something other than AWS itself."""
    host = urlparse(endpoint).hostname or ""
    return not host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
