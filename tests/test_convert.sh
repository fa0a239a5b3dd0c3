#!/bin/sh
# test_convert.sh - `gpt convert --hf/--llmc` on the command line: exit
# statuses, messages, existing outputs and --force, a write error (file size
# limit) leaving nothing behind, and models/fetch-gpt2.sh without network and
# against a local stand-in for huggingface.co. Run from the repository root;
# $GPT is the binary. (tests/test_convert.c checks the converted logits.)
GPT=${GPT:-build/gpt}
BUILD=${BUILD:-build}
T=$BUILD/tmp_convert_sh
rm -rf "$T"; mkdir -p "$T"
HF=tests/data/hf
LL=tests/data/llmc

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name" "$*"; fi; }
# no_leftovers DIR: DIR holds no file (in particular no temporary one)
empty_dir() { test -z "$(ls -A "$1")"; }

# --- good inputs ------------------------------------------------------------
ok=1
for d in "$HF"/l*; do
    n=$(basename "$d")
    $GPT convert --hf "$d" -o "$T/$n.bin" 2>"$T/err" || { ok=0; cat "$T/err"; }
    grep -q "wrote $T/$n.bin" "$T/err" || ok=0
    $GPT info -m "$T/$n.bin" >"$T/info" 2>&1 || ok=0
done
check hf_folders_convert test $ok = 1
grep -q 'n_layer    4' "$T/info"
check hf_sharded_info test $? = 0
$GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$T/again.bin" 2>/dev/null
check hf_convert_is_deterministic cmp -s "$T/again.bin" "$T/l2_h4_c32_f32_prefix.bin"
ok=1
for t in f16 bf16 q8_0; do
    $GPT convert --hf "$HF/l3_h5_c40_f16_masks" --dtype $t -o "$T/$t.bin" 2>/dev/null || ok=0
    $GPT info -m "$T/$t.bin" 2>/dev/null | grep -q "dtype      $t" || ok=0
done
check hf_dtypes test $ok = 1
ok=1
for f in "$LL"/*.bin; do
    n=$(basename "$f" .bin)
    $GPT convert --llmc "$f" --vocab "$LL/vocab.json" --merges "$LL/merges.txt" -o "$T/$n.bin" 2>"$T/err" || {
        ok=0; cat "$T/err"; }
done
check llmc_files_convert test $ok = 1
$GPT score -m "$T/l2_h4_c32_f32_prefix.bin" --ids "1 2 3 4 5 6" >"$T/score" 2>&1
check score_a_converted_model sh -c "test \$(wc -l <'$T/score') = 6 && tail -1 '$T/score' | grep -q '^ppl'"
check no_temporary_files_after_success sh -c "! ls '$T' | grep -q tmp"

# --- usage errors (exit 2) ----------------------------------------------------
usage_case() { # name words args...
    name=$1; words=$2; shift 2
    $GPT convert "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 2 ] && grep -q -- "$words" "$T/err" && ! ls "$T/u" >/dev/null 2>&1; then pass "$name"
    else fail "$name" "exit $rc: $(cat "$T/err")"; fi
}
usage_case usage_no_source "say what to convert" -o "$T/u"
usage_case usage_two_sources "one source" --hf "$HF/l2_h4_c32_f32_prefix" --llmc x.bin -o "$T/u"
usage_case usage_no_output "say where" --hf "$HF/l2_h4_c32_f32_prefix"
usage_case usage_llmc_needs_vocab "needs --vocab" --llmc "$LL/l2_h4_c32_t24_v300_fp32.bin" -o "$T/u"
usage_case usage_bad_dtype "f32, f16, bf16 or q8_0" --hf "$HF/l2_h4_c32_f32_prefix" --dtype f8 -o "$T/u"
usage_case usage_seed_with_hf "--random only" --hf "$HF/l2_h4_c32_f32_prefix" --seed 3 -o "$T/u"
usage_case usage_vocab_with_hf "vocab.json" --hf "$HF/l2_h4_c32_f32_prefix" --vocab v.json -o "$T/u"
usage_case usage_missing_value "needs a value" --hf
$GPT convert --help | grep -q -- "--llmc FILE"
check help_mentions_sources test $? = 0

# --- bad inputs (exit 1, a message naming the problem, nothing written) -----
bad_case() { # folder words
    mkdir -p "$T/bad"
    $GPT convert --hf "$HF/$1" -o "$T/bad/out.bin" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 1 ] && grep -q -- "$2" "$T/err" && grep -q '^gpt convert: ' "$T/err" && empty_dir "$T/bad" &&
        test ! -s "$T/out"; then pass "bad_$1"
    else fail "bad_$1" "exit $rc: $(cat "$T/err"); left: $(ls "$T/bad")"; fi
    rm -rf "$T/bad"
}
bad_case bad_header_len "runs past the end"
bad_case bad_header_json "not valid JSON"
bad_case bad_offsets_outside "outside the data"
bad_case bad_offsets_overlap "overlap"
bad_case bad_offsets_size "needs 32"
bad_case bad_dtype_unknown "Q7"
bad_case bad_dtype_f64 "F64"
bad_case bad_shape_transposed "expected \[8, 24\]"
bad_case bad_shape_config "expected \[16, 8\]"
bad_case bad_config_json "config.json: not valid JSON"
bad_case bad_no_vocab "vocab.json is missing"
bad_case bad_no_merges "merges.txt is missing"
bad_case bad_missing_tensor "h.0.mlp.c_fc.bias is missing"
bad_case bad_lm_head_untied "untied"
bad_case bad_shard_missing "model-00002-of-00002.safetensors"
mkdir -p "$T/bad"
$GPT convert --hf "$T/nonexistent" -o "$T/bad/out.bin" 2>"$T/err"; rc=$?
check hf_missing_folder sh -c "test $rc = 1 && grep -q 'nonexistent/config.json is missing' '$T/err' && test -z \"\$(ls -A '$T/bad')\""
head -c 5000 "$LL/l2_h4_c32_t24_v300_fp32.bin" >"$T/trunc.bin"
$GPT convert --llmc "$T/trunc.bin" --vocab "$LL/vocab.json" --merges "$LL/merges.txt" -o "$T/bad/out.bin" 2>"$T/err"; rc=$?
check llmc_truncated sh -c "test $rc = 1 && grep -q 'truncated' '$T/err' && test -z \"\$(ls -A '$T/bad')\""
$GPT convert --llmc "$LL/l2_h4_c32_t24_v300_fp32.bin" --vocab "$HF/l3_h5_c40_f16_masks/vocab.json" \
    --merges "$HF/l3_h5_c40_f16_masks/merges.txt" -o "$T/bad/out.bin" 2>"$T/err"; rc=$?
check llmc_vocab_mismatch sh -c "test $rc = 1 && grep -q '500 tokens' '$T/err' && test -z \"\$(ls -A '$T/bad')\""
rm -rf "$T/bad"

# --- existing outputs -----------------------------------------------------------
M=$T/exists.bin
printf 'precious' >"$M"
$GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$M" 2>"$T/err"; rc=$?
check existing_output_refused sh -c "test $rc = 1 && grep -q 'exists' '$T/err' && grep -q -- '--force' '$T/err' && test \"\$(cat '$M')\" = precious"
$GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$M" --force 2>/dev/null; rc=$?
check force_overwrites sh -c "test $rc = 0 && cmp -s '$M' '$T/l2_h4_c32_f32_prefix.bin'"

# --- outputs that are not regular files, symbolic links, permissions (issue 17) ---
# Never opened, never replaced, even with --force; the checks happen before the
# source is read. POSIX file types; not under wine.
case "${TEST_WRAPPER:-}" in *wine*) POSIX_ONLY= ;; *) POSIX_ONLY=1 ;; esac
SRC="--hf $HF/l2_h4_c32_f32_prefix"
not_replaced() { # name path what [--force]: convert refuses path and leaves it as it was
    name=$1; p=$2; what=$3; shift 3
    before=$(ls -ld "$p")
    timeout 60 $GPT convert $SRC -o "$p" "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ $rc = 1 ] && grep -q -- "is $what" "$T/err" && grep -q 'even with --force' "$T/err" &&
        [ "$(ls -ld "$p")" = "$before" ] && ! ls "$(dirname "$p")" | grep -q 'tmp-'; then pass "$name"
    else fail "$name" "exit $rc: $(head -c 300 "$T/err"); now $(ls -ld "$p")"; fi
}
if [ -n "$POSIX_ONLY" ]; then
    mkdir -p "$T/special"
    mkfifo "$T/special/fifo"
    not_replaced output_fifo "$T/special/fifo" "a FIFO"
    not_replaced output_fifo_force "$T/special/fifo" "a FIFO" --force
    not_replaced output_directory_force "$T/special" "a directory" --force
    # a device node of our own (as /dev/full would be), where we may make one
    if mknod "$T/special/null" c 1 3 2>/dev/null; then
        not_replaced output_device_force "$T/special/null" "a character device" --force
    elif [ -c /dev/full ]; then
        # not as root: /dev/full cannot be replaced anyway, so the test is safe
        not_replaced output_device_force /dev/full "a character device" --force
    else
        echo "SKIP output_device_force: cannot make a device node and there is no /dev/full"
    fi
    # inputs that are not regular files are refused without blocking
    mkdir -p "$T/special/hf" "$T/special/out"
    cp "$HF/l2_h4_c32_f32_prefix/"* "$T/special/hf/"
    rm "$T/special/hf/model.safetensors"; mkfifo "$T/special/hf/model.safetensors"
    timeout 60 $GPT convert --hf "$T/special/hf" -o "$T/special/out/x.bin" >/dev/null 2>"$T/err"; rc=$?
    check input_safetensors_fifo sh -c "test $rc = 1 && grep -q 'model.safetensors is a FIFO' '$T/err'"
    rm "$T/special/hf/config.json"; mkfifo "$T/special/hf/config.json"
    timeout 60 $GPT convert --hf "$T/special/hf" -o "$T/special/out/x.bin" >/dev/null 2>"$T/err"; rc=$?
    check input_config_fifo sh -c "test $rc = 1 && grep -q 'config.json is a FIFO' '$T/err'"
    timeout 60 $GPT convert --llmc "$T/special/fifo" --vocab "$LL/vocab.json" --merges "$LL/merges.txt" \
        -o "$T/special/out/x.bin" >/dev/null 2>"$T/err"; rc=$?
    check input_llmc_fifo sh -c "test $rc = 1 && grep -q 'fifo is a FIFO' '$T/err'"
    timeout 60 $GPT convert --llmc "$LL/l2_h4_c32_t24_v300_fp32.bin" --vocab /dev/zero --merges "$LL/merges.txt" \
        -o "$T/special/out/x.bin" >/dev/null 2>"$T/err"; rc=$?
    check input_vocab_device sh -c "test $rc = 1 && grep -q '/dev/zero is a character device' '$T/err' && test -z \"\$(ls -A '$T/special/out')\""
    rm -rf "$T/special"
    # symbolic links: one is an existing output; --force replaces the link, not its target
    mkdir -p "$T/links"
    printf 'target' >"$T/links/target"
    ln -s target "$T/links/link"
    $GPT convert $SRC -o "$T/links/link" >/dev/null 2>"$T/err"; rc=$?
    check output_symlink_refused sh -c "test $rc = 1 && grep -q 'exists' '$T/err' && test -L '$T/links/link'"
    ln -s nowhere "$T/links/dangling"
    $GPT convert $SRC -o "$T/links/dangling" >/dev/null 2>"$T/err"; rc=$?
    check output_dangling_symlink_refused sh -c "test $rc = 1 && grep -q 'exists' '$T/err' && test -L '$T/links/dangling'"
    $GPT convert $SRC -o "$T/links/link" --force >/dev/null 2>"$T/err"; rc=$?
    check output_symlink_force_replaces_the_link sh -c "test $rc = 0 && test ! -L '$T/links/link' && cmp -s '$T/links/link' '$T/l2_h4_c32_f32_prefix.bin' && test \"\$(cat '$T/links/target')\" = target"
    rm -rf "$T/links"
    # a file the user cannot read still exists (it used to be replaced)
    if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
        mkdir -p "$T/perm"
        chmod 777 "$T/perm"
        printf 'secret' >"$T/perm/out.bin"
        chmod 200 "$T/perm/out.bin"
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- $GPT convert $SRC -o "$T/perm/out.bin" \
            >/dev/null 2>"$T/err"; rc=$?
        check output_unreadable_exists_for_another_user sh -c "test $rc = 1 && grep -q 'already exists' '$T/err' && test \"\$(cat '$T/perm/out.bin')\" = secret && test \$(ls -A '$T/perm' | wc -l) = 1"
        rm -rf "$T/perm"
    else
        echo "SKIP output_unreadable_exists_for_another_user: needs root, setpriv and the user nobody to run as an ordinary user"
    fi
else
    for n in output_fifo output_fifo_force output_directory_force output_device_force output_symlink_refused \
        input_safetensors_fifo input_config_fifo input_llmc_fifo input_vocab_device \
        output_dangling_symlink_refused output_symlink_force_replaces_the_link output_unreadable_exists_for_another_user; do
        echo "SKIP $n: POSIX file types; not under wine"
    done
fi

# --- non-finite source weights (issue 17) -----------------------------------------
# A copy of the f32 folder with one value of its safetensors data replaced: the
# data starts after the 8-byte length and the JSON header; h.0.attn.c_attn.bias
# is at bytes 38400.. of the data, h.0.attn.c_attn.weight at 38784.. (Conv1D:
# its second value is row 1, column 0 of ours).
nonfinite_copy() { # folder offset-in-data bytes(printf escapes)
    rm -rf "$1"; cp -R "$HF/l2_h4_c32_f32_prefix" "$1"
    hlen=$(od -An -t u8 -N 8 "$1/model.safetensors" | tr -d ' ')
    printf "$3" | dd of="$1/model.safetensors" bs=1 seek=$((8 + hlen + $2)) conv=notrunc 2>/dev/null
}
nonfinite_copy "$T/nan" 38404 '\000\000\300\177'
mkdir -p "$T/nf"
$GPT convert --hf "$T/nan" -o "$T/nf/out.bin" >/dev/null 2>"$T/err"; rc=$?
check nonfinite_source_refused sh -c "test $rc = 1 && grep -q 'tensor h.0.attn.c_attn.bias (5) has a non-finite value (nan) at row 0, column 1' '$T/err' && grep -q -- '--allow-nonfinite' '$T/err' && test -z \"\$(ls -A '$T/nf')\""
$GPT convert --hf "$T/nan" -o "$T/nf/out.bin" --allow-nonfinite >/dev/null 2>"$T/err"; rc=$?
$GPT info --check -m "$T/nf/out.bin" >/dev/null 2>"$T/err2"; rc2=$?
check nonfinite_source_allowed_then_info_check_names_it sh -c "test $rc = 0 && test $rc2 = 1 && grep -q 'tensor 5 (h.0.attn.c_attn.bias) holds NaN at element 1 (row 0, column 1)' '$T/err2'"
rm -rf "$T/nf"/*
nonfinite_copy "$T/big" 38788 '\000\044\164\111' # 1e6: fine in f32 and bf16, infinite in f16
$GPT convert --hf "$T/big" -o "$T/nf/out.bin" --dtype f16 >/dev/null 2>"$T/err"; rc=$?
$GPT convert --hf "$T/big" -o "$T/nf/bf16.bin" --dtype bf16 >/dev/null 2>/dev/null; rc2=$?
check value_too_large_for_f16_refused sh -c "test $rc = 1 && grep -q 'h.0.attn.c_attn.weight (4): the value 1e+06 at row 1, column 0 is too large for f16' '$T/err' && test $rc2 = 0 && test ! -e '$T/nf/out.bin'"
rm -rf "$T/nan" "$T/big" "$T/nf"

# --- a write error: the file size limit stops the output part-way -------------
mkdir -p "$T/full"
(trap '' XFSZ; ulimit -f 64 && exec $GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$T/full/out.bin") 2>"$T/err"; rc=$?
check write_error_leaves_nothing sh -c "test $rc = 1 && grep -qi 'write error' '$T/err' && test -z \"\$(ls -A '$T/full')\""
printf 'old' >"$T/full/out.bin"
(trap '' XFSZ; ulimit -f 64 && exec $GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$T/full/out.bin" --force) 2>"$T/err"; rc=$?
check write_error_keeps_old_output sh -c "test $rc = 1 && test \"\$(cat '$T/full/out.bin')\" = old && test \$(ls -A '$T/full' | wc -l) = 1"
$GPT convert --hf "$HF/l2_h4_c32_f32_prefix" -o "$T/no/such/dir/out.bin" 2>"$T/err"; rc=$?
check unwritable_folder sh -c "test $rc = 1 && grep -q 'no/such/dir' '$T/err'"

# --- models/fetch-gpt2.sh -------------------------------------------------------
FETCH=models/fetch-gpt2.sh
sh $FETCH 100M >/dev/null 2>"$T/err"; rc=$?
check fetch_bad_size sh -c "test $rc = 2 && grep -q '100M' '$T/err'"
start=$(date +%s)
GPT=$GPT HF_ENDPOINT=http://127.0.0.1:1 sh $FETCH --dir "$T/fetch" >/dev/null 2>"$T/err"; rc=$?
took=$(( $(date +%s) - start ))
if [ $rc = 1 ] && grep -q 'network is unreachable' "$T/err" && [ $took -le 15 ] && ! test -e "$T/fetch/gpt2-124M.bin"; then
    pass fetch_without_network_fails_at_once
else fail fetch_without_network_fails_at_once "exit $rc after $took s: $(cat "$T/err")"; fi
GPT=$T/nothing-here sh $FETCH --dir "$T/fetch" >/dev/null 2>"$T/err"; rc=$?
check fetch_needs_gpt sh -c "test $rc = 1 && grep -q 'nothing-here' '$T/err' && grep -q 'GPT=' '$T/err'"

# A local stand-in for huggingface.co: serves a tiny GPT-2 folder with HEAD,
# byte ranges and the X-Linked-Size/X-Linked-Etag headers of LFS files.
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    echo "SKIP fetch_from_local_server: needs $PY and curl"
else
    SRV=$T/srv
    mkdir -p "$SRV/openai-community/gpt2/resolve/main"
    cp "$HF/l2_h4_c32_f32_prefix/"* "$SRV/openai-community/gpt2/resolve/main/"
    cat >"$T/server.py" <<'EOF'
import hashlib, http.server, os, sys
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send_file(self, body):
        p = root + self.path
        if not os.path.isfile(p):
            self.send_error(404); return
        data = open(p, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        if start > len(data):
            self.send_error(416); return
        self.send_response(206 if start else 200)
        if p.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            self.send_header("X-Linked-Size", str(len(data)))
            lie = os.path.exists(root + "/LIE")  # a server that reports a wrong hash
            self.send_header("X-Linked-Etag", '"%s"' % ("0" * 64 if lie else sha))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if body: self.wfile.write(data[start:])
    def do_HEAD(self): self.send_file(False)
    def do_GET(self): self.send_file(True)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_port, flush=True)
s.serve_forever()
EOF
    "$PY" "$T/server.py" "$SRV" >"$T/port" 2>"$T/server.err" &
    srv_pid=$!
    i=0
    while [ ! -s "$T/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    port=$(cat "$T/port")
    EP=http://127.0.0.1:$port
    F=$T/fetch
    GPT=$GPT HF_ENDPOINT=$EP sh $FETCH --dir "$F" >"$T/log" 2>&1; rc=$?
    check fetch_from_local_server sh -c "test $rc = 0 && grep -q 'SHA-256 ok' '$T/log' && cmp -s '$F/gpt2-124M.bin' '$T/l2_h4_c32_f32_prefix.bin' && ! ls '$F/gpt2-124M' | grep -q part"
    GPT=$GPT HF_ENDPOINT=$EP sh $FETCH --dir "$F" >"$T/log" 2>&1; rc=$?
    check fetch_again_reuses_files sh -c "test $rc = 0 && grep -q 'exists already' '$T/log' && ! grep -q downloading '$T/log'"
    GPT=$GPT HF_ENDPOINT=$EP sh $FETCH --dir "$F" --dtype q8_0 >"$T/log" 2>&1; rc=$?
    check fetch_dtype sh -c "test $rc = 0 && $GPT info -m '$F/gpt2-124M-q8_0.bin' | grep -q 'dtype      q8_0'"
    # an interrupted download resumes
    head -c 100000 "$F/gpt2-124M/model.safetensors" >"$F/gpt2-124M/model.safetensors.part"
    rm "$F/gpt2-124M/model.safetensors"
    GPT=$GPT HF_ENDPOINT=$EP sh $FETCH --dir "$F" --force >"$T/log" 2>&1; rc=$?
    check fetch_resumes sh -c "test $rc = 0 && grep -q 'resuming model.safetensors at 100000' '$T/log' && cmp -s '$F/gpt2-124M/model.safetensors' '$HF/l2_h4_c32_f32_prefix/model.safetensors'"
    # a download whose hash is wrong is deleted
    rm "$F/gpt2-124M/model.safetensors"
    touch "$SRV/LIE"
    GPT=$GPT HF_ENDPOINT=$EP sh $FETCH --dir "$F" --force >"$T/log" 2>&1; rc=$?
    check fetch_bad_hash sh -c "test $rc = 1 && grep -q 'corrupt' '$T/log' && ! test -e '$F/gpt2-124M/model.safetensors' && ! test -e '$F/gpt2-124M/model.safetensors.part'"
    kill "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
fi

rm -rf "$T"
