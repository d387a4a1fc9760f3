"""Entry point Pulumi runs for the ocm-fleet-guardrails policy pack."""

from ocm_fleet_policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(
    name="ocm-fleet-guardrails",
    description="Guardrails for the ocm-fleet stacks: OCM wiring, network exposure and secrets.",
    policies=POLICIES,
)
