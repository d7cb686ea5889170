"""The one place boto3 sessions and clients are made, and AWS errors become user messages.

Credentials come from the standard boto3 chain (--profile, environment, config
files, SSO, instance roles); `AWS_ENDPOINT_URL` is honoured by boto3 itself, which is
how the tests and `keyscan demo` talk to a local IAM. boto3 is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyscan.errors import KeyscanError

RETRY_MODES = ("standard", "adaptive")
DEFAULT_REGION = "us-east-1"  # IAM and STS are global; boto3 still wants a region
ERROR_SEPARATOR = " | "  # between several failures of one key (messages hold "; ")


@dataclass(frozen=True, slots=True)
class AwsOptions:
    profile: str | None = None
    region: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 4  # the first call plus three retries: backoff really sleeps
    workers: int = 8  # concurrent look-ups


@dataclass(frozen=True, slots=True)
class Operator:
    """Who keyscan is running as: deactivation acts only in this account, never on this key."""

    account: str
    arn: str
    key_id: str  # the access key the operator signs with ("" if none, e.g. SSO)

    @property
    def user(self) -> str:
        """The IAM user name, when the operator is an IAM user."""
        resource = self.arn.split(":", 5)[-1]
        return resource.split("/")[-1] if resource.startswith("user/") else ""


def boto_session(options: AwsOptions) -> Any:
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=options.profile, region_name=options.region)
    except botocore.exceptions.ProfileNotFound:
        raise KeyscanError(f"AWS profile {options.profile!r} not found: check --profile and "
                           "~/.aws/config") from None


def config(options: AwsOptions) -> Any:
    from botocore.config import Config

    from keyscan import __version__

    return Config(
        # total_max_attempts counts the first call; botocore's max_attempts counts retries
        retries={"mode": options.retry_mode, "total_max_attempts": options.max_attempts},
        connect_timeout=5,
        read_timeout=20,
        max_pool_connections=max(10, options.workers),
        user_agent_extra=f"keyscan/{__version__}",
    )


def client(session: Any, service: str, options: AwsOptions, **kwargs: Any) -> Any:
    region = session.region_name or DEFAULT_REGION
    return session.client(service, region_name=region, config=config(options), **kwargs)


def operator(session: Any, options: AwsOptions) -> Operator:
    """Ask STS who we are; a credential problem becomes one clear KeyscanError."""
    try:
        identity = client(session, "sts", options).get_caller_identity()
        creds = session.get_credentials()
    except Exception as exc:  # botocore raises many unrelated types for one cause
        raise KeyscanError(describe(exc, "sts:GetCallerIdentity")) from None
    key_id = creds.get_frozen_credentials().access_key if creds is not None else ""
    return Operator(account=identity["Account"], arn=identity["Arn"], key_id=key_id or "")


_CREDENTIAL_TIP = ("set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or run `aws configure` / `aws sso login`")


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: BaseException, operation: str) -> str:
    """One line saying what went wrong with an AWS call and what to do about it."""
    name = type(exc).__name__
    code = error_code(exc)
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return f"no usable AWS credentials for {operation}: {_CREDENTIAL_TIP}"
    if name in ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError"):
        return f"the AWS SSO session has expired ({operation}): run `aws sso login`"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return (f"cannot reach the AWS endpoint for {operation} ({exc}): check the network "
                "and AWS_ENDPOINT_URL")
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return (f"access denied for {operation}: give the operator iam:GetAccessKeyLastUsed, "
                "iam:ListAccessKeys and sts:GetAccessKeyInfo (and iam:UpdateAccessKey, "
                "iam:PutUserPolicy, iam:DeleteUserPolicy to act); see docs/aws.md")
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"):
        return f"the AWS credentials have expired ({operation}): refresh them and rerun"
    if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"):
        return (f"AWS rejected the operator credentials ({operation}, {code}): "
                f"{_CREDENTIAL_TIP}")
    if code in ("Throttling", "ThrottlingException", "TooManyRequestsException",
                "RequestLimitExceeded"):
        return (f"AWS kept throttling {operation} after retries: rerun later, or raise "
                "--aws-max-attempts")
    if code:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
        return f"{operation} failed: {code}: {message}".rstrip(": ")
    return f"{operation} failed: {name}: {exc}"
