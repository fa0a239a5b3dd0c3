// Tokenize the demo model's data with the exact GPT-2 tokenizer (npm tiktoken,
// encoding "gpt2", encode_ordinary: special-token text is ordinary text).
//
// tiktoken is installed outside the repository, e.g.
//   mkdir -p /tmp/tk && (cd /tmp/tk && npm install tiktoken@1.0.22)
// and found through --tiktoken DIR or the TIKTOKEN_DIR environment variable
// (DIR is the folder that holds node_modules/).
//
// Usage:
//   node models/tokenize_demo_data.mjs [--tiktoken DIR] data [DATA_DIR]
//       DATA_DIR/{train,val}.jsonl (one {"source","id","text"} object per
//       document, grouped by source, written by models/demo_data.py)
//       -> DATA_DIR/{train,val}.bin: uint16 little-endian token ids, no header;
//       every document is preceded by <|endoftext|> (50256);
//       DATA_DIR/tokens.json: documents, tokens and the [start, end) token
//       span of every source in each .bin. DATA_DIR defaults to build/demo-data.
//   node models/tokenize_demo_data.mjs [--tiktoken DIR] text FILE|-
//       prints the ids of the file's bytes (UTF-8) as a JSON array.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const EOT = 50256;
let args = process.argv.slice(2);
let tkDir = process.env.TIKTOKEN_DIR || "";
const i = args.indexOf("--tiktoken");
if (i >= 0) {
  tkDir = args[i + 1];
  args.splice(i, 2);
}
if (!tkDir) {
  console.error("tokenize_demo_data: set TIKTOKEN_DIR or pass --tiktoken DIR (the folder holding node_modules/tiktoken)");
  process.exit(2);
}
const require = createRequire(path.resolve(tkDir) + path.sep);
const { get_encoding } = require("tiktoken");
const enc = get_encoding("gpt2");

function writeIds(file, chunks, n) {
  const out = Buffer.alloc(2 * n);
  let o = 0;
  for (const c of chunks) {
    for (let k = 0; k < c.length; k++) {
      if (c[k] > 65535) throw new Error("id out of uint16 range");
      out.writeUInt16LE(c[k], o);
      o += 2;
    }
  }
  fs.writeFileSync(file, out);
}

const mode = args[0];
if (mode === "data") {
  const dir = args[1] || "build/demo-data";
  const summary = {};
  for (const split of ["train", "val"]) {
    const lines = fs.readFileSync(path.join(dir, split + ".jsonl"), "utf8").split("\n").filter((l) => l.length);
    const chunks = [];
    const sources = {};
    let n = 0;
    for (const l of lines) {
      const doc = JSON.parse(l);
      const ids = enc.encode_ordinary(doc.text);
      const s = (sources[doc.source] ||= { documents: 0, span: [n, n] });
      if (s.span[1] !== n) throw new Error("documents of source " + doc.source + " are not contiguous");
      chunks.push([EOT], ids);
      n += 1 + ids.length;
      s.documents += 1;
      s.span[1] = n;
    }
    writeIds(path.join(dir, split + ".bin"), chunks, n);
    summary[split] = { documents: lines.length, tokens: n, sources };
    console.log(`${split}: ${lines.length} documents, ${n} tokens -> ${path.join(dir, split + ".bin")}`);
  }
  fs.writeFileSync(path.join(dir, "tokens.json"), JSON.stringify(summary, null, 1) + "\n");
} else if (mode === "text") {
  const f = args[1];
  const text = (f === "-" ? fs.readFileSync(0) : fs.readFileSync(f)).toString("utf8");
  process.stdout.write(JSON.stringify(Array.from(enc.encode_ordinary(text))) + "\n");
} else {
  console.error("usage: node models/tokenize_demo_data.mjs [--tiktoken DIR] data [DATA_DIR] | text FILE|-");
  process.exit(2);
}
enc.free();
