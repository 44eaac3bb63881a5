"""TCP ports both sides must agree on: a security group opens what a client connects to."""

from __future__ import annotations

HTTPS = 443
KAFKA_IAM = 9098        # MSK: SASL/IAM over TLS from inside the VPC
REDIS = 6379            # ElastiCache (Redis OSS / Valkey) with TLS
MODEL_SERVER = 8080     # workloads.serving's default listen port (SageMaker's too)
TORCHRUN = 29500        # torchrun's rendezvous (rank 0's master port)

__all__ = ["HTTPS", "KAFKA_IAM", "MODEL_SERVER", "REDIS", "TORCHRUN"]
