"""RunPod pod and network volume as Pulumi dynamic resources.

Importing this package does not import the runpod SDK (about 1.5 s): only an API call does,
inside `coral_infra.runpod.api`.
"""

from coral_infra.runpod.pod import Pod, PodArgs
from coral_infra.runpod.volume import NetworkVolume, NetworkVolumeArgs

__all__ = ["NetworkVolume", "NetworkVolumeArgs", "Pod", "PodArgs"]
