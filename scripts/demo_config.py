"""Turn `handcar spec --rootless` output into the demo's config (used by scripts/demo)."""

import json
import os
import pwd

from rootless.runtime.userns import SUBGID, SUBUID, subordinate_ranges

config = json.load(open("config.json"))
config["process"]["terminal"] = False
config["process"]["args"] = [
    "sh", "-c",
    "echo Hello from a handcar container: hostname $(hostname), pid $$, uid $(id -u);"
    " echo uid_map:; cat /proc/self/uid_map; exit 3"]
user = pwd.getpwuid(os.geteuid()).pw_name
for key, path in (("uidMappings", SUBUID), ("gidMappings", SUBGID)):
    ranges = subordinate_ranges(path, user, os.geteuid())
    if ranges:  # map 1..N from the subordinate range as well
        config["linux"][key].append({"containerID": 1, "hostID": ranges[0][0],
                                     "size": ranges[0][1]})
json.dump(config, open("config.json", "w"), indent=2)
