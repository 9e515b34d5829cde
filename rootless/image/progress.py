"""What a pull shows while it works, on stderr: on a terminal, a progress bar per layer
being downloaded (bytes, rate; tqdm, imported only here) and a line per layer unpacked;
otherwise one line per finished layer, as podman prints them; nothing with -q."""

import sys
import threading

from rootless.output import human_size


class Progress:
    """The lines-only form (no terminal); Bars adds the bars."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()             # downloads report from their threads

    def say(self, text):
        with self.lock:
            print(text, file=self.stream, flush=True)

    def resolving(self, text):
        self.say(f"Trying to pull {text}...")

    def download_started(self, label, total):
        pass

    def downloaded(self, label, count):
        pass

    def download_resumed(self, label, offset, why):
        self.say(f"Resuming blob {label} at {human_size(offset)} ({why})")

    def download_finished(self, label, total, seconds):
        rate = f", {human_size(total / seconds)}/s" if seconds > 0 else ""
        self.say(f"Copying blob {label} done ({human_size(total)}{rate})")

    def unpacked(self, layer, size, seconds):
        self.say(f"Unpacked layer {layer.label} ({human_size(size)} in {seconds:.1f}s)")

    def all_stored(self, count):
        pass                                     # nothing to do, nothing to say (as podman)

    def close(self):
        pass


class Quiet(Progress):
    def say(self, text):
        pass


class Bars(Progress):
    """tqdm bars, one per download; finished lines printed above them."""

    def __init__(self, stream=None):
        super().__init__(stream)
        import shutil
        import tqdm
        self.tqdm = tqdm.tqdm
        self.tqdm.monitor_interval = 0           # no monitor thread (the store forks)
        self.bars = {}
        # a terminal that reports no size (0x0) still gets bars (tqdm would draw none)
        size = shutil.get_terminal_size((80, 24))
        self.columns, self.rows = size.columns or 80, size.lines or 24

    def say(self, text):
        with self.lock:
            self.tqdm.write(text, file=self.stream)

    def download_started(self, label, total):
        with self.lock:
            self.bars[label] = self.tqdm(total=total, unit="B", unit_scale=True,
                                         unit_divisor=1000, desc=f"Copying blob {label}",
                                         file=self.stream, leave=False,
                                         position=len(self.bars), miniters=1,
                                         ncols=self.columns, nrows=self.rows)

    def downloaded(self, label, count):
        with self.lock:
            bar = self.bars.get(label)
            if bar is not None:
                bar.update(count)

    def download_finished(self, label, total, seconds):
        with self.lock:
            bar = self.bars.pop(label, None)
            if bar is not None:
                bar.close()
        super().download_finished(label, total, seconds)

    def close(self):
        with self.lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()


def progress_for(quiet, stream=None):
    stream = stream or sys.stderr
    if quiet:
        return Quiet(stream)
    if stream.isatty():
        return Bars(stream)
    return Progress(stream)
