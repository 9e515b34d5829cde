"""The OCI state document, as `state` prints it (runc's field set and order)."""

from .record import Record

OCI_VERSION = "1.3.0"
STATUSES = ("creating", "created", "running", "paused", "stopped")


class State(Record):
    FIELDS = {
        "id": None,
        "status": None,
        "pid": None,
        "bundle": None,
        "rootfs": "",
        "created": "",  # RFC 3339 with nanoseconds, as runc writes it
        "owner": "",
        "annotations": {},
    }

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



def process_state(state, pid, metadata=""):
    """The container process state a seccomp agent receives with the notify fd, which is
    the first (and only) fd of the message: runtime-spec's ContainerProcessState."""
    return {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid,
            "metadata": metadata, "state": state}
