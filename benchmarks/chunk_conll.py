"""A short-text test set from a CoNLL/BIO file: each sentence cut into consecutive pieces of N-3 to N+3 words
(a piece runs on to the end of an entity it would cut), each piece a sentence of its own. Every gold entity
survives whole, so a tagger's F1 on the output compares with its F1 on the whole sentences: the difference is
what context costs it (a service caller's one-sentence text).

    python benchmarks/chunk_conll.py ../shared/data/conflibert/re3d/dev.txt 8 > /tmp/dev8.txt
    conflictbrief evaluate tagger --data /tmp/dev8.txt --format conll --dtype float32
"""
import random
import sys

def sentences(path):
    sent = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("-DOCSTART-"):
            if sent:
                yield sent
            sent = []
            continue
        parts = line.split()
        sent.append((parts[0], parts[-1]))
    if sent:
        yield sent

src, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0
rng = random.Random(seed)
out = []
for sent in sentences(src):
    i = 0
    while i < len(sent):
        target = i + rng.randint(max(3, n - 3), n + 3)
        j = min(target, len(sent))
        while j < len(sent) and sent[j][1].startswith("I-"):
            j += 1
        out.append(sent[i:j])
        i = j
for piece in out:
    for w, t in piece:
        print(f"{w}\t{t}")
    print()
