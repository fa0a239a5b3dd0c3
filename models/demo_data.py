#!/usr/bin/env python3
"""Extract the demo model's training text from Debian packages (deterministic).

Sources (all public domain, see models/README.md):
  kjv     King James Bible          bible-kjv + bible-kjv-text  (`bible` program)
  tdavid  Spurgeon, Treasury of David  sword-comm-tdavid         (`diatheke`)
  devil   Bierce, The Devil's Dictionary  dict-devil             (dictd files)
  jargon  The Jargon File 4.4.7      jargon-text                (jargon.txt.gz)

Every source is split into documents (a Bible chapter, the commentary on one
psalm, a dictionary or lexicon entry). 5% of the documents are held out for
validation, deterministically:
  - KJV: every 20th chapter in canonical order (chapter index % 20 == 19);
  - Treasury of David: the psalms whose KJV chapter is held out (Psalms 2, 22,
    42, ..., 142), so neither the psalm nor its commentary is seen in training;
  - Devil's Dictionary, Jargon File: every 20th entry (index % 20 == 19).

Output (under --out, default build/demo-data/, never committed):
  train.jsonl, val.jsonl   one JSON object per document, {"source", "id", "text"},
                           grouped by source (input of models/tokenize_demo_data.mjs)
  train.txt, heldout.txt   the same documents as plain text, separated by an
                           empty line
  heldout_excerpt.txt      about 8 KB of whole lines of heldout.txt, starting at a
                           document, none of whose lines occurs in train.txt
                           (copied to tests/data/demo_heldout.txt)
  stats.json               documents and bytes per source and split

Usage: python3 models/demo_data.py [--out DIR] [--sources kjv,tdavid,devil,jargon]
"""
import argparse
import gzip
import hashlib
import html
import json
import os
import re
import subprocess
import sys

HOLDOUT_EVERY = 20
HOLDOUT_INDEX = HOLDOUT_EVERY - 1


def run(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout.decode("utf-8")


# ---------------------------------------------------------------- KJV
KJV_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def kjv_chapters():
    """[(book, chapter, text)] in canonical order; text = one verse per line."""
    raw = run(["bible", "-f", "-l", "100000", "Gen1:1-Rev22:21"])
    chapters, cur_key, verses = [], None, []
    for line in raw.split("\n"):
        if not line:
            continue
        m = KJV_VERSE.match(line)
        if not m:
            sys.exit("kjv: unexpected line: %r" % line[:80])
        key = (m.group(1), int(m.group(2)))
        if key != cur_key:
            if verses:
                chapters.append((cur_key[0], cur_key[1], "\n".join(verses) + "\n"))
            cur_key, verses = key, []
        verses.append(m.group(4).strip())
    chapters.append((cur_key[0], cur_key[1], "\n".join(verses) + "\n"))
    if len(chapters) != 1189:
        sys.exit("kjv: expected 1189 chapters, got %d" % len(chapters))
    return chapters


def kjv_docs():
    docs = []
    for i, (book, ch, text) in enumerate(kjv_chapters()):
        docs.append(("kjv", "%s%d" % (book, ch), text, i % HOLDOUT_EVERY == HOLDOUT_INDEX))
    return docs


def kjv_heldout_psalms():
    held = set()
    for i, (book, ch, _) in enumerate(kjv_chapters()):
        if book == "Psa" and i % HOLDOUT_EVERY == HOLDOUT_INDEX:
            held.add(ch)
    return held


# ---------------------------------------------------------------- Treasury of David
TD_KEY = re.compile(r"^Psalms (\d+):(\d+): ", re.M)


def osis_to_text(s):
    """Strip the OSIS markup diatheke prints; keep paragraphs, titles, poetry lines."""
    s = re.sub(r"<title[^>]*>", "\n\n", s)
    s = re.sub(r"</title>", "\n\n", s)
    s = re.sub(r"<div[^>]*type=\"x-p\"[^>]*/>", "\n\n", s)        # paragraph start/end
    s = re.sub(r"</?(lg|list)[^>]*>", "\n\n", s)
    s = re.sub(r"<(l|item)\b[^>]*>", "\n", s)
    s = re.sub(r"</(l|item)>", "\n", s)
    s = re.sub(r"<lb[^>]*/>", "\n", s)
    s = re.sub(r"<[^>]+>", "", s)                                   # hi, reference, milestones, chapter
    s = html.unescape(s)
    s = s.replace("\u00a0", " ")
    out = []
    for para in re.split(r"\n", s):
        para = re.sub(r"[ \t\r\f\v]+", " ", para).strip()
        out.append(para)
    text = "\n".join(out)
    text = re.sub(r"\n{2,}", "\n", text).strip("\n")
    return text + "\n"


def tdavid_docs():
    raw = run(["diatheke", "-b", "TDavid", "-m", "100000", "-k", "Psalms 1:1-150:6"])
    raw = re.sub(r"\n\(TDavid\)\s*$", "\n", raw)
    parts = TD_KEY.split(raw)
    if parts[0].strip():
        sys.exit("tdavid: unexpected text before the first key")
    # diatheke prints an entry once for every verse it covers: keep the first
    # occurrence of each distinct entry, in order, attributed to its psalm.
    seen, by_psalm = set(), {}
    for j in range(1, len(parts), 3):
        psalm, body = int(parts[j]), parts[j + 2]
        if not body.strip():
            continue
        h = hashlib.sha256(body.strip().encode("utf-8")).digest()
        if h in seen:
            continue
        seen.add(h)
        by_psalm.setdefault(psalm, []).append(osis_to_text(body))
    held = kjv_heldout_psalms()
    docs = []
    for psalm in sorted(by_psalm):
        text = "".join(by_psalm[psalm])
        docs.append(("tdavid", "Ps%d" % psalm, text, psalm in held))
    return docs


# ---------------------------------------------------------------- Devil's Dictionary
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def unwrap(text):
    """Join hard-wrapped prose lines into one line per paragraph; lines indented
    by 2+ spaces (verse, quotations, attributions) stay as they are."""
    out, para = [], []

    def flush():
        if para:
            out.append(" ".join(para))
            para.clear()

    for line in text.split("\n"):
        if not line.strip():
            flush()
            continue
        if line.startswith("  "):
            flush()
            out.append(line.rstrip())
        else:
            para.append(re.sub(r"\s+", " ", line.strip()))
    flush()
    return "\n".join(out).strip("\n") + "\n"


def devil_docs():
    with gzip.open("/usr/share/dictd/devil.dict.dz", "rb") as f:
        data = f.read()
    entries = []
    with open("/usr/share/dictd/devil.index", encoding="utf-8") as f:
        for line in f:
            word, off, length = line.rstrip("\n").split("\t")[:3]
            if word.startswith("00database") or word.startswith("00-database"):
                continue
            entries.append((b64num(off), b64num(length), word))
    entries = sorted(set(entries))                  # file order, each entry once
    docs = []
    for i, (off, length, word) in enumerate(entries):
        text = data[off:off + length].decode("utf-8")
        docs.append(("devil", word, unwrap(text), i % HOLDOUT_EVERY == HOLDOUT_INDEX))
    return docs


# ---------------------------------------------------------------- Jargon File
JARGON_ENTRY = re.compile(r"^   :(.+?):(.*)$")


def jargon_docs():
    with gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz", "rt", encoding="utf-8") as f:
        lines = f.read().replace("\u00a0", " ").split("\n")
    end = next(i for i, l in enumerate(lines) if l.startswith("Appendix A."))
    entries, cur = [], None
    for line in lines[:end]:
        m = JARGON_ENTRY.match(line)
        if m:
            cur = [m.group(1).strip() + ":" + m.group(2).rstrip()]
            entries.append(cur)
        elif cur is not None:
            if re.match(r"^[A-Z0-9=]", line):     # letter section headings, e.g. "A"
                continue
            cur.append(line[3:] if line.startswith("   ") else line)
    docs = []
    for i, e in enumerate(entries):
        text = "\n".join(e)
        text = re.sub(r"\{([^{}]*)\}", r"\1", text)    # {cross references}
        docs.append(("jargon", e[0].split(":")[0], unwrap(text), i % HOLDOUT_EVERY == HOLDOUT_INDEX))
    return docs


def heldout_excerpt(val_docs, train_docs, limit=8192):
    """The first run of whole lines of the held-out text, starting at a document
    and at most `limit` bytes long, none of whose lines appears in the training
    text."""
    train_lines = set()
    for d in train_docs:
        train_lines.update(d.split("\n"))
    text = "\n".join(val_docs)
    starts, pos = [], 0
    for d in val_docs:
        starts.append(pos)
        pos += len(d) + 1
    for st in starts:
        lines, size = [], 0
        for line in text[st:].split("\n"):
            if size + len(line.encode("utf-8")) + 1 > limit:
                break
            lines.append(line)
            size += len(line.encode("utf-8")) + 1
        if size > limit // 2 and not any(l in train_lines for l in lines if l):
            return "\n".join(lines) + "\n"
    sys.exit("no held-out excerpt found")


SOURCES = {"kjv": kjv_docs, "tdavid": tdavid_docs, "devil": devil_docs, "jargon": jargon_docs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/demo-data")
    ap.add_argument("--sources", default="kjv,tdavid,devil,jargon")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    splits = {"train": [], "val": []}
    stats = {}
    for name in args.sources.split(","):
        docs = SOURCES[name]()
        for src, key, text, held in docs:
            split = "val" if held else "train"
            splits[split].append((src, key, text))
            st = stats.setdefault(src, {"train_docs": 0, "val_docs": 0, "train_bytes": 0, "val_bytes": 0})
            st[split + "_docs"] += 1
            st[split + "_bytes"] += len(text.encode("utf-8"))
    for split, docs in splits.items():
        with open(os.path.join(args.out, split + ".jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for src, key, text in docs:
                f.write(json.dumps({"source": src, "id": key, "text": text}, ensure_ascii=False) + "\n")
        name = "train.txt" if split == "train" else "heldout.txt"
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(d[2] for d in docs))
    excerpt = heldout_excerpt([d[2] for d in splits["val"]], [d[2] for d in splits["train"]])
    with open(os.path.join(args.out, "heldout_excerpt.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(excerpt)
    stats["heldout_excerpt_bytes"] = len(excerpt.encode("utf-8"))
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
        f.write("\n")
    for src, st in stats.items():
        if not isinstance(st, dict):
            continue
        print("%-7s train %5d docs %9d bytes   val %4d docs %8d bytes (%.1f%%)" % (
            src, st["train_docs"], st["train_bytes"], st["val_docs"], st["val_bytes"],
            100.0 * st["val_bytes"] / (st["train_bytes"] + st["val_bytes"])))


if __name__ == "__main__":
    main()
