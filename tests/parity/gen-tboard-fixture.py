#!/usr/bin/env python3
"""Writes tests/fixtures/tboard/events.bin: TensorBoard records written by the
`tensorboard` package itself (its Event/Summary protobufs and
tensorboard.summary.writer.record_writer.RecordWriter, the writer that
PyTorch's SummaryWriter uses), for test-tboard.c to reproduce byte for byte
with lib/formats/tboard.c.

The events: file_version "brain.Event:2" at wall time 1700000000.25, then
the steps below with their scalars (simple_value, as SummaryWriter's
add_scalar writes them), at wall time 1700000000.25 + step.

Usage: gen-tboard-fixture.py [OUT_FILE]  (default: the fixture above)
"""
import io
import os
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tboard")
T0 = 1700000000.25

# (step, [(tag, value)]) - test-tboard.c lists the same.
EVENTS = [
    (1, [("train/loss", 5.1632), ("train/grad_norm", 1.25),
         ("train/learning_rate", 4.5e-05), ("train/epoch", 0.125)]),
    (2, [("eval/loss", 5.0)]),
    (300, [("train/loss", -0.0), ("train/tokens_per_s", 123456.789)]),
    (1 << 40, [("x" * 200, 3.4e38)]),
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(OUT, "events.bin")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buf = io.BytesIO()
    w = RecordWriter(buf)
    w.write(event_pb2.Event(wall_time=T0, file_version="brain.Event:2").SerializeToString())
    for step, vals in EVENTS:
        s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                       for t, v in vals])
        w.write(event_pb2.Event(wall_time=T0 + step, step=step, summary=s).SerializeToString())
    with open(path, "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
