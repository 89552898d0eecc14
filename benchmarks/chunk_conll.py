"""A short-text test set from a tagging file in the re3d schema (any format `train tagger` reads): each
sentence cut into consecutive pieces of N-3 to N+3 words (a piece runs on to the end of an entity it would
cut), written as CoNLL, each piece a sentence of its own. Every gold entity survives whole, so a tagger's F1 on
the output compares with its F1 on the whole sentences: the difference is what context costs it (a service
caller's one-sentence text).

    python benchmarks/chunk_conll.py ../shared/data/conflibert/re3d/dev.txt 8 > /tmp/dev8.txt
    conflictbrief evaluate tagger --data /tmp/dev8.txt --format conll --dtype float32
"""
import random
import sys

from conflictbrief.model.labels import LabelSchema
from conflictbrief.training.readers import read_tagger_file
from conflictbrief.training.tagger import piece_bounds


def main(path: str, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for row in read_tagger_file(path, LabelSchema.from_yaml(None)):
        for start, end in piece_bounds(row["tags"], max(3, n - 3), n + 3, rng):
            for word, tag in zip(row["tokens"][start:end], row["tags"][start:end]):
                print(f"{word}\t{tag}")
            print()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
