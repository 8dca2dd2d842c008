"""Helpers shared by the parity scripts of tests/parity: tk-pack's block
shards read back as the Trainer dataset both sides train on, the Trainer
that takes them in file order, and the fortunes quotes the live checks pack.

The scripts run from any directory, and some are loaded by others through
importlib (check-train.py loads gen-train-fixture.py, bench/generate.py
loads check-smollm2.py), so each puts its own folder first on sys.path
before importing this module:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tkparity import Blocks
"""
import os
import subprocess

import torch
from torch.utils.data import Dataset, SequentialSampler
from transformers import Trainer

FORTUNES = "/usr/share/games/fortunes/computers"


def parse_blocks(text):
    """[(ids, mask)] of what tk-tokenize --ids --show-mask prints of a block
    shard: a line of ids, then a line of its loss mask, per block."""
    lines = text.splitlines()
    return [([int(x) for x in lines[i].split()], [int(x) for x in lines[i + 1].split()])
            for i in range(0, len(lines), 2)]


def read_blocks(path, tokenizer, bin_dir):
    """[(ids, mask)] of a block shard, through bin_dir/tk-tokenize -t tokenizer
    --ids --show-mask."""
    p = subprocess.run([os.path.join(bin_dir, "tk-tokenize"), "-q", "-t", tokenizer,
                        "--ids", "--show-mask", path], check=True, stdout=subprocess.PIPE, text=True)
    return parse_blocks(p.stdout)


class Blocks(Dataset):
    """(ids, mask) blocks as a Trainer dataset: labels are the ids, -100 (out
    of the loss) where the mask is 0."""

    def __init__(self, blocks):
        self.items = [{"input_ids": torch.tensor(ids),
                       "labels": torch.tensor([t if m else -100 for t, m in zip(ids, mask)])}
                      for ids, mask in blocks]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class InOrder(Trainer):
    """A Trainer that sees the train blocks in file order (a
    SequentialSampler), as tk-train --no-shuffle does."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def fortunes(n):
    """The first n entries of the fortunes file of at most 200 characters."""
    with open(FORTUNES, encoding="utf-8", errors="replace") as f:
        entries = [e.strip() for e in f.read().split("\n%\n")]
    return [e for e in entries if e and len(e) <= 200][:n]
