"""The Pulumi program: read this stack's settings, build the platform, export what operators and workloads need."""

import pulumi

from components.platform import AiPlatform
from components.settings import load_settings

platform = AiPlatform("platform", load_settings())
for key, value in platform.outputs.items():
    pulumi.export(key, value)
