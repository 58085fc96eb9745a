#!/usr/bin/env python3
"""Writes src/screen/dense_chars.txt: the Han characters most frequent in running Chinese text,
most frequent first, which the matcher's dense encoding gives one- and two-byte codes.

Source: the word list of jieba 0.42.1 (MIT licence; `pip download jieba --no-deps`, then unpack
it), whose dict.txt gives each word a corpus frequency; a character's frequency is the sum over
the words that contain it. Only BMP letters (three bytes in UTF-8) are kept; the engine drops at
load time any that normalisation maps to another character (traditional forms).

Usage: scripts/dense-chars.py path/to/jieba/dict.txt > src/screen/dense_chars.txt
"""
import collections
import sys

KEEP = 3800

freq = collections.Counter()
with open(sys.argv[1], encoding="utf8") as f:
    for line in f:
        word, count, *_ = line.split()
        for ch in word:
            if 0x800 <= ord(ch) <= 0xFFFF and ch.isalnum():
                freq[ch] += int(count)
ranked = [ch for ch, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))]
chars = ranked[:KEEP]
for i in range(0, len(chars), 50):
    print("".join(chars[i : i + 50]))
