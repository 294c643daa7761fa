"""RunPod pod and network volume as Pulumi dynamic resources.

Importing this package imports no HTTP client and not the runpod SDK (about 1.5 s): only an API
call does, through `coral_infra.runpod.api`, and only the wire format the stack uses.
"""

from coral_infra.runpod.pod import Pod, PodArgs
from coral_infra.runpod.pod_name import PodName
from coral_infra.runpod.volume import NetworkVolume, NetworkVolumeArgs

__all__ = ["NetworkVolume", "NetworkVolumeArgs", "Pod", "PodArgs", "PodName"]
