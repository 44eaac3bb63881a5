"""Identity: least privilege, no administrator grants, no user-attached policies, strong passwords."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import Resource, RuleSet, as_list, items, number, policy_json, statements, truthy
from .types import (IAM_GROUP_POLICY, IAM_GROUP_POLICY_ATTACHMENT, IAM_PASSWORD_POLICY, IAM_POLICY,
                    IAM_POLICY_ATTACHMENT, IAM_ROLE, IAM_ROLE_POLICY, IAM_ROLE_POLICY_ATTACHMENT, IAM_USER_POLICY,
                    IAM_USER_POLICY_ATTACHMENT)

rules = RuleSet("identity")

# AWS-managed policies that amount to administrator access.
ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")


def _documents(resource: Resource) -> list[Mapping[str, Any]]:
    documents = [policy_json(resource.props.get("policy"))]
    documents += [policy_json(p.get("policy")) for p in items(resource.props.get("inlinePolicies"))]
    return [d for d in documents if d]


def _wildcard(value: Any) -> bool:
    return "*" in as_list(value)


@rules.resource(
    "iam-no-star-on-star", types=(IAM_POLICY, IAM_ROLE_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY, IAM_ROLE),
    severity="critical",
    description="No IAM policy allows every action ('*') on every resource ('*').",
    remediation="Grant the specific actions on the specific ARNs the workload uses (components.iam.policy_document).")
def star_on_star(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    for document in _documents(resource):
        for statement in statements(document):
            if statement.get("Effect") == "Allow" and _wildcard(statement.get("Action")) \
                    and _wildcard(statement.get("Resource")):
                yield f"statement {statement.get('Sid', '(no Sid)')!r} allows '*' on '*' (administrator access)"


@rules.resource(
    "iam-no-user-policies", types=(IAM_USER_POLICY, IAM_USER_POLICY_ATTACHMENT, IAM_POLICY_ATTACHMENT),
    severity="high",
    description="Policies are never attached to IAM users directly; people get access through roles and groups.",
    remediation="Attach the policy to a role (assumed via SSO) or a group instead of a user.")
def user_policies(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.type == IAM_POLICY_ATTACHMENT:
        users = as_list(resource.props.get("users"))
        if users:
            yield f"attaches a policy to user(s) {', '.join(map(str, users))}"
    else:
        yield f"attaches a policy to user {resource.props.get('user', '?')!r}"


def _admin_arns(values: Any) -> list[str]:
    return [str(a) for a in as_list(values)
            if isinstance(a, str) and a.rsplit("/", 1)[-1] in ADMIN_POLICIES and ":iam::aws:policy/" in a]


@rules.resource(
    "iam-no-admin-managed-policies",
    types=(IAM_ROLE, IAM_ROLE_POLICY_ATTACHMENT, IAM_GROUP_POLICY_ATTACHMENT, IAM_POLICY_ATTACHMENT),
    severity="critical",
    description="Execution, node and service roles never carry AdministratorAccess, PowerUserAccess or "
                "IAMFullAccess.",
    remediation="Attach the narrow AWS-managed policies the service documents (e.g. AmazonEKSWorkerNodePolicy) or a "
                "least-privilege customer policy.")
def admin_managed(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    values = resource.props.get("managedPolicyArns") if resource.type == IAM_ROLE else resource.props.get("policyArn")
    for arn in _admin_arns(values):
        yield f"attaches the administrator policy {arn.rsplit('/', 1)[-1]}"


@rules.resource(
    "iam-trust-no-wildcard-principal", types=(IAM_ROLE,), severity="critical",
    description="No role can be assumed by any principal ('*') without a condition.",
    remediation="Name the service or account principal in assumeRolePolicy (components.iam.service_assume_role_policy).")
def trust_wildcard(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    for statement in statements(policy_json(resource.props.get("assumeRolePolicy"))):
        principal = statement.get("Principal")
        wildcard = principal == "*" or (isinstance(principal, Mapping)
                                        and any(_wildcard(v) for v in principal.values()))
        if statement.get("Effect") == "Allow" and wildcard and not statement.get("Condition"):
            yield "trust policy lets any AWS principal assume the role"


@rules.resource(
    "iam-password-policy-strength", types=(IAM_PASSWORD_POLICY,), severity="high",
    description="A declared account password policy requires 14+ characters, all character classes, reuse "
                "prevention of 24 and expiry within 90 days.",
    remediation="Set minimumPasswordLength>=14, require*Characters/requireNumbers/requireSymbols=true, "
                "passwordReusePrevention>=24, maxPasswordAge<=90.")
def password_policy(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    if (number(props.get("minimumPasswordLength"), 6) or 0) < 14:
        yield f"minimum password length {props.get('minimumPasswordLength', 'unset')} is below 14"
    weak = [k for k in ("requireLowercaseCharacters", "requireUppercaseCharacters", "requireNumbers",
                        "requireSymbols") if not truthy(props.get(k))]
    if weak:
        yield f"does not require {', '.join(weak)}"
    if (number(props.get("passwordReusePrevention"), 0) or 0) < 24:
        yield "password reuse prevention is below 24"
    age = number(props.get("maxPasswordAge"), 0) or 0
    if age <= 0 or age > 90:
        yield "passwords do not expire within 90 days (maxPasswordAge)"
