#!/usr/bin/env python3
"""Writes src/screen/lexicon.txt: the common-word lexicon that sound-alike hits are checked
against (a homophone of a term that is an ordinary word, such as 病毒 for 冰毒, is not reported).

Source: the word list of jieba 0.42.1 (`pip download jieba==0.42.1 --no-deps`, then unpack it;
its dict.txt gives each word a corpus frequency). jieba is MIT-licensed:

    The MIT License (MIT)
    Copyright (c) 2013 Sun Junyi

    Permission is hereby granted, free of charge, to any person obtaining a copy of this
    software and associated documentation files (the "Software"), to deal in the Software
    without restriction, including without limitation the rights to use, copy, modify, merge,
    publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
    to whom the Software is furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all copies or
    substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.

Kept: words of 2 to 4 Han characters (U+4E00..U+9FFF) with frequency >= 20: about 71k words,
~600 KB. The cutoff keeps everyday words (餐费 25, 小气 84, 病毒 2340) and drops the long tail,
where jieba lists deliberate-looking variants as words (枪枝 10, 发飘 3) that evaders use. The
engine normalises each word (traditional to simplified) when it loads the file.

Also kept: the words of scripts/lexicon-extra.txt (beside this script), everyday chat words
that jieba lists below the cutoff or not at all (收件人 14, 大码 -), each seen making an
ordinary message sound like a listed term.

Usage: scripts/lexicon.py path/to/jieba/dict.txt > src/screen/lexicon.txt
"""
import os
import re
import sys

MIN_FREQ = 20
HAN = re.compile(r"^[\u4e00-\u9fff]{2,4}$")

words = []
with open(sys.argv[1], encoding="utf8") as f:
    for line in f:
        word, count, *_ = line.split()
        if HAN.match(word) and int(count) >= MIN_FREQ:
            words.append(word)
extra = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lexicon-extra.txt")
with open(extra, encoding="utf8") as f:
    for line in f:
        word = line.strip()
        if word and not word.startswith("#"):
            assert HAN.match(word), f"{extra}: {word!r} is not 2-4 Han characters"
            words.append(word)
print("# Common words (jieba 0.42.1 dict.txt, MIT licence, Copyright (c) 2013 Sun Junyi):")
print(f"# 2-4 Han characters, frequency >= {MIN_FREQ}, and scripts/lexicon-extra.txt.")
print("# Built by scripts/lexicon.py; do not edit.")
for w in sorted(set(words)):
    print(w)
