"""Repeated throughput measurements, and the one-line and tabular forms every section prints them in."""

import statistics
from typing import NamedTuple


class Throughput(NamedTuple):
    """Images per second of each repetition of one benchmark at one precision.

    One figure says little on a shared machine: the median is the figure to
    quote, min and max bound it, and a spread (max / min) much above 1 means
    the machine was busy with something else, or the repetitions too short.
    """

    benchmark: str
    precision: str
    rates: tuple
    note: str = ""  # what else the line should say (peak memory, CPU use, ...)

    @property
    def median(self):
        return statistics.median(self.rates)

    @property
    def spread(self):
        return max(self.rates) / min(self.rates)

    def line(self):
        note = f"; {self.note}" if self.note else ""
        return (f"{self.benchmark} [{self.precision}]: {self.median:.2f} images/s median of {len(self.rates)} "
                f"(min {min(self.rates):.2f}, max {max(self.rates):.2f}, spread {self.spread:.2f}x){note}")


def summary_table(throughputs):
    """Markdown: one row per benchmark and precision."""
    lines = ["| benchmark | precision | median images/s | min | max | spread (max/min) |",
             "|---|---|---:|---:|---:|---:|"]
    for result in throughputs:
        lines.append(f"| {result.benchmark} | {result.precision} | {result.median:.2f} | {min(result.rates):.2f} | "
                     f"{max(result.rates):.2f} | {result.spread:.2f}x |")
    return "\n".join(lines)
