"""What handcar prints for people: aligned tables (list, ps, images), ages."""

import time


def print_table(rows, gap="  "):
    """Rows of cells in aligned columns (the last one left as it is), as runc and docker
    print their listings."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(gap.join(cell.ljust(w) for cell, w in zip(row, widths)) + gap + row[-1])


def ago(rfc3339):
    """An RFC 3339 time as docker says how long ago it was ("3 minutes ago")."""
    import calendar
    try:
        then = calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return rfc3339
    seconds = max(0, int(time.time() - then))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return f"{seconds} seconds ago"


def human_size(count):
    """A byte count as docker and podman print sizes (1000s: "5.6 MB")."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return str(count)
