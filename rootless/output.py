"""What handcar prints for people: aligned tables (list, ps, images)."""


def print_table(rows, gap="  "):
    """Rows of cells in aligned columns (the last one left as it is), as runc and docker
    print their listings."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(gap.join(cell.ljust(w) for cell, w in zip(row, widths)) + gap + row[-1])
