"""Operating-system plumbing shared by the whole project: atomic files, file locks, process
groups and file-change signatures.

A leaf: it imports nothing of Airdock's, so every other package (the embedded AWS included,
which must stay independent of the rest) can lean on it.
"""
