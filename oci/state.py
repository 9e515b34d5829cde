"""The OCI state document, as `state` prints it (runc's field set and order)."""

from dataclasses import dataclass, field

OCI_VERSION = "1.2.0"
STATUSES = ("creating", "created", "running", "paused", "stopped")


@dataclass(frozen=True)
class State:
    id: str
    status: str
    pid: int
    bundle: str
    rootfs: str = ""
    created: str = ""          # RFC 3339 with nanoseconds, as runc writes it
    owner: str = ""
    annotations: dict = field(default_factory=dict)

    def to_json(self):
        doc = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc
