"""The config model's Pulumi adapter: the stack's `ocm-fleet:` values read through pulumi.Config."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import NAMESPACE, FleetConfig, FleetConfigError, fleet_config_from_values


class FleetConfigRunError(FleetConfigError, pulumi.RunError):
    """The model's error as a Pulumi RunError: the engine prints its message, not a traceback."""


def load_fleet_config() -> FleetConfig:
    """Read and validate the `ocm-fleet:*` stack config."""
    cfg = pulumi.Config(NAMESPACE)
    # Every key set under the namespace, so that a misspelt one is reported, not ignored.
    configured = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    values = {
        key[len(prefix) :]: cfg.get(key[len(prefix) :])
        for key in configured
        if key.startswith(prefix)
    }
    stack = pulumi.get_stack()
    try:
        return fleet_config_from_values(
            {k: v for k, v in values.items() if v is not None}, stack=stack
        )
    except FleetConfigError as err:
        raise FleetConfigRunError(err.problems, stack=stack) from None
