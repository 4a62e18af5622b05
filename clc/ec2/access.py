"""Who may do what in EC2: identity policies, and the cloud admin's view of every account.

An account's admin may do everything in the account; any other user needs a
policy allowing ``ec2:<Action>`` on the resources the request names (their
ARNs), or on ``*`` for requests that name none, as AWS evaluates it.
"""

from eucacore import policy
from eucacore.awsapi.errors import AWSError

REGION = "eucalyptus"
#: Request members that name resources, and the ARN resource type of each.
_RESOURCE_MEMBERS = {"InstanceIds": "instance", "InstanceId": "instance", "ImageId": "image",
                     "KeyName": "key-pair", "GroupId": "security-group", "VolumeId": "volume",
                     "VolumeIds": "volume", "SnapshotId": "snapshot", "SnapshotIds": "snapshot",
                     "AllocationId": "elastic-ip"}
VERBOSE = "verbose"


def request_resources(account_id: str, params: dict) -> list[str]:
    arns = []
    for member, kind in _RESOURCE_MEMBERS.items():
        values = params.get(member)
        for value in ([values] if isinstance(values, str) else values or []):
            arns.append(policy.ec2_arn(REGION, account_id, kind, value))
    return arns or ["*"]


def authorize(ctx, action: str, params: dict) -> None:
    """UnauthorizedOperation unless the caller may do ``action`` (checked before DryRun)."""
    principal = ctx.credentials
    if principal.is_account_admin:
        return
    if not principal.allows(f"ec2:{action}", request_resources(ctx.account_id, params)):
        raise AWSError("UnauthorizedOperation", "You are not authorized to perform this operation.", 403)


def sees_all_accounts(ctx, ids: list[str] | None, filters: list[dict] | None) -> tuple[bool, list[str]]:
    """Whether a Describe shows every account's resources, and its ids without ``verbose``.

    As in the original, only the cloud admin sees beyond its account: by naming
    ``verbose`` among the ids (``euca-describe-instances verbose``) or by
    filtering on ``owner-id``.
    """
    ids = list(ids or [])
    verbose = VERBOSE in ids
    ids = [i for i in ids if i != VERBOSE]
    by_owner = any(f.get("Name") == "owner-id" for f in filters or [])
    return ctx.credentials.is_cloud_admin and (verbose or by_owner), ids
