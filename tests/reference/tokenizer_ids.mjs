// Reference ids for tests/data/tokenizer/extra_edge.txt, the hand-written
// tokenizer edge cases that the corpus (tests/data/tokenizer/*.txt) does not
// already cover: every kind of white space, alone and in runs, before words,
// numbers, punctuation, contractions and the end; contractions in every case
// with look-alike apostrophes; digits of other scripts; emoji and ZWJ
// sequences; combining marks; long words.
//
// The ids come from npm `tiktoken` 1.0.22 (the reference of the corpus),
// get_encoding("gpt2").encode_ordinary(case), never from our own code.
// Install it outside the repository and point TIKTOKEN_PREFIX at it:
//
//   mkdir -p /tmp/tk && (cd /tmp/tk && npm install tiktoken@1.0.22)
//   TIKTOKEN_PREFIX=/tmp/tk node tests/reference/tokenizer_ids.mjs
//
// Output (from the repository root):
//   tests/data/tokenizer/extra_edge.txt      one case per line, each a JSON
//                                            string literal (so cases may hold
//                                            LF, CR and other controls)
//   tests/data/tokenizer/extra_edge.txt.ids  line i: the ids of case i,
//                                            separated by single spaces
import { createRequire } from "node:module";
import { writeFileSync, readFileSync } from "node:fs";
import path from "node:path";

const prefix = path.resolve(process.env.TIKTOKEN_PREFIX || ".");
const require = createRequire(prefix + "/");
const version = JSON.parse(readFileSync(path.join(prefix, "node_modules/tiktoken/package.json"), "utf8")).version;
if (version !== "1.0.22") {
    console.error(`expected tiktoken 1.0.22, found ${version}`);
    process.exit(1);
}
const { get_encoding } = require("tiktoken");
const enc = get_encoding("gpt2");

const cases = [];
const add = (...s) => cases.push(...s);

// 1. white space of every kind (and look-alikes that are not \s), 1-3 times,
//    between "x" and what follows
const spaces = [
    " ", "\t", "\n", "\r", "\r\n", "\u000b", "\u000c", "\u0085", "\u00a0", "\u1680",
    "\u2000", "\u2003", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
    // not \s for tiktoken:
    "\ufeff", "\u200b", "\u180e", "\u001c", "\u001f", "\u0000",
];
const followers = ["word", "123", "...", "'s", "\u00e9t\u00e9", "\u4e2d\u6587", "\ud83d\ude00", ""];
for (const w of spaces) {
    for (const k of [1, 2, 3]) {
        for (const f of followers) add("x" + w.repeat(k) + f);
    }
    add(w);
    add(w + w + w);
    for (const f of followers) add(w + " " + f, " " + w + f, "  " + w + " " + f, " " + w + " " + f);
}
// mixed runs
for (const run of [" \t ", "\t  ", "  \n  ", "\n\n ", " \n\n", "\r\n\r\n  ", "\u3000 ", " \u3000", "\u00a0 ", " \u00a0",
                   "\u0085 ", " \u0085", "\t\t\t ", "    \t", "\n \n \n "]) {
    for (const f of ["word", "42", "!", "'ll", ""]) add("a" + run + f);
}
add(" ".repeat(40) + "end");
add("\n".repeat(40) + "end");
add("end" + " ".repeat(40));
add("a \nb  \n\nc\t\n d");

// 2. contractions in every case, with apostrophe look-alikes
const contr = ["s", "t", "re", "ve", "m", "ll", "d"];
const caseVariants = (s) => {
    let out = [""];
    for (const ch of s) out = out.flatMap((p) => [p + ch.toLowerCase(), p + ch.toUpperCase()]);
    return out;
};
for (const c of contr) {
    for (const v of caseVariants(c)) {
        for (const q of ["'", "\u2019", "\u2018", "\u02bc", "\uff07", "`"]) {
            add("it" + q + v + " x");
            add(" " + q + v);
            add(q + v + "x");
            add("9" + q + v);
        }
    }
}
add("'s's's's 'S'S 'sS");
add("I'm'd've'll're");

// 3. digits and numbers of other scripts
for (const d of ["\u0663\u0664\u0665", "\u0967\u0968\u0969", "\u09e9", "\u0beb", "\u0e53\u0e54", "\u1369\u136a",
                 "\u00b2\u00b3", "\u00bd\u2153", "\u216b\u2160", "\u2460\u2461", "\ud835\udfd9\ud835\udfda",
                 "\ud801\udca0", "\uff11\uff12", "\u3007\u3021", "\u0f22"]) {
    add(d);
    add(" " + d);
    add("abc" + d);
    add(d + "abc");
    add("1" + d + "2");
    add("  " + d + " x");
}

// 4. emoji, ZWJ sequences, flags, keycaps, skin tones, variation selectors
for (const e of ["\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66", "\ud83c\udff3\ufe0f\u200d\ud83c\udf08",
                 "\ud83d\udc4d\ud83c\udffd", "\ud83c\uddfa\ud83c\uddf3", "#\ufe0f\u20e3", "\u2764\ufe0f", "\ud83d\ude00\ud83d\ude00"]) {
    add(e);
    add(" " + e);
    add("a" + e + "b");
    add("  " + e + "  " + e);
}

// 5. combining marks
for (const s of ["e\u0301", "\u00e9", " e\u0301\u0302x", "\u0301abc", " \u0301abc", "a\u0308\u0301 b", "n\u0303 \u00f1",
                 "\u0915\u094d\u0937\u093f", "\u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27", "1\u0301", " \u20dd",
                 "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd", "\u1100\u1161\u11a8"]) add(s);

// 6. long words (one piece each) and long runs
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\u00e9\u00fc\u00df\u0434\u0436";
for (const n of [100, 1000, 20000]) {
    let w = "";
    for (let i = 0; i < n; i++) w += letters[Math.floor(rnd() * letters.length)];
    add(w);
    add(" " + w + " " + w.slice(0, 50));
}
add("a".repeat(5000));
add("1".repeat(5000));
add("!".repeat(5000));
add("\u4e00\u4e8c\u4e09".repeat(2000));

// 7. the text of the special token is ordinary text here
add("<|endoftext|>");
add("a<|endoftext|>b <|endoftext|> <|endoftext|><|endoftext|>");

const lines = [], idlines = [];
for (const c of cases) {
    const ids = Array.from(enc.encode_ordinary(c));
    const back = Buffer.from(enc.decode(new Uint32Array(ids)));
    if (!back.equals(Buffer.from(c, "utf8"))) {
        console.error("decode(encode(x)) != x for case " + JSON.stringify(c));
        process.exit(1);
    }
    lines.push(JSON.stringify(c));
    idlines.push(ids.join(" "));
}
writeFileSync("tests/data/tokenizer/extra_edge.txt", lines.join("\n") + "\n");
writeFileSync("tests/data/tokenizer/extra_edge.txt.ids", idlines.join("\n") + "\n");
enc.free();
console.log(`wrote ${cases.length} cases`);
