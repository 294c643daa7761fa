"""coral-infra guardrails, served to the Pulumi engine (`--policy-pack policypack`).

Every policy is mandatory: a violation fails `preview` and `up`. The validations live in
guardrails.py, unit-tested from the main venv (tests/policypack/).
"""

from guardrails import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="coral-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
