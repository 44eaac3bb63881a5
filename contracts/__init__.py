"""Facts shared by the infrastructure program, the workloads and the policy pack.

Dependency-free on purpose (no Pulumi, no torch, no boto3): the policy pack installs it alone, the workload
images import it without the infrastructure's packages, and a fact lives here exactly once.
"""
