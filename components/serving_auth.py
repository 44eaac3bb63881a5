"""The model servers' API keys: one generated key in a Secrets Manager secret the serving pods read at startup.

The EKS path is reachable from any pod that carries the model-client label, so the v2 and metrics routes ask for
a key (the SageMaker routes keep their contract: SageMaker authenticates its callers itself). The key is made at
deploy time and handed to clients only through Secrets Manager; operators add keys by writing a new version of
the secret (`{"apiKeys": [...]}`), which the servers pick up on their next start.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.settings import StackIdentity
from contracts import secrets

# A deleted keys secret stays recoverable this long: enough to undo a mistake, short enough to retire a leak.
RECOVERY_DAYS = 7


def keys_document(*keys: pulumi.Input[str]) -> dict[str, list[pulumi.Input[str]]]:
    """The secret's JSON, in the form the server parses (`workloads/serving/guards.py`)."""
    return {secrets.SERVING_API_KEYS: list(keys)}


class ServingApiKeys(pulumi.ComponentResource):
    """The API-keys secret of the EKS model servers, encrypted with the data key."""

    secret: aws.secretsmanager.Secret

    def __init__(self, name: str, *, stack: StackIdentity, data_key_arn: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:serving_auth:ServingApiKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        generator = random.Provider(f"{name}-random", opts=child)
        key = random.RandomPassword(f"{name}-key", length=48, special=False,
                                    opts=pulumi.ResourceOptions(parent=self, provider=generator))
        self.secret = aws.secretsmanager.Secret(
            name, name=f"{stack.project}/{stack.stack}/serving/api-keys",
            description="API keys the EKS model servers accept on their v2 and metrics routes",
            kms_key_id=data_key_arn, recovery_window_in_days=RECOVERY_DAYS, opts=child)
        aws.secretsmanager.SecretVersion(
            name, secret_id=self.secret.id,
            secret_string=pulumi.Output.json_dumps(keys_document(key.result)),
            # New keys are added as new versions by operators; the stack must not roll them back.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secret_string"]))
        self.register_outputs({"secretArn": self.secret.arn})
