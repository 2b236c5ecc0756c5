"""An :class:`~yue_train.lyrics.align.Alignment` written for people and for ``yue-prep build``.

``lyrics.aligned.lrc``: LRC with timed ``[label]`` markers and timed lines, the form ``yue-prep build``
reads; a line that was not found is kept as ``[skipped: text]`` (an LRC metadata line, which readers
ignore), so a user who hears it can give it a time by hand. The last section ends at ``[mm:ss.xx][end]``
when it ends before the audio. ``lyrics.alignment.csv``: one row per line (and per unmatched span of
singing) with its times, score and status, for checking the flagged lines first.
"""

from __future__ import annotations

import csv
import io

from yue_train.lyrics.align import Alignment

CSV_FIELDS = ("line", "section", "status", "score", "start", "end", "text")


def lrc_time(seconds: float) -> str:
    """``[mm:ss.xx]``, rounded to the centisecond."""
    cs = int(round(seconds * 100))
    return f"[{cs // 6000:02d}:{cs % 6000 // 100:02d}.{cs % 100:02d}]"


def to_lrc(alignment: Alignment) -> str:
    out = []
    for sec in alignment.sections:
        out.append(f"{lrc_time(sec.start)}[{sec.label}]")
        for ln in alignment.lines:
            if sec.block is None or ln.block != sec.block:
                continue
            if ln.start is None:
                out.append(f"[skipped: {ln.text.replace(']', ')')}]")
            else:
                out.append(f"{lrc_time(ln.start)} {ln.text}")
        out.append("")
    last = alignment.sections[-1] if alignment.sections else None
    if last is not None and last.end is not None:
        out.append(f"{lrc_time(last.end)}[end]")
    return "\n".join(out).rstrip("\n") + "\n"


def _fmt(t: float | None) -> str:
    return "" if t is None else f"{t:.2f}"


def to_csv(alignment: Alignment) -> str:
    labels = {sec.block: sec.label for sec in alignment.sections if sec.block is not None}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for ln in alignment.lines:
        times = (_fmt(ln.start), _fmt(ln.end))
        w.writerow([ln.index + 1, labels.get(ln.block, ""), ln.status, f"{ln.score:.3f}", *times, ln.text])
    for u in alignment.unmatched:
        status = f"repeat of line {u.line + 1}" if u.kind == "repeat" and u.line is not None else "extra singing"
        w.writerow(["", "", status, f"{u.score:.3f}", _fmt(u.start), _fmt(u.end), ""])
    return buf.getvalue()
