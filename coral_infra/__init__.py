"""coral-infra: a RunPod GPU pod on your tailnet as coral-machine, provisioned with Pulumi."""
