"""Which function does each verb: an explicit table (as pip's commands_dict), so that a
verb loads only its own module. The verbs' flags are declared in verbs.py; the functions
take the global flags (commands.Globals) and the verb's values."""

HANDLERS = {
    # runc's verbs (and crun's), runc's exit statuses
    "create": ("rootless.cli.commands", "create"),
    "start": ("rootless.cli.commands", "start"),
    "run": ("rootless.cli.commands", "run"),           # runc's run, or the friendly one
    "exec": ("rootless.cli.commands", "exec_"),
    "state": ("rootless.cli.commands", "state"),
    "kill": ("rootless.cli.commands", "kill"),
    "delete": ("rootless.cli.commands", "delete"),
    "list": ("rootless.cli.commands", "list_"),
    "ps": ("rootless.cli.commands", "ps"),
    "pause": ("rootless.cli.commands", "pause"),
    "resume": ("rootless.cli.commands", "resume"),
    "events": ("rootless.cli.commands", "events"),
    "update": ("rootless.cli.commands", "update"),
    "spec": ("rootless.cli.commands", "spec"),
    "features": ("rootless.cli.commands", "features"),
    "debug": ("rootless.cli.commands", "debug"),       # issue 19
    # the friendly verbs, docker's exit statuses
    "logs": ("rootless.cli.friendly", "logs"),
    "stop": ("rootless.cli.friendly", "stop"),
    "rm": ("rootless.cli.friendly", "rm"),
    "pull": ("rootless.cli.friendly", "pull"),
    "images": ("rootless.cli.friendly", "images"),
    "rmi": ("rootless.cli.friendly", "rmi"),
    "image": ("rootless.cli.friendly", "image"),
    "login": ("rootless.cli.friendly", "login"),
    "logout": ("rootless.cli.friendly", "logout"),
    # a group's verbs ("handcar network create"), podman's exit statuses
    "network create": ("rootless.cli.friendly", "network_create"),
    "network ls": ("rootless.cli.friendly", "network_ls"),
    "network inspect": ("rootless.cli.friendly", "network_inspect"),
    "network rm": ("rootless.cli.friendly", "network_rm"),
    "network prune": ("rootless.cli.friendly", "network_prune"),
    "network connect": ("rootless.cli.friendly", "network_connect"),
    "network disconnect": ("rootless.cli.friendly", "network_disconnect"),
}


def handler(verb_name):
    """The function for a verb."""
    module_name, function = HANDLERS[verb_name]
    return getattr(__import__(module_name, fromlist=[function]), function)
