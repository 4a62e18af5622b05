"""Who signed a request, and what they may do: shared by the CLC and Walrus.

The CLC builds a :class:`Principal` from its identity store; Walrus gets the
same fields from the CLC's ``DescribeAccessKey``.  Both then decide with
:meth:`Principal.allows`, so EC2, IAM and S3 requests follow one policy logic.
"""

from dataclasses import dataclass, field

from eucacore import policy
from eucacore.awsapi.auth import Credentials

_parsed: dict[str, policy.Policy] = {}


def parsed_policy(document: str) -> policy.Policy:
    """``policy.parse(document)``, remembered (policies are parsed on every request)."""
    parsed = _parsed.get(document)
    if parsed is None:
        parsed = policy.parse(document)
        if len(_parsed) > 4096:
            _parsed.clear()
        _parsed[document] = parsed
    return parsed


@dataclass(repr=False)  # Credentials' repr, which leaves the secret out
class Principal(Credentials):
    """The key's user and account, the user's policies (its own and its groups'), whether the
    user is its account's admin (allowed everything in the account) or the cloud admin (the
    ``eucalyptus`` account's admin, allowed everything), and the account's quotas
    (name -> limit, -1 unlimited) where the caller needs them."""

    account_name: str = ""
    user_name: str = ""
    user_path: str = "/"
    is_account_admin: bool = False
    is_cloud_admin: bool = False
    policies: tuple[str, ...] = ()
    quotas: dict[str, int] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return policy.iam_arn(self.account_id, "user", self.user_path, self.user_name)

    def allows(self, action: str, resources: list[str]) -> bool:
        """Whether this principal may do ``action`` on ``resources`` (account admins may do all)."""
        if self.is_account_admin:
            return True
        return policy.is_allowed([parsed_policy(d) for d in self.policies], action, resources)
