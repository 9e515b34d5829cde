"""The OCI runtime-spec as Python: config.json model and validation, state document,
default spec. Pure data and logic: nothing here makes a system call."""
