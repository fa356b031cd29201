"""Which account an event is acted on in, and the AWS clients for it.

The app's own account uses the function's credentials; a trusted account is reached
through its member role, assumed once and reused until shortly before it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.plumbing.events import EventOrigin
from chalicelib.plumbing.settings import Settings, load_settings

# Standard retry mode backs off on throttling with jitter; one config for every client.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=30,
    user_agent_extra="efs-automount",
)
# Calls whose raw JSON body is kept next to what botocore parsed (ResponseMetadata["RawBody"]):
# botocore drops keys its model does not know while parsing, and the task definition rewrite must
# refuse rather than lose them.
RAW_BODY_OPERATIONS = {"ecs": ("DescribeTaskDefinition",)}
ROLE_SESSION_NAME = "efs-automount"
ROLE_DURATION_SECONDS = 3600
# Assume again this long before the credentials expire, so no call runs on expired ones.
REFRESH_MARGIN_SECONDS = 300


class UntrustedAccount(Exception):
    """An event came from an account that is neither ours nor in TRUSTED_ACCOUNTS."""

    def __init__(self, account: str) -> None:
        super().__init__(f"account {account} is not trusted: it is not this app's account nor in TRUSTED_ACCOUNTS")
        self.account = account


class AssumeRoleFailed(Exception):
    """The member role of a trusted account could not be assumed."""

    def __init__(self, role_arn: str, reason: str) -> None:
        super().__init__(f"cannot assume {role_arn}: {reason}")
        self.role_arn = role_arn


class AwsAccess:
    """AWS clients in one account and region, each created once."""

    def __init__(self, account: str, region: str, session: boto3.Session, expires_at: float | None = None) -> None:
        self.account = account
        self.region = region
        self.session = session
        self.expires_at = expires_at
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            client = self.session.client(service, region_name=self.region, config=CLIENT_CONFIG)
            for operation in RAW_BODY_OPERATIONS.get(service, ()):
                client.meta.events.register(f"after-call.{service}.{operation}", _keep_raw_body)
            self._clients[service] = client
        return client

    def fresh(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at - REFRESH_MARGIN_SECONDS


def _keep_raw_body(http_response: Any, parsed: Any, **_: Any) -> None:
    if isinstance(parsed, dict) and http_response is not None and http_response.status_code < 300:
        parsed.setdefault("ResponseMetadata", {})["RawBody"] = http_response.content


def member_role_arn(account: str, role_name: str, partition: str = "aws") -> str:
    # Built from the validated event account only: the event body never names the role.
    return f"arn:{partition}:iam::{account}:role/{role_name}"


class AwsAccounts:
    """Resolves an event's origin to AwsAccess, for our account and trusted accounts only."""

    def __init__(
        self,
        settings: Settings,
        base_session: boto3.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._base = base_session or boto3.Session()
        self._clock = clock
        self._own_account: str | None = None
        self._own_partition = "aws"
        self._access: dict[tuple[str, str], AwsAccess] = {}
        self._own_clients: dict[str, Any] = {}

    def own_account(self) -> str:
        if self._own_account is None:
            sts = self._base.client("sts", config=CLIENT_CONFIG)
            identity = sts.get_caller_identity()
            self._own_account = identity["Account"]
            self._own_partition = identity["Arn"].split(":")[1]
        return self._own_account

    def own_client(self, service: str) -> Any:
        """A client in the app's own account and the function's region (the retry queue, say)."""
        client = self._own_clients.get(service)
        if client is None:
            client = self._own_clients[service] = self._base.client(service, config=CLIENT_CONFIG)
        return client

    def for_origin(self, origin: EventOrigin) -> AwsAccess:
        """Clients for the event's account and region; raises UntrustedAccount or AssumeRoleFailed."""
        now = self._clock()
        key = (origin.account, origin.region)
        access = self._access.get(key)
        if access is not None and access.fresh(now):
            return access
        if origin.account in self._settings.trusted_accounts and origin.account != self.own_account():
            access = self._assume(origin, now)
        elif origin.account == self.own_account():
            access = AwsAccess(origin.account, origin.region, self._base)
        else:
            raise UntrustedAccount(origin.account)
        self._access[key] = access
        return access

    def _assume(self, origin: EventOrigin, now: float) -> AwsAccess:
        # Every region of one account shares the role's credentials.
        for (account, _), known in self._access.items():
            if account == origin.account and known.fresh(now):
                return AwsAccess(origin.account, origin.region, known.session, known.expires_at)
        role_arn = member_role_arn(origin.account, self._settings.member_role_name, self._own_partition)
        request: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": ROLE_SESSION_NAME,
            "DurationSeconds": ROLE_DURATION_SECONDS,
        }
        if self._settings.external_id:
            request["ExternalId"] = self._settings.external_id
        try:
            credentials = self._base.client("sts", config=CLIENT_CONFIG).assume_role(**request)["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise AssumeRoleFailed(role_arn, str(exc)) from exc
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return AwsAccess(origin.account, origin.region, session, credentials["Expiration"].timestamp())


@cache
def aws_accounts() -> AwsAccounts:
    """The accounts resolver of this Lambda container, kept warm across invocations."""
    return AwsAccounts(load_settings())
