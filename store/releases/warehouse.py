"""Where the release table's files live: a private local folder (the default) or an S3-compatible bucket.

The local warehouse is ``DATA/data/releases/`` (0700 folders, 0600 files) and needs no setting. An
object store is named in the release policy (``DATA/release-policy.toml``), never on a command line::

    [warehouse]
    url = "s3://consentry-releases/prod"        # s3://BUCKET[/PREFIX]; the bucket must exist
    endpoint = "https://minio.internal:9000"    # an S3-compatible server; leave out for AWS S3 itself
    region = "us-east-1"
    credentials_file = "/etc/consentry/s3.ini"  # optional: 0600, AWS shared-credentials format

The credentials come from that file (``[default]`` or ``credentials_profile``: ``aws_access_key_id``,
``aws_secret_access_key``, optionally ``aws_session_token``) or, without one, from the store's
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``). They live only
in this process's memory: they are never an argument, never in a message or a log line, and never in
the table's metadata (pyiceberg's FileIO properties are not written to it).

``ObjectStore.check`` is run before the catalog is touched: an unreachable endpoint, a missing bucket or
refused credentials stop the command with a message saying which, and nothing is created. The files are
read and written by pyiceberg's own ``PyArrowFileIO`` (pyarrow's ``S3FileSystem``); the store's
erasure and housekeeping list and delete objects through the same filesystem (``ReleaseTable.expire``).

Errors: ``WarehouseError`` (a ``ConsentryError``) for a setting or an endpoint that cannot be used;
``protocol.errors.InsecurePermissions`` for a credentials file others can read.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator

from protocol.errors import ConsentryError
from protocol.fields import FROZEN

# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_REGION = re.compile(r"^[a-z0-9-]{2,40}$")
_CONNECT_TIMEOUT_S = 5.0
_REQUEST_TIMEOUT_S = 30.0


class WarehouseError(ConsentryError):
    """The release table's object store cannot be used (a setting, the endpoint, the bucket or the credentials)."""


class WarehouseConfig(BaseModel):
    """``[warehouse]`` of the release policy: an S3-compatible bucket for the release table's files."""

    model_config = FROZEN

    url: str = Field(description="s3://BUCKET[/PREFIX]: where the table's files go")
    endpoint: str | None = Field(
        default=None, description="the S3-compatible server, https://host[:port] (leave out for AWS S3)"
    )
    region: str = Field(default="us-east-1", description="the bucket's region (any value most S3-compatible servers)")
    credentials_file: Path | None = Field(
        default=None, description="a 0600 file in AWS shared-credentials format; else the AWS_* environment"
    )
    credentials_profile: str = Field(default="default", min_length=1, max_length=64)

    @field_validator("url")
    @classmethod
    def _s3_url(cls, url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            shown = parsed.scheme or "(none)"
            raise ValueError(
                f"scheme {shown!r} is not supported: write s3://BUCKET/PREFIX for an S3-compatible object store, "
                "or leave [warehouse] out for the local folder DATA/data/releases/"
            )
        if parsed.query or parsed.fragment or parsed.params or "@" in parsed.netloc or ":" in parsed.netloc:
            raise ValueError("write s3://BUCKET/PREFIX only (no user, port, query or fragment)")
        if not parsed.netloc:
            raise ValueError("the bucket is missing: write s3://BUCKET/PREFIX")
        if not _BUCKET.match(parsed.netloc) or ".." in parsed.netloc:
            raise ValueError(
                f"{parsed.netloc!r} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
            )
        parts = [p for p in parsed.path.split("/") if p]
        if any(not _PREFIX_PART.match(p) or p in (".", "..") for p in parts):
            raise ValueError("the prefix may hold only letters, digits, '.', '_', '-' and '/' between names")
        return "s3://" + "/".join([parsed.netloc, *parts])

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError(f"{endpoint!r} is not an endpoint URL: write https://host[:port]")
        if parsed.path not in ("", "/") or parsed.query or parsed.username or parsed.password:
            raise ValueError("write the endpoint as https://host[:port] only (no path, query or user)")
        if parsed.scheme == "http" and not _loopback(parsed.hostname):
            # Released rows would cross the network in clear text.
            raise ValueError(
                f"{endpoint!r} is plain HTTP to another machine: use https:// (plain http only to 127.0.0.1)"
            )
        return endpoint.rstrip("/")

    @field_validator("region")
    @classmethod
    def _region(cls, region: str) -> str:
        if not _REGION.match(region):
            raise ValueError(f"{region!r} is not a region name like us-east-1")
        return region

    @property
    def bucket(self) -> str:
        return urlparse(self.url).netloc

    @property
    def prefix(self) -> str:
        return urlparse(self.url).path.strip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class S3Credentials:
    """An access key; ``source`` names where it came from (for messages), the secret is never shown."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = "the environment"


def load_credentials(config: WarehouseConfig, environ: Mapping[str, str] | None = None) -> S3Credentials:
    """The credentials of ``config``: its ``credentials_file`` if named (which must be 0600), else the environment."""
    if config.credentials_file is not None:
        return _credentials_from_file(config.credentials_file, config.credentials_profile)
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key or not secret:
        raise WarehouseError(
            f"the release warehouse {config.url} needs S3 credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the store's environment, or name a 0600 file in the release policy's "
            "[warehouse] credentials_file (never on the command line)"
        )
    return S3Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None, "the environment")


def _credentials_from_file(path: Path, profile: str) -> S3Credentials:
    from protocol.permissions import check_private

    if not path.is_file():
        raise WarehouseError(f"the S3 credentials file {path} does not exist (release policy, [warehouse])")
    check_private(path, is_dir=False)  # InsecurePermissions, with the chmod that fixes it
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.Error, UnicodeDecodeError):
        # The parser's message may quote a line of the file, which may be the secret: say only where.
        raise WarehouseError(
            f"{path} is not an AWS credentials file: write [{profile}] then aws_access_key_id = ... and "
            "aws_secret_access_key = ..."
        ) from None
    if not parser.has_section(profile):
        raise WarehouseError(f"{path} has no [{profile}] section (credentials_profile in the release policy)")
    section = parser[profile]
    key, secret = section.get("aws_access_key_id", "").strip(), section.get("aws_secret_access_key", "").strip()
    if not key or not secret:
        raise WarehouseError(f"{path} [{profile}] needs both aws_access_key_id and aws_secret_access_key")
    token = section.get("aws_session_token", "").strip() or None
    return S3Credentials(key, secret, token, str(path))


class ObjectStore:
    """An S3-compatible warehouse with its credentials: what ``ReleaseTable.open`` needs to use it."""

    def __init__(self, config: WarehouseConfig, credentials: S3Credentials) -> None:
        self.config = config
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"ObjectStore({self.config.url!r}, endpoint={self.config.endpoint!r})"

    @classmethod
    def from_config(cls, config: WarehouseConfig, environ: Mapping[str, str] | None = None) -> ObjectStore:
        return cls(config, load_credentials(config, environ))

    @property
    def url(self) -> str:
        return self.config.url

    def fileio_properties(self) -> dict[str, str]:
        """pyiceberg's FileIO properties: its own ``PyArrowFileIO`` on pyarrow's ``S3FileSystem``."""
        c, k = self.config, self._credentials
        properties = {
            "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
            "s3.region": c.region,
            "s3.access-key-id": k.access_key_id,
            "s3.secret-access-key": k.secret_access_key,
            "s3.connect-timeout": str(_CONNECT_TIMEOUT_S),
            "s3.request-timeout": str(_REQUEST_TIMEOUT_S),
        }
        if k.session_token:
            properties["s3.session-token"] = k.session_token
        if c.endpoint:
            properties["s3.endpoint"] = c.endpoint
            properties["s3.force-virtual-addressing"] = "false"  # path-style: what S3-compatible servers serve
        return properties

    def filesystem(self, *, attempts: int = 3) -> Any:
        """pyarrow's ``S3FileSystem`` for this warehouse (the same settings pyiceberg's FileIO uses)."""
        from pyarrow import fs

        c, k = self.config, self._credentials
        kwargs: dict[str, Any] = {
            "access_key": k.access_key_id,
            "secret_key": k.secret_access_key,
            "session_token": k.session_token,
            "region": c.region,
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "request_timeout": _REQUEST_TIMEOUT_S,
            "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=attempts),
        }
        if c.endpoint:
            kwargs["endpoint_override"] = c.endpoint
            kwargs["scheme"] = urlparse(c.endpoint).scheme
            kwargs["force_virtual_addressing"] = False
        return fs.S3FileSystem(**kwargs)

    def check(self) -> None:
        """Reach the endpoint, find the bucket, refuse a versioned or public one, and write and delete one
        object under the prefix.

        Run before anything is created, so a bad setting changes nothing. ``WarehouseError`` says which
        step failed and what to do; it never quotes the credentials.
        """
        from pyarrow import fs

        c = self.config
        where = f"the S3 endpoint {c.endpoint or 'of AWS S3'}"
        filesystem = self.filesystem(attempts=1)
        try:
            info = filesystem.get_file_info(c.bucket)
        except OSError as exc:
            raise self._mapped(exc, where) from None
        if info.type == fs.FileType.NotFound:
            raise WarehouseError(
                f"the bucket {c.bucket!r} does not exist at {where}. Create it (the store never creates "
                "buckets), or correct [warehouse] url in the release policy; nothing was changed"
            )
        self._check_bucket_rules(where)

    def _check_bucket_rules(self, where: str) -> None:
        """Refuse a bucket that would keep erased rows or show them to others.

        A versioned bucket (versioning Enabled, or Suspended after it was on) keeps every deleted or
        overwritten object as an old version: an erasure's expiry would delete the current objects and
        leave the rows in those versions. A bucket whose ACL grants everyone (or every AWS account), or
        whose policy makes it public, is not the private folder the local warehouse is. pyarrow has no
        call for either question, so they are asked with botocore (the ``s3`` extra).
        """
        try:
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
            from botocore.session import get_session
        except ImportError:
            raise WarehouseError(
                "an S3 warehouse needs botocore to check the bucket's versioning and access rules: "
                "pip install 'consentry[store,release,s3]'"
            ) from None
        c, k = self.config, self._credentials
        config = Config(
            connect_timeout=_CONNECT_TIMEOUT_S,
            read_timeout=_REQUEST_TIMEOUT_S,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"} if c.endpoint else None,
        )
        client = get_session().create_client(
            "s3",
            region_name=c.region,
            endpoint_url=c.endpoint,
            aws_access_key_id=k.access_key_id,
            aws_secret_access_key=k.secret_access_key,
            aws_session_token=k.session_token,
            config=config,
        )

        def ask(call: str, permission: str) -> dict[str, Any] | None:
            try:
                answer: dict[str, Any] = getattr(client, call)(Bucket=c.bucket)
                return answer
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("NotImplemented", "NoSuchBucketPolicy", "XNotImplemented"):
                    return None  # a server without the feature, or a bucket without a policy
                if code in ("AccessDenied", "403"):
                    raise WarehouseError(
                        f"the store's credentials may not ask {where} about the bucket {c.bucket!r} ({call}): "
                        f"allow {permission} for them, so the store can check the bucket keeps no old versions "
                        "and is not public; nothing was changed"
                    ) from None
                raise WarehouseError(f"{where} answered {code or 'an error'} to {call} on {c.bucket!r}") from None
            except BotoCoreError:
                raise WarehouseError(f"cannot reach {where} to check the bucket's rules; nothing was changed") from None

        try:
            versioning = ask("get_bucket_versioning", "s3:GetBucketVersioning") or {}
            if versioning.get("Status") in ("Enabled", "Suspended"):
                raise WarehouseError(
                    f"the bucket {c.bucket!r} keeps old versions of objects (versioning {versioning['Status']}): an "
                    "erased row would stay in an old version after the store deletes it. Use a bucket that never "
                    "had versioning on; nothing was changed"
                )
            acl = ask("get_bucket_acl", "s3:GetBucketAcl") or {}
            open_to = {
                str(g.get("Grantee", {}).get("URI", "")).rsplit("/", 1)[-1]
                for g in acl.get("Grants", [])
                if str(g.get("Grantee", {}).get("URI", "")).endswith(("/AllUsers", "/AuthenticatedUsers"))
            }
            status = (ask("get_bucket_policy_status", "s3:GetBucketPolicyStatus") or {}).get("PolicyStatus", {})
            if open_to or status.get("IsPublic"):
                whom = " and ".join(sorted(open_to)) or "the public (its bucket policy)"
                raise WarehouseError(
                    f"the bucket {c.bucket!r} grants access to {whom}: released rows must be readable only with "
                    "the store's credentials. Make the bucket private; nothing was changed"
                )
            # One object written and deleted under the prefix: the credentials may write there. (botocore,
            # not pyarrow: pyarrow's delete leaves an empty "prefix/" marker behind, and nothing may stay.)
            probe = "/".join(p for p in (c.prefix, f".consentry-probe-{secrets.token_hex(8)}") if p)
            try:
                client.put_object(Bucket=c.bucket, Key=probe, Body=b"write check\n")
                client.delete_object(Bucket=c.bucket, Key=probe)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                raise WarehouseError(
                    f"{where} refused writing under s3://{c.bucket}/{c.prefix} with the credentials from "
                    f"{k.source} ({code or 'an error'}): allow s3:PutObject and s3:DeleteObject there; "
                    "nothing was changed"
                ) from None
            except BotoCoreError:
                raise WarehouseError(f"cannot reach {where} to write to the bucket; nothing was changed") from None
        finally:
            client.close()

    def _mapped(self, exc: OSError, where: str) -> WarehouseError:
        text = str(exc)
        source = self._credentials.source
        if "NETWORK_CONNECTION" in text or "curlCode" in text or "Could not connect" in text:
            return WarehouseError(
                f"cannot reach {where}: check [warehouse] endpoint in the release policy and that the server "
                "is running; nothing was changed"
            )
        refused = ("ACCESS_DENIED", "SIGNATURE_DOES_NOT_MATCH", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "403")
        if any(word in text for word in refused):
            return WarehouseError(
                f"{where} refused the credentials from {source} for the bucket {self.config.bucket!r} "
                "(a wrong key or secret, or no permission there); nothing was changed"
            )
        if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
            return WarehouseError(f"the bucket {self.config.bucket!r} does not exist at {where}; nothing was changed")
        return WarehouseError(f"cannot use the bucket {self.config.bucket!r} at {where} ({_first_words(text)})")


def _first_words(text: str) -> str:
    """The start of a pyarrow error, enough to act on; AWS errors quote no credentials, but keep it short."""
    return text.split(". ")[0][:200]
