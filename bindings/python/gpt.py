"""gpt.py - Python binding of gpt.c (ctypes; standard library only).

    import gpt
    with gpt.Model() as model:                  # the demo model
        print(model.generate("And God said", max_new_tokens=40, seed=1))
        for piece in model.stream("In the beginning", max_new_tokens=40):
            print(piece, end="", flush=True)
        print(model.generate("And God said", n=3, top_k=0))        # 3 strings
        print(model.generate("And God said", num_beams=4, max_new_tokens=20))
        with model.session() as chat:           # a context kept across calls
            chat.generate("Q: Who made the light?\nA:", stop="\n")
            chat.generate("\nQ: And the waters?\nA:", stop="\n")  # the history is not evaluated again

The shared library is found through the GPT_LIBRARY environment variable (a
path to libgpt.so / gpt.dll / libgpt.dylib), else next to this file (the
package that `pip install bindings/python` builds), else in the build/ folder
of the repository this file belongs to, else in the lib/ folder of the
installation this file is part of (`make install`), else where the system
keeps libraries (ctypes.util.find_library("gpt")).

Arguments are checked before they reach C: a wrong type raises TypeError, an
integer that does not fit its C type OverflowError (a negative seed
ValueError), a NUL character in a prompt or a stop string ValueError; values
of the right type that the library refuses raise GPTError: GPTValueError,
which is also a ValueError, for a value out of range (the library's
gpt_generate_params_check says which and why).

A Model holds one loaded checkpoint, which is immutable: any number of Python
threads may call its methods at once. Every call creates its own context (KV
cache and scratch), and ctypes releases the GIL while the library computes.
A Session holds one context across calls. Streaming runs the library's
stepped generator on the caller's thread, one ctypes call per step: the
binding starts no thread, and Ctrl-C stops a stream or a generation between
two steps.

MIT licence; see LICENSE.
"""

import collections
import ctypes
import ctypes.util
import inspect
import numbers
import os
import sys
import threading

try:  # optional: a Session's logits are numpy arrays when it is installed, lists otherwise
    import numpy as _np
except ImportError:
    _np = None

__all__ = ["Model", "Session", "Sequence", "Generation", "Piece", "TokenLogprob", "GPTError", "GPTValueError",
           "version", "library_path", "default_model_path"]

# --------------------------------------------------------------------------
# Status codes (gpt.h)

GPT_OK = 0
GPT_ERR_INVALID_ARG = -1
GPT_ERR_OUT_OF_MEMORY = -2
GPT_ERR_IO = -3
GPT_ERR_FORMAT = -4
GPT_ERR_UNSUPPORTED = -5
GPT_ERR_TOKEN_RANGE = -6
GPT_ERR_CONTEXT_FULL = -7
GPT_ERR_BUFFER_TOO_SMALL = -8
GPT_ERR_EXISTS = -9
GPT_ERR_CANCELLED = -10
GPT_ERR_NUMERIC = -11

GPT_TOKENIZE_SPECIAL = 1
GPT_CONTEXT_STOP = 0
GPT_CONTEXT_SLIDE = 1
GPT_MAX_LOGPROBS = 20

GPT_STOP_NONE = 0
GPT_STOP_EOS = 2
GPT_STOP_CONTEXT_FULL = 5
STOP_REASONS = {0: "none", 1: "max_tokens", 2: "eos", 3: "stop_string", 4: "callback", 5: "context_full"}


class GPTError(Exception):
    """A failure reported by the library.

    status: the gpt_status code (a negative int), status_name: its constant
    name (e.g. "GPT_ERR_IO"), message: the library's explanation.
    """

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = _status_name(self.status)
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


class GPTValueError(GPTError, ValueError):
    """A value the library refuses: a parameter out of range
    (GPT_ERR_INVALID_ARG) or a token id outside the vocabulary
    (GPT_ERR_TOKEN_RANGE). Both a GPTError and a ValueError."""


def _error(status, message):
    """The exception for a status: GPTValueError for a refused value,
    GPTError otherwise."""
    cls = GPTValueError if int(status) in (GPT_ERR_INVALID_ARG, GPT_ERR_TOKEN_RANGE) else GPTError
    return cls(status, message)


# --------------------------------------------------------------------------
# Structures of gpt.h (field for field; tests/test_python.sh checks sizes
# and offsets against a C compiler's)


class _Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 320)]


class _Config(ctypes.Structure):
    _fields_ = [
        ("n_vocab", ctypes.c_int),
        ("n_ctx", ctypes.c_int),
        ("n_embd", ctypes.c_int),
        ("n_head", ctypes.c_int),
        ("n_layer", ctypes.c_int),
        ("ln_eps", ctypes.c_float),
        ("dtype", ctypes.c_int),
        ("n_params", ctypes.c_uint64),
        ("weight_bytes", ctypes.c_uint64),
    ]


class _ContextParams(ctypes.Structure):
    _fields_ = [
        ("n_ctx", ctypes.c_int),
        ("n_batch", ctypes.c_int),
        ("n_threads", ctypes.c_int),
        ("all_logits", ctypes.c_int),
        ("reference_kernels", ctypes.c_int),
        ("kv_type", ctypes.c_int),
        ("n_seq", ctypes.c_int),
        ("kv_size", ctypes.c_int),
    ]


class _GenerateParams(ctypes.Structure):
    _fields_ = [
        ("max_new_tokens", ctypes.c_int),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repetition_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_int),
        ("ignore_eos", ctypes.c_int),
        ("special", ctypes.c_int),
        ("context_policy", ctypes.c_int),
        ("n_sequences", ctypes.c_int),
        ("max_length", ctypes.c_int),
        ("min_new_tokens", ctypes.c_int),
        ("do_sample", ctypes.c_int),
        ("num_beams", ctypes.c_int),
        ("length_penalty", ctypes.c_float),
        ("early_stopping", ctypes.c_int),
        ("no_repeat_ngram_size", ctypes.c_int),
        ("presence_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float),
        ("n_logprobs", ctypes.c_int),
    ]


class _LoadParams(ctypes.Structure):
    _fields_ = [("no_mmap", ctypes.c_int)]


class _GenerateResult(ctypes.Structure):
    _fields_ = [("stop_reason", ctypes.c_int), ("n_prompt_tokens", ctypes.c_int), ("n_generated", ctypes.c_int)]


class _TokenLogprob(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int), ("logprob", ctypes.c_float)]


class _Piece(ctypes.Structure):
    # text is a plain pointer: c_char_p would stop at a NUL byte
    _fields_ = [
        ("seq", ctypes.c_int),
        ("token", ctypes.c_int),
        ("logprob", ctypes.c_float),
        ("text", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("stop_reason", ctypes.c_int),
        ("top", ctypes.POINTER(_TokenLogprob)),
        ("n_top", ctypes.c_int),
        ("tokens", ctypes.POINTER(ctypes.c_int)),
        ("logprobs", ctypes.POINTER(ctypes.c_float)),
        ("n_tokens", ctypes.c_int),
        ("score", ctypes.c_float),
    ]


class _Batch(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int),
        ("tokens", ctypes.POINTER(ctypes.c_int)),
        ("seq", ctypes.POINTER(ctypes.c_int)),
        ("logits", ctypes.POINTER(ctypes.c_ubyte)),
    ]

# --------------------------------------------------------------------------
# Finding and loading the library

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))  # bindings/python/ -> repository


def _library_names():
    if sys.platform == "win32" or os.name == "nt":
        return ["gpt.dll", "libgpt.dll", "libgpt-0.dll"]
    if sys.platform == "darwin":
        return ["libgpt.dylib", "libgpt.0.dylib"]
    return ["libgpt.so", "libgpt.so.0"]


def _installation_dirs():
    """Folders that may be the prefix of an installation this file is part
    of: make install puts it in PREFIX/lib/pythonX.Y/site-packages, next to
    PREFIX/lib/libgpt.so.0 and PREFIX/share/gpt/demo.bin."""
    d = _HERE
    for _ in range(4):
        d = os.path.dirname(d)
        yield d


def _find_library():
    env = os.environ.get("GPT_LIBRARY")
    if env:
        return env
    places = [_HERE, os.path.join(_REPO, "build")]
    for prefix in _installation_dirs():
        places += [os.path.join(prefix, "lib"), os.path.join(prefix, "lib64")]
    for place in places:
        for name in _library_names():
            path = os.path.join(place, name)
            if os.path.isfile(path):
                return path
    found = ctypes.util.find_library("gpt")
    if found:
        return found
    raise OSError(
        "gpt.py: cannot find the gpt shared library: set GPT_LIBRARY to its path, "
        "run `make` in %s (build/%s), or install it (`make install`, `pip install bindings/python`)"
        % (_REPO, _library_names()[0])
    )


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p)]


def _loaded_path(lib, fallback):
    """The file the library was loaded from (find_library gives only a name
    such as "libgpt.so.0"): asked of the dynamic linker where it can say."""
    if os.path.isabs(fallback) or os.name == "nt":
        return fallback
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        if dladdr(ctypes.cast(lib.gpt_version, ctypes.c_void_p), ctypes.byref(info)) and info.dli_fname:
            return os.fsdecode(info.dli_fname)
    except (AttributeError, OSError, TypeError):
        pass
    return fallback


_lib = None
_lib_lock = threading.Lock()
library_path = None  # the path the library was loaded from, once loaded


def _fn(lib, name, restype, argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


def _load():
    """Loads the library on first use and declares every function."""
    global _lib, library_path
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = _find_library()
        lib = ctypes.CDLL(path)  # CDLL: the GIL is released during calls
        c_int, c_size_t, c_char_p, c_void_p = ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p
        P = ctypes.POINTER
        int_p, float_p = P(ctypes.c_int), P(ctypes.c_float)
        _fn(lib, "gpt_version", c_char_p, [])
        _fn(lib, "gpt_status_name", c_char_p, [c_int])
        _fn(lib, "gpt_dtype_name", c_char_p, [c_int])
        _fn(lib, "gpt_model_load", c_void_p, [c_char_p, P(_Error)])
        _fn(lib, "gpt_model_load_ex", c_void_p, [c_char_p, P(_LoadParams), P(_Error)])
        _fn(lib, "gpt_model_free", None, [c_void_p])
        _fn(lib, "gpt_model_config", _Config, [c_void_p])
        _fn(lib, "gpt_model_tokenizer", c_void_p, [c_void_p])
        _fn(lib, "gpt_tokenizer_eot", c_int, [c_void_p])
        _fn(lib, "gpt_token_bytes", c_void_p, [c_void_p, c_int, P(c_size_t)])
        _fn(lib, "gpt_tokenize_ex", c_int, [c_void_p, c_char_p, c_size_t, int_p, c_int, c_int])
        _fn(lib, "gpt_detokenize", c_int, [c_void_p, int_p, c_int, c_void_p, c_size_t])
        _fn(lib, "gpt_context_defaults", _ContextParams, [])
        _fn(lib, "gpt_context_new", c_void_p, [c_void_p, P(_ContextParams), P(_Error)])
        _fn(lib, "gpt_context_free", None, [c_void_p])
        _fn(lib, "gpt_context_error", c_char_p, [c_void_p])
        _fn(lib, "gpt_context_n_ctx", c_int, [c_void_p])
        _fn(lib, "gpt_context_n_seq", c_int, [c_void_p])
        _fn(lib, "gpt_context_n_threads", c_int, [c_void_p])
        _fn(lib, "gpt_context_kv_free", c_int, [c_void_p])
        _fn(lib, "gpt_eval_batch", c_int, [c_void_p, P(_Batch)])
        _fn(lib, "gpt_logits_seq", float_p, [c_void_p, c_int])
        _fn(lib, "gpt_seq_n_past", c_int, [c_void_p, c_int])
        _fn(lib, "gpt_seq_tokens", int_p, [c_void_p, c_int])
        _fn(lib, "gpt_seq_rewind", c_int, [c_void_p, c_int, c_int])
        _fn(lib, "gpt_seq_clear", c_int, [c_void_p, c_int])
        _fn(lib, "gpt_seq_fork", c_int, [c_void_p, c_int, c_int])
        _fn(lib, "gpt_score", c_int, [c_void_p, int_p, c_int, float_p])
        _fn(lib, "gpt_generate_defaults", _GenerateParams, [])
        _fn(lib, "gpt_generate_params_check", c_int, [P(_GenerateParams), P(_Error)])
        _fn(lib, "gpt_generator_new", c_void_p, [c_void_p, c_char_p, P(_GenerateParams), P(_Error)])
        _fn(lib, "gpt_generator_new_ids", c_void_p, [c_void_p, int_p, c_int, int_p, P(_GenerateParams), P(_Error)])
        _fn(lib, "gpt_generator_next", c_int, [c_void_p, P(_Piece)])
        _fn(lib, "gpt_generator_step", c_int, [P(c_void_p), c_int])
        _fn(lib, "gpt_generator_pending", c_int, [c_void_p])
        _fn(lib, "gpt_generator_error", c_char_p, [c_void_p])
        _fn(lib, "gpt_generator_free", None, [c_void_p])
        _lib = lib
        library_path = _loaded_path(lib, path)
        return lib


def _status_name(status):
    try:
        return _load().gpt_status_name(int(status)).decode("ascii", "replace")
    except Exception:  # the library itself may be what failed to load
        return "GPT_STATUS_%d" % status


def _f32(x):
    """The shortest decimal that is the same float32 as x (1e-05, not
    9.999999747378752e-06)."""
    for digits in range(1, 10):
        y = float("%.*g" % (digits, x))
        if ctypes.c_float(y).value == x:
            return y
    return x


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return _text(_load().gpt_version())


def default_model_path():
    """The demo model: next to this file (the pip package), models/demo.bin of
    this repository, share/gpt/demo.bin of the installation the library or
    this file belongs to (make install), or None."""
    candidates = [os.path.join(_HERE, "demo.bin"), os.path.join(_REPO, "models", "demo.bin")]
    try:
        _load()
        libdir = os.path.dirname(os.path.abspath(library_path))
        candidates.append(os.path.join(libdir, "..", "share", "gpt", "demo.bin"))
        candidates.append(os.path.join(libdir, "..", "models", "demo.bin"))
    except OSError:
        pass
    candidates += [os.path.join(d, "share", "gpt", "demo.bin") for d in _installation_dirs()]
    candidates.append(os.path.join(sys.prefix, "share", "gpt", "demo.bin"))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.normpath(c)
    return None


# --------------------------------------------------------------------------
# Checking arguments before they reach C

def _check_regular_file(path):
    """A checkpoint must be a regular file: opening a FIFO would block and a
    device would never end. A path that does not exist is left to the
    library, whose message says so."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a special file")
        raise GPTError(GPT_ERR_IO, "%s is %s, not a regular file" % (path, kind))


_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1
_U64_MAX = 2 ** 64 - 1


def _int_arg(name, v, lo=_INT_MIN, hi=_INT_MAX):
    """v as a Python int that fits the C type [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s must be an int, not %s" % (name, type(v).__name__))
    v = int(v)
    if not lo <= v <= hi:
        raise OverflowError("%s=%d does not fit its C type (%d .. %d)" % (name, v, lo, hi))
    return v


def _float_arg(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be a number, not %s" % (name, type(v).__name__))
    return float(v)


def _bytes_arg(name, v):
    """str (as UTF-8) or a bytes-like object, as bytes."""
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("%s must be str or bytes, not %s" % (name, type(v).__name__))


def _c_string_arg(name, v):
    """_bytes_arg for what the library reads as a NUL-terminated string."""
    b = _bytes_arg(name, v)
    if b"\0" in b:
        raise ValueError("%s contains a NUL character (at byte %d); the library reads it as a C string, "
                         "which would end there" % (name, b.index(b"\0")))
    return b


# --------------------------------------------------------------------------
# Library objects owned by Python objects

_live_lock = threading.Lock()
_live = {"contexts": 0, "generators": 0}


def _live_add(kind, d):
    with _live_lock:
        _live[kind] += d


def _live_counts():
    """How many contexts and generators of the library are allocated now
    (for the tests: every call and stream frees what it took)."""
    with _live_lock:
        return dict(_live)


class _Context:
    """A gpt_context. It holds its model (Model._enter) until it is closed,
    so a model closed meanwhile is freed after its last context."""

    def __init__(self, model, n_seq=1, n_ctx=0, kv_size=0, n_batch=0, threads=None, kv=None):
        self.ptr = None
        model._enter()
        try:
            p = _lib.gpt_context_defaults()
            p.n_threads = model.threads if threads is None else threads
            p.kv_type = Model._KV_TYPES[model.kv if kv is None else kv]
            p.n_seq = n_seq
            p.n_ctx = n_ctx
            p.kv_size = kv_size
            p.n_batch = n_batch
            err = _Error()
            ptr = _lib.gpt_context_new(model._ptr, ctypes.byref(p), ctypes.byref(err))
            if not ptr:
                raise _error(err.status, _text(err.message))
        except BaseException:
            model._leave()
            raise
        self.model = model
        self.ptr = ptr
        _live_add("contexts", 1)

    def error(self):
        return _text(_lib.gpt_context_error(self.ptr))

    def close(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            _lib.gpt_context_free(ptr)
            _live_add("contexts", -1)
            self.model._leave()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class _Generator:
    """A gpt_generator on a _Context (which it keeps alive)."""

    def __init__(self, ctx, ptr):
        self.ctx = ctx
        self.ptr = ptr
        self.ended_by = None  # why it was closed early by its session
        _live_add("generators", 1)

    def close(self, ended_by=None):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self.ended_by = ended_by
            _lib.gpt_generator_free(ptr)
            _live_add("generators", -1)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()

# One piece as the library gave it, copied out of the gpt_piece (valid only
# until the next call): index is the continuation (beam search: the rank of
# the hypothesis), data its text's bytes, stop the gpt_stop_reason (0 while
# it goes on), top one list of (id, logprob) per token (None without
# logprobs).
_Raw = collections.namedtuple("_Raw", "index data tokens logprobs top stop score")


def _copy_piece(p):
    n = p.n_tokens
    tokens = p.tokens[:n] if n > 0 else []
    logprobs = p.logprobs[:n] if n > 0 else []
    top = None
    k = p.n_top
    if k > 0 and n > 0:
        flat = p.top[:n * k]
        top = [[(t.token, t.logprob) for t in flat[i * k:(i + 1) * k]] for i in range(n)]
    data = ctypes.string_at(p.text, p.len) if p.len else b""
    return _Raw(p.seq, data, tokens, logprobs, top, p.stop_reason, p.score)


def _steps(gen, lock, beam_steps=0):
    """The generator's pieces, one gpt_generator_next call each, on the
    caller's thread. Beam search has its pieces only at its end, which one
    gpt_generator_next would compute in one call: it is stepped a step per
    call (gpt_generator_step) instead, at most beam_steps times, so that
    Ctrl-C stops it between two steps."""
    piece = _Piece()
    while True:
        for _ in range(beam_steps):
            with lock:
                ptr = gen.ptr
                if not ptr or _lib.gpt_generator_pending(ptr) > 0:
                    break
                arr = (ctypes.c_void_p * 1)(ptr)
                st = _lib.gpt_generator_step(arr, 1)
                if st != GPT_OK:
                    raise _error(st, _text(_lib.gpt_generator_error(ptr)))
        with lock:
            ptr = gen.ptr
            if not ptr:
                raise GPTError(GPT_ERR_CANCELLED, "this generation was ended: %s" % (gen.ended_by or "it was closed"))
            rc = _lib.gpt_generator_next(ptr, ctypes.byref(piece))
            if rc < 0:
                raise _error(rc, _text(_lib.gpt_generator_error(ptr)))
            if rc == 0:
                return
            raw = _copy_piece(piece)
        beam_steps = 0  # a beam search has ended when it has pieces
        yield raw


def _checked(raws, no_room):
    """raws, raising GPT_ERR_CONTEXT_FULL when a continuation ends for a full
    context before it has a single token: the prompt left no room (a window
    that fills after some text is a normal end, stop_reason
    "context_full")."""
    started = set()
    for r in raws:
        if r.tokens:
            started.add(r.index)
        elif r.stop == GPT_STOP_CONTEXT_FULL and r.index not in started:
            raise GPTError(GPT_ERR_CONTEXT_FULL, no_room())
        yield r


# --------------------------------------------------------------------------
# Results


class TokenLogprob(collections.namedtuple("TokenLogprob", "token text logprob top bytes")):
    """One generated token: its id, its text (bytes that are not whole UTF-8
    characters become U+FFFD; bytes has them exactly), its log-probability
    under the model (natural log of the softmax of the raw logits) and the
    most likely alternatives at its step as [(id, logprob), ...], most
    likely first (logprobs=N of them)."""

    __slots__ = ()


class Generation(collections.namedtuple("Generation", "text bytes tokens stop_reason score logprobs seed index")):
    """One continuation, as generate(..., return_details=True) gives it.

    text: its text (the prompt first with echo=True); bytes: the same as
    bytes; tokens: the ids generated (<|endoftext|> included when it ended
    so); stop_reason: "max_tokens", "eos", "stop_string", "context_full";
    score: beam search's score of the hypothesis (the sum of its
    log-probabilities after the penalties / length ** length_penalty), None
    when sampling; logprobs: a TokenLogprob per token with logprobs=N, else
    None; seed: the seed that generates this continuation alone (seed + index
    when n continuations are sampled); index: which continuation (beam
    search: the hypothesis's rank, best first). str() is the text.
    """

    __slots__ = ()

    def __str__(self):
        return self.text


class Piece(collections.namedtuple("Piece", "index text bytes tokens logprobs stop_reason score")):
    """One step of stream(..., return_details=True): the continuation it
    belongs to, the text it releases (may be empty while a character or a
    possible stop string is held back), the ids it adds, their TokenLogprob
    entries (None without logprobs=N), why the continuation ended (None
    while it goes on) and beam search's score (None when sampling)."""

    __slots__ = ()

    def __str__(self):
        return self.text


# --------------------------------------------------------------------------
# Options of generate() and stream()

# The options that may also be given by position after the prompt, in the
# order of the 0.2 binding; then the keyword-only ones (Hugging Face's
# generate() names, OpenAI's penalties, and the binding's own).
_POSITIONAL_OPTIONS = ("max_new_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                       "repeat_last_n", "seed", "stop", "ignore_eos", "special", "slide")
_KEYWORD_OPTIONS = ("n", "num_return_sequences", "max_length", "min_new_tokens", "do_sample", "num_beams",
                    "length_penalty", "early_stopping", "no_repeat_ngram_size", "repetition_penalty",
                    "presence_penalty", "frequency_penalty", "logprobs", "echo", "return_details")
_OPTION_DEFAULTS = {"ignore_eos": False, "special": False, "slide": False, "echo": False}


def _signature(extra=()):
    """The signature generate() and its kin show to help() and inspect."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("prompt", P.POSITIONAL_OR_KEYWORD, default="")]
    params += [P(n, P.POSITIONAL_OR_KEYWORD, default=_OPTION_DEFAULTS.get(n)) for n in _POSITIONAL_OPTIONS]
    params += [P(n, P.KEYWORD_ONLY, default=d) for n, d in extra]
    params += [P(n, P.KEYWORD_ONLY, default=_OPTION_DEFAULTS.get(n)) for n in _KEYWORD_OPTIONS]
    return inspect.Signature(params)


def _gather(fname, args, kwargs):
    """The options of a call as a dict, refusing what Python would refuse
    with an explicit signature."""
    if len(args) > len(_POSITIONAL_OPTIONS):
        raise TypeError("%s() takes at most %d positional arguments after the prompt (%d given)"
                        % (fname, len(_POSITIONAL_OPTIONS), len(args)))
    o = dict(zip(_POSITIONAL_OPTIONS, args))
    for k, v in kwargs.items():
        if k not in _POSITIONAL_OPTIONS and k not in _KEYWORD_OPTIONS:
            raise TypeError("%s() got an unexpected keyword argument %r" % (fname, k))
        if k in o:
            raise TypeError("%s() got multiple values for argument %r" % (fname, k))
        o[k] = v
    return o


def _bool_arg(name, v):
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):  # numpy.bool_ and friends
        return bool(v)
    raise TypeError("%s must be True or False, not %r" % (name, v))


def _seed_arg(seed):
    """The seed as an int in 0 .. 2**64 - 1: None is the library's default
    (42), -1 draws one from os.urandom."""
    if seed is None:
        return None
    if not isinstance(seed, bool) and isinstance(seed, numbers.Integral) and seed < 0:
        if seed == -1:
            return int.from_bytes(os.urandom(8), "little")
        raise ValueError("seed must be in 0 .. 2**64 - 1, or -1 for a random seed, not %d" % seed)
    return _int_arg("seed", seed, 0, _U64_MAX)


class _Options:
    """gpt_generate_params from generate()'s options, checked for type and
    C range here and for meaning by gpt_generate_params_check, and what the
    binding does with the result."""

    def __init__(self, o):
        get = o.get
        p = _lib.gpt_generate_defaults()
        self.keep = []  # what p points into
        # lengths, with Hugging Face's precedence: max_new_tokens wins over max_length
        max_new, max_len = get("max_new_tokens"), get("max_length")
        if max_new is not None:
            p.max_new_tokens = _int_arg("max_new_tokens", max_new)
        elif max_len is not None:
            p.max_new_tokens = -1
        if max_len is not None:
            p.max_length = _int_arg("max_length", max_len)  # checked, then 0 when max_new_tokens wins
        for name, field in (("temperature", "temperature"), ("top_p", "top_p"), ("min_p", "min_p"),
                            ("length_penalty", "length_penalty"), ("presence_penalty", "presence_penalty"),
                            ("frequency_penalty", "frequency_penalty")):
            if get(name) is not None:
                setattr(p, field, _float_arg(name, get(name)))
        for name in ("top_k", "repeat_last_n", "min_new_tokens", "num_beams", "no_repeat_ngram_size"):
            if get(name) is not None:
                setattr(p, name, _int_arg(name, get(name)))
        penalty = None
        for name in ("repeat_penalty", "repetition_penalty"):  # the CLI's name and Hugging Face's
            if get(name) is not None:
                v = _float_arg(name, get(name))
                if penalty is not None and v != penalty:
                    raise GPTValueError(GPT_ERR_INVALID_ARG, "repeat_penalty %g and repetition_penalty %g differ; "
                                        "they are one option: give one" % (penalty, v))
                penalty = v
        if penalty is not None:
            p.repetition_penalty = penalty
        n = None
        for name in ("n", "num_return_sequences"):  # OpenAI's name and Hugging Face's
            if get(name) is not None:
                v = _int_arg(name, get(name))
                if n is not None and v != n:
                    raise GPTValueError(GPT_ERR_INVALID_ARG, "n %d and num_return_sequences %d differ; they are one "
                                        "option: give one" % (n, v))
                n = v
        self.as_list = n is not None  # n given: a list even for n=1
        p.n_sequences = 1 if n is None else n
        do_sample = get("do_sample")
        if do_sample is not None:
            p.do_sample = 1 if _bool_arg("do_sample", do_sample) else 0
        es = get("early_stopping")
        if es is not None:
            if isinstance(es, str):
                if es != "never":
                    raise GPTValueError(GPT_ERR_INVALID_ARG, "early_stopping must be True, False or \"never\", not "
                                        "%r" % es)
                p.early_stopping = 2
            else:
                p.early_stopping = 1 if _bool_arg("early_stopping", es) else 0
        lp = get("logprobs")
        if lp is not None:
            p.n_logprobs = _int_arg("logprobs", lp)
        self.logprobs = lp is not None
        seed = _seed_arg(get("seed"))
        if seed is not None:
            p.seed = seed
        self.seed = p.seed
        p.ignore_eos = 1 if get("ignore_eos") else 0
        p.special = 1 if get("special") else 0
        p.context_policy = GPT_CONTEXT_SLIDE if get("slide") else GPT_CONTEXT_STOP
        stop = get("stop")
        if stop is not None:
            if isinstance(stop, (str, bytes, bytearray, memoryview)):
                stop = [stop]
            elif not isinstance(stop, (list, tuple)):
                raise TypeError("stop must be a string or a list of strings, not %s" % type(stop).__name__)
            enc = [_c_string_arg("stop string", s) for s in stop]
            if any(len(s) == 0 for s in enc):
                raise ValueError("a stop string is empty")
            if enc:
                arr = (ctypes.c_char_p * len(enc))(*enc)
                self.keep = [enc, arr]
                p.stop = arr
                p.n_stop = len(enc)
        self.echo = bool(get("echo"))
        details = get("return_details")
        if details is not None:
            details = _bool_arg("return_details", details)
            if not details and self.logprobs:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "logprobs are returned with the details: "
                                    "return_details=False cannot carry them")
        self.details = self.logprobs if details is None else details
        err = _Error()
        st = _lib.gpt_generate_params_check(ctypes.byref(p), ctypes.byref(err))
        if st != GPT_OK:
            raise _error(st, _text(err.message))
        if p.num_beams > 1 and (p.n_stop > 0 or p.context_policy == GPT_CONTEXT_SLIDE):
            # gpt_generator_new refuses these too; said here, when the call is made
            raise GPTValueError(GPT_ERR_INVALID_ARG, "stop strings are not supported with beam search"
                                if p.n_stop > 0 else "beam search cannot slide the context window (slide=True)")
        if max_new is not None:
            p.max_length = 0
        self.params = p
        self.n = p.n_sequences
        self.beams = p.num_beams > 1
        self.n_streams = p.num_beams if self.beams else p.n_sequences  # sequences the generation uses
        self.sampling = not self.beams and (p.do_sample == 1 or (p.do_sample == -1 and p.temperature > 0))

    def seed_of(self, index):
        return (self.seed + index) % (_U64_MAX + 1) if self.sampling else self.seed


def _collect(model, raws, opts, echo):
    """Every continuation of a generation as a Generation, in order."""
    acc = {}
    try:
        for r in raws:
            a = acc.get(r.index)
            if a is None:
                a = acc[r.index] = {"data": [], "tokens": [], "logprobs": [], "top": [], "stop": 0, "score": None}
            a["data"].append(r.data)
            a["tokens"] += r.tokens
            a["logprobs"] += r.logprobs
            a["top"] += r.top if r.top is not None else [[] for _ in r.tokens]
            if r.stop:
                a["stop"] = r.stop
            if opts.beams:
                a["score"] = r.score
    finally:
        raws.close()
    out = []
    for i in sorted(acc):
        a = acc[i]
        data = b"".join(a["data"])
        if opts.echo:
            data = echo + data
        lps = None
        if opts.logprobs:
            lps = [model._token_logprob(t, lp, top) for t, lp, top in zip(a["tokens"], a["logprobs"], a["top"])]
        out.append(Generation(data.decode("utf-8", "replace"), data, a["tokens"],
                              STOP_REASONS.get(a["stop"], str(a["stop"])), a["score"], lps, opts.seed_of(i), i))
    return out


def _shape(results, opts, mode):
    """What generate() returns: a string (bytes, Generation), or a list of
    them when n was given."""
    if mode == "text":
        results = [g.text for g in results]
    elif mode == "bytes":
        results = [g.bytes for g in results]
    if opts.as_list:
        return results
    return results[0] if results else ("" if mode == "text" else b"" if mode == "bytes" else None)


def _stream(model, raws, opts, echo, mode):
    """What stream() yields: text pieces (bytes, Piece objects); (index,
    piece) pairs when n was given. Empty pieces are skipped except as
    Pieces."""
    try:
        if opts.echo and echo:
            for i in range(opts.n if opts.as_list else 1):
                if mode == "details":
                    item = Piece(i, echo.decode("utf-8", "replace"), echo, [], None, None, None)
                else:
                    item = echo.decode("utf-8", "replace") if mode == "text" else echo
                yield (i, item) if opts.as_list else item
        for r in raws:
            if mode == "details":
                lps = None
                if opts.logprobs:
                    tops = r.top if r.top is not None else [[] for _ in r.tokens]
                    lps = [model._token_logprob(t, lp, top) for t, lp, top in zip(r.tokens, r.logprobs, tops)]
                item = Piece(r.index, r.data.decode("utf-8", "replace"), r.data, r.tokens, lps,
                             STOP_REASONS.get(r.stop, str(r.stop)) if r.stop else None,
                             r.score if opts.beams else None)
            elif not r.data:
                continue
            else:
                item = r.data.decode("utf-8", "replace") if mode == "text" else r.data
            yield (r.index, item) if opts.as_list else item
    finally:
        raws.close()


_GENERATE_DOC = """
        Options (None: gpt.c's default, as `gpt generate`):
        max_new_tokens (128; -1: no limit), temperature (0.8; 0 = greedy),
        top_k (40; 0 = off), top_p (0.95; 1 = off), min_p (0.05; 0 = off),
        repeat_penalty or repetition_penalty (1.0 = off), repeat_last_n (-1 =
        the whole context), seed (42; the same seed gives the same text; -1:
        a random seed, reported by return_details), stop (a string or a list;
        the text ends before one, which is not returned), ignore_eos,
        special ("<|endoftext|>" in the prompt is the special id), slide
        (when the window is full, drop its older half and go on; otherwise
        generation stops there, and GPTError GPT_ERR_CONTEXT_FULL is raised
        only when the prompt leaves no room for a single token).
        Hugging Face's generate() keywords, with its meanings: max_length
        (positions including the prompt; max_new_tokens wins when both are
        given), min_new_tokens, do_sample (False: greedy or beam search;
        not given: sample unless temperature is 0), num_beams,
        length_penalty, early_stopping (True, False or "never"),
        no_repeat_ngram_size, num_return_sequences or n (that many
        continuations, returned as a list; continuation i samples with seed
        + i). OpenAI's presence_penalty and frequency_penalty (-2 .. 2).
        logprobs=N (0 .. 20): each token's log-probability and its N most
        likely alternatives, in the details. echo: the prompt comes first.
        return_details: Generation objects (text, bytes, tokens,
        stop_reason, score, logprobs, seed, index) instead of strings.
"""
# --------------------------------------------------------------------------
# Model


class Model:
    """A loaded checkpoint.

    Model(path=None, threads=None, kv="auto", mmap=True): path defaults to
    the demo model (default_model_path()); threads is the number of threads
    each call computes with (None or 0: one per CPU, as `gpt -t 0`); kv is how
    each call's KV cache is stored: "auto" (f32 for f32 weights, f16
    otherwise), "f16" or "f32"; mmap=False reads the file into memory instead
    of mapping it (a mapped file that another process truncates kills the
    process with SIGBUS; see docs/SAFETY.md).
    """

    _KV_TYPES = {"auto": 0, "f16": 1, "f32": 2}

    def __init__(self, path=None, threads=None, kv="auto", mmap=True):
        if path is not None and not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError("path must be a str, bytes or os.PathLike, not %s" % type(path).__name__)
        if threads is not None:
            threads = _int_arg("threads", threads)
            if threads < 0:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "threads must be >= 0 (0 or None: one per CPU), not %d"
                                    % threads)
        if not isinstance(kv, str):
            raise TypeError("kv must be a str (\"auto\", \"f16\" or \"f32\"), not %s" % type(kv).__name__)
        if kv not in self._KV_TYPES:
            raise GPTValueError(GPT_ERR_INVALID_ARG, "kv must be \"auto\", \"f16\" or \"f32\", not %r" % (kv,))
        lib = _load()
        if path is None:
            path = default_model_path()
            if path is None:
                raise GPTError(GPT_ERR_IO, "no model path given and the demo model (models/demo.bin) was not found")
        self.path = os.fsdecode(os.fspath(path))
        _check_regular_file(self.path)
        self.threads = threads or 0
        self.kv = kv
        self.mmap = bool(mmap)
        self._lock = threading.Lock()
        self._active = 0
        self._closed = False
        self._ptr = None
        err = _Error()
        params = _LoadParams(no_mmap=0 if self.mmap else 1)
        ptr = lib.gpt_model_load_ex(os.fsencode(self.path), ctypes.byref(params), ctypes.byref(err))
        if not ptr:
            raise GPTError(err.status, _text(err.message))
        self._ptr = ptr
        self._tok = lib.gpt_model_tokenizer(ptr)
        c = lib.gpt_model_config(ptr)
        self.config = {
            "n_vocab": c.n_vocab,
            "n_ctx": c.n_ctx,
            "n_embd": c.n_embd,
            "n_head": c.n_head,
            "n_layer": c.n_layer,
            "ln_eps": _f32(c.ln_eps),
            "dtype": _text(lib.gpt_dtype_name(c.dtype)),
            "n_params": c.n_params,
            "weight_bytes": c.weight_bytes,
        }
        self.eot = lib.gpt_tokenizer_eot(self._tok)
        """Id of <|endoftext|>, or -1."""
        self._token_cache = {}  # id -> its bytes, for log-probabilities

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """Frees the model. Calls still running in other threads finish first
        (the model is freed when the last one returns); new calls raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            free_now = self._active == 0
        if free_now:
            self._free()

    def _free(self):
        ptr, self._ptr = self._ptr, None
        if ptr:
            _lib.gpt_model_free(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass

    def __repr__(self):
        c = self.config if self._ptr else {}
        return "<gpt.Model %r %s>" % (self.path, "closed" if self._closed else
                                       "%d layers, n_embd %d, %s" % (c["n_layer"], c["n_embd"], c["dtype"]))

    def _enter(self):
        with self._lock:
            if self._closed:
                raise GPTError(GPT_ERR_INVALID_ARG, "the model is closed")
            self._active += 1

    def _leave(self):
        with self._lock:
            self._active -= 1
            free_now = self._closed and self._active == 0
        if free_now:
            self._free()

    # -- tokenizer -----------------------------------------------------------

    def tokenize(self, text, special=False):
        """Token ids of text (str, encoded as UTF-8, or bytes). special: the
        text "<|endoftext|>" becomes the end-of-text id."""
        data = _bytes_arg("text", text)
        self._enter()
        try:
            return self._tokenize(data, special)
        finally:
            self._leave()

    def _tokenize(self, data, special):
        """tokenize() for a caller that holds the model (a call or a context)."""
        flags = GPT_TOKENIZE_SPECIAL if special else 0
        n = _lib.gpt_tokenize_ex(self._tok, data, len(data), None, 0, flags)
        while n > 0:
            ids = (ctypes.c_int * n)()
            got = _lib.gpt_tokenize_ex(self._tok, data, len(data), ids, n, flags)
            if got == n:
                return list(ids)
            n = got
        if n < 0:
            raise _error(n, "cannot tokenize %d bytes of text" % len(data))
        return []

    def detokenize_bytes(self, ids):
        """The exact bytes of a list of token ids."""
        ids = [int(i) for i in self._check_ids(list(ids))]
        arr = (ctypes.c_int * len(ids))(*ids)
        self._enter()
        try:
            n = _lib.gpt_detokenize(self._tok, arr, len(ids), None, 0)
            if n < 0:
                bad = [i for i in ids if not 0 <= i < self.config["n_vocab"]]
                raise _error(n, "token id %s is outside [0, %d)" % (bad[0] if bad else "?", self.config["n_vocab"])
                             if n == GPT_ERR_TOKEN_RANGE else "cannot detokenize %d ids" % len(ids))
            buf = ctypes.create_string_buffer(n + 1)
            n = _lib.gpt_detokenize(self._tok, arr, len(ids), buf, n + 1)
            if n < 0:
                raise _error(n, "cannot detokenize %d ids" % len(ids))
            return buf.raw[:n]
        finally:
            self._leave()

    def detokenize(self, ids):
        """The text of a list of token ids; bytes that are not valid UTF-8
        become U+FFFD (use detokenize_bytes for the exact bytes)."""
        return self.detokenize_bytes(ids).decode("utf-8", "replace")

    def _check_ids(self, ids):
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError("token ids must be ints, not %s (%r)" % (type(i).__name__, i))
            if not -(2 ** 31) <= i < 2 ** 31:
                raise GPTValueError(GPT_ERR_TOKEN_RANGE, "token id %d is outside [0, %d)" % (i, self.config["n_vocab"]))
        return ids

    def _token_bytes(self, t):
        b = self._token_cache.get(t)
        if b is None:
            n = ctypes.c_size_t()
            ptr = _lib.gpt_token_bytes(self._tok, t, ctypes.byref(n))
            b = ctypes.string_at(ptr, n.value) if ptr else b""
            self._token_cache[t] = b
        return b

    def _token_logprob(self, t, logprob, top):
        b = self._token_bytes(t)
        return TokenLogprob(t, b.decode("utf-8", "replace"), logprob, top, b)

    # -- scoring ---------------------------------------------------------------

    def score(self, ids):
        """Log-probabilities (natural log) of ids[1:], each given the ids
        before it: a list of len(ids) - 1 floats. Sequences longer than the
        context are scored in sliding windows (see gpt_score in gpt.h)."""
        ids = [int(i) for i in self._check_ids(list(ids))]
        if len(ids) < 2:
            return []
        arr = (ctypes.c_int * len(ids))(*ids)
        out = (ctypes.c_float * (len(ids) - 1))()
        ctx = _Context(self)
        try:
            st = _lib.gpt_score(ctx.ptr, arr, len(ids), out)
            if st != GPT_OK:
                raise _error(st, ctx.error())
        finally:
            ctx.close()
        return list(out)

    # -- generation --------------------------------------------------------------

    def _options(self, fname, args, kwargs):
        return _Options(_gather(fname, args, kwargs))

    def _run(self, prompt, opts):
        """The raw pieces of a generation on a context of its own (n_seq: one
        sequence per continuation or beam), stepped on the caller's thread.
        Nothing happens before the first next()."""
        ctx = _Context(self, n_seq=opts.n_streams)
        try:
            err = _Error()
            ptr = _lib.gpt_generator_new(ctx.ptr, prompt, ctypes.byref(opts.params), ctypes.byref(err))
            if not ptr:
                raise _error(err.status, _text(err.message))
            gen = _Generator(ctx, ptr)
            try:
                n_ctx = _lib.gpt_context_n_ctx(ctx.ptr)
                raws = _checked(_steps(gen, _NO_LOCK, n_ctx + 2 if opts.beams else 0), lambda: "the prompt leaves no room for a new token: all %d "
                                "positions of the context are in use" % n_ctx)
                try:
                    for r in raws:
                        yield r
                finally:
                    raws.close()
            finally:
                gen.close()
        finally:
            ctx.close()

    def _begin(self, fname, prompt, args, kwargs):
        opts = self._options(fname, args, kwargs)
        data = _c_string_arg("the prompt", prompt)
        if self._closed:
            raise GPTError(GPT_ERR_INVALID_ARG, "the model is closed")
        return opts, data

    def generate(self, prompt="", *args, **kwargs):
        """Continues prompt and returns the new text (without the prompt,
        unless echo=True); a list of n strings with n (or
        num_return_sequences); Generation objects with return_details=True
        or logprobs=N.
        """
        opts, data = self._begin("generate", prompt, args, kwargs)
        results = _collect(self, self._run(data, opts), opts, data)
        return _shape(results, opts, "details" if opts.details else "text")

    def generate_bytes(self, prompt="", *args, **kwargs):
        """Like generate(), with bytes instead of strings."""
        opts, data = self._begin("generate_bytes", prompt, args, kwargs)
        results = _collect(self, self._run(data, opts), opts, data)
        return _shape(results, opts, "details" if opts.details else "bytes")

    def stream(self, prompt="", *args, **kwargs):
        """Continues prompt and yields the new text piece by piece, as the
        model produces it: whole characters, never part of a stop string.
        With n (or num_return_sequences), (index, text) pairs; with
        return_details=True or logprobs=N, Piece objects. Each next() is one
        step of the library's generator on the calling thread (no thread is
        started); nothing starts before the first next(). Leaving the loop
        early (break, an exception, Ctrl-C, closing the generator) stops the
        generation and frees its context. Options as for generate().
        """
        opts, data = self._begin("stream", prompt, args, kwargs)
        return _stream(self, self._run(data, opts), opts, data, "details" if opts.details else "text")

    def stream_bytes(self, prompt="", *args, **kwargs):
        """Like stream(), yielding the exact bytes of each piece."""
        opts, data = self._begin("stream_bytes", prompt, args, kwargs)
        return _stream(self, self._run(data, opts), opts, data, "details" if opts.details else "bytes")

    # -- sessions ----------------------------------------------------------------

    def session(self, n_seq=1, n_ctx=None, kv_size=None, n_batch=None, threads=None, kv=None):
        """A Session: a context of this model kept across calls (see
        Session)."""
        return Session(self, n_seq=n_seq, n_ctx=n_ctx, kv_size=kv_size, n_batch=n_batch, threads=threads, kv=kv)


for _name in ("generate", "generate_bytes", "stream", "stream_bytes"):
    _f = getattr(Model, _name)
    _f.__signature__ = _signature()
    _f.__doc__ += _GENERATE_DOC


# --------------------------------------------------------------------------
# Session


def _common_prefix(a, b):
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Session:
    """A context of a model kept across calls: its sequences, their KV cache
    and their last logits. What a session has evaluated is never evaluated
    again: generate() and stream() continue from what the sequence holds,
    appending only the new prompt, so a multi-turn loop costs only its new
    tokens.

    Session(model, n_seq=1, n_ctx=None, kv_size=None, n_batch=None,
    threads=None, kv=None), or model.session(...): n_seq sequences (0 ..
    n_seq-1, each with its own positions), n_ctx positions each (None: the
    model's), kv_size positions of KV cache shared by all (None: every
    sequence can fill its window), n_batch (None: 512), threads and kv (None:
    the model's). Close it (or use `with`) to free the context; the model is
    kept until then.

    Every method that takes seq= works on that sequence (default 0); the
    properties n_past, tokens and logits are sequence 0's, and
    session.sequence(i) gives the same for sequence i. A session is used by
    one thread at a time (calls from several threads are serialized).

    A stream() holds its sequences while it is suspended between pieces;
    calling another method that changes the session (eval, eval_batch,
    rewind, clear, fork, generate, stream, close) ends it first, keeping what
    it generated, and its next() then raises GPTError GPT_ERR_CANCELLED.
    """

    def __init__(self, model, n_seq=1, n_ctx=None, kv_size=None, n_batch=None, threads=None, kv=None):
        self._ctx = None
        self._gen = None
        if not isinstance(model, Model):
            raise TypeError("model must be a gpt.Model, not %s" % type(model).__name__)
        n_seq = _int_arg("n_seq", n_seq)
        n_ctx = 0 if n_ctx is None else _int_arg("n_ctx", n_ctx)
        kv_size = 0 if kv_size is None else _int_arg("kv_size", kv_size)
        n_batch = 0 if n_batch is None else _int_arg("n_batch", n_batch)
        for name, v in (("n_seq", n_seq), ("n_ctx", n_ctx), ("kv_size", kv_size), ("n_batch", n_batch)):
            if v < (1 if name == "n_seq" else 0):
                raise GPTValueError(GPT_ERR_INVALID_ARG, "%s %d is %s" % (name, v, "below 1" if name == "n_seq" else
                                                                         "negative (None or 0: the default)"))
        if threads is not None:
            threads = _int_arg("threads", threads)
            if threads < 0:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "threads must be >= 0 (0: one per CPU), not %d" % threads)
        if kv is not None:
            if not isinstance(kv, str):
                raise TypeError("kv must be a str (\"auto\", \"f16\" or \"f32\"), not %s" % type(kv).__name__)
            if kv not in Model._KV_TYPES:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "kv must be \"auto\", \"f16\" or \"f32\", not %r" % (kv,))
        self._lock = threading.RLock()
        self.model = model
        self._ctx = _Context(model, n_seq=n_seq, n_ctx=n_ctx, kv_size=kv_size, n_batch=n_batch, threads=threads,
                             kv=kv)
        ptr = self._ctx.ptr
        self.n_seq = _lib.gpt_context_n_seq(ptr)
        """Sequences the session holds."""
        self.n_ctx = _lib.gpt_context_n_ctx(ptr)
        """Positions each sequence can hold."""
        self.threads = _lib.gpt_context_n_threads(ptr)
        """Threads the context computes with."""

    # -- lifetime ----------------------------------------------------------------

    def close(self):
        """Ends a suspended stream and frees the context. Twice is fine."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            self._end_stream("its session was closed")
            if self._ctx is not None:
                self._ctx.close()

    @property
    def closed(self):
        return self._ctx is None or not self._ctx.ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self.closed:
            return "<gpt.Session closed>"
        return "<gpt.Session %d sequence%s, n_ctx %d, n_past %s>" % (
            self.n_seq, "" if self.n_seq == 1 else "s", self.n_ctx,
            [self.sequence(i).n_past for i in range(min(self.n_seq, 8))] if self.n_seq > 1 else self.n_past)

    def _ptr(self):
        ctx = self._ctx
        if ctx is None or not ctx.ptr:
            raise GPTError(GPT_ERR_INVALID_ARG, "the session is closed")
        return ctx.ptr

    def _fail(self, st):
        raise _error(st, self._ctx.error())

    def _seq_arg(self, seq, name="seq"):
        seq = _int_arg(name, seq)
        if not 0 <= seq < self.n_seq:
            raise GPTValueError(GPT_ERR_INVALID_ARG, "%s %d is outside 0 .. %d (the session holds %d sequence%s)"
                                % (name, seq, self.n_seq - 1, self.n_seq, "" if self.n_seq == 1 else "s"))
        return seq

    def _end_stream(self, why):
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.close(ended_by=why)

    def _ids(self, ids, special=False):
        """Token ids from a list of ids or a text (tokenized)."""
        if isinstance(ids, (str, bytes, bytearray, memoryview)):
            return self.model._tokenize(_bytes_arg("text", ids), special)
        try:
            ids = list(ids)
        except TypeError:
            raise TypeError("ids must be a list of token ids or a text, not %s" % type(ids).__name__)
        return [int(i) for i in self.model._check_ids(ids)]

    # -- the sequences' state -------------------------------------------------------

    def sequence(self, seq):
        """A view of sequence seq: n_past, tokens and logits, and the
        methods of the session for that sequence."""
        return Sequence(self, self._seq_arg(seq))

    def _n_past(self, seq):
        with self._lock:
            return _lib.gpt_seq_n_past(self._ptr(), seq)

    def _tokens(self, seq):
        with self._lock:
            ptr = self._ptr()
            n = _lib.gpt_seq_n_past(ptr, seq)
            return _lib.gpt_seq_tokens(ptr, seq)[:n] if n > 0 else []

    def _logits(self, seq):
        with self._lock:
            ptr = _lib.gpt_logits_seq(self._ptr(), seq)
            if not ptr:
                return None
            V = self.model.config["n_vocab"]
            if _np is not None:
                return _np.ctypeslib.as_array(ptr, shape=(V,)).copy()
            return ptr[:V]

    @property
    def n_past(self):
        """Positions sequence 0 holds."""
        return self._n_past(0)

    @property
    def tokens(self):
        """The ids sequence 0 holds (n_past of them)."""
        return self._tokens(0)

    @property
    def logits(self):
        """The n_vocab logits after the last id sequence 0 evaluated: a numpy
        array (float32) when numpy is installed, else a list of floats; None
        before any and after a rewind."""
        return self._logits(0)

    @property
    def kv_free(self):
        """Positions of KV cache no sequence uses."""
        with self._lock:
            return _lib.gpt_context_kv_free(self._ptr())

    # -- evaluating ---------------------------------------------------------------------

    def _eval_entries(self, tokens, seqs):
        n = len(tokens)
        b = _Batch()
        b.n = n
        b.tokens = (ctypes.c_int * n)(*tokens)
        b.seq = (ctypes.c_int * n)(*seqs)
        b.logits = None
        st = _lib.gpt_eval_batch(self._ptr(), ctypes.byref(b))
        if st != GPT_OK:
            self._fail(st)

    def eval(self, ids, seq=0):
        """Appends ids (token ids, or a text, tokenized) to sequence seq and
        runs them through the model in one call; logits is then the
        distribution after the last. On failure nothing is appended
        (GPT_ERR_CONTEXT_FULL, GPT_ERR_TOKEN_RANGE, ...)."""
        seq = self._seq_arg(seq)
        ids = self._ids(ids)
        with self._lock:
            self._end_stream("eval() was called on its session")
            self._eval_entries(ids, [seq] * len(ids))

    def eval_batch(self, batch):
        """Appends ids to several sequences in one call (gpt_eval_batch:
        each weight is read once for all of them). batch: a dict {seq: ids}
        or a list of (seq, ids) pairs (ids: token ids or a text); a sequence
        may appear more than once (its ids are appended in order).
        Afterwards each sequence's logits are those after its last id. On
        failure nothing is appended to any sequence."""
        items = batch.items() if isinstance(batch, dict) else batch
        tokens, seqs = [], []
        for item in items:
            try:
                seq, ids = item
            except (TypeError, ValueError):
                raise TypeError("eval_batch takes a dict {seq: ids} or a list of (seq, ids) pairs, not %r" % (item,))
            seq = self._seq_arg(seq)
            ids = self._ids(ids)
            tokens += ids
            seqs += [seq] * len(ids)
        with self._lock:
            self._end_stream("eval_batch() was called on its session")
            self._eval_entries(tokens, seqs)

    def rewind(self, n_keep, seq=0):
        """Keeps the first n_keep positions of sequence seq and drops the
        rest (its logits too, until the next eval)."""
        seq = self._seq_arg(seq)
        n_keep = _int_arg("n_keep", n_keep)
        with self._lock:
            self._end_stream("rewind() was called on its session")
            st = _lib.gpt_seq_rewind(self._ptr(), seq, n_keep)
            if st != GPT_OK:
                self._fail(st)

    def clear(self, seq=None):
        """Empties sequence seq, or every sequence (None)."""
        seqs = range(self.n_seq) if seq is None else [self._seq_arg(seq)]
        with self._lock:
            self._end_stream("clear() was called on its session")
            ptr = self._ptr()
            for s in seqs:
                st = _lib.gpt_seq_clear(ptr, s)
                if st != GPT_OK:
                    self._fail(st)

    def fork(self, src, dst):
        """Makes sequence dst a copy of sequence src: its ids, its cache
        (shared until one of them writes) and its logits. What dst held is
        dropped."""
        src = self._seq_arg(src, "src")
        dst = self._seq_arg(dst, "dst")
        with self._lock:
            self._end_stream("fork() was called on its session")
            st = _lib.gpt_seq_fork(self._ptr(), src, dst)
            if st != GPT_OK:
                self._fail(st)

    # -- generating ---------------------------------------------------------------------

    def _begin(self, fname, prompt, args, kwargs, seq, seqs):
        opts = _Options(_gather(fname, args, kwargs))
        seq = self._seq_arg(seq)
        if seqs is None:
            seqs = [seq + k for k in range(opts.n_streams)]
        else:
            if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__iter__"):
                raise TypeError("seqs must be a list of sequence numbers, not %s" % type(seqs).__name__)
            seqs = list(seqs)
            if seq != 0 and seqs and seqs[0] != seq:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "seq %d is not seqs[0] %r: the prompt goes to seqs[0]"
                                    % (seq, seqs[0]))
            if len(seqs) != opts.n_streams:
                raise GPTValueError(GPT_ERR_INVALID_ARG, "seqs has %d sequences; the generation uses %d (n, or "
                                    "num_beams with beam search)" % (len(seqs), opts.n_streams))
        seqs = [self._seq_arg(s, "seqs[%d]" % i) for i, s in enumerate(seqs)]
        if len(set(seqs)) != len(seqs):
            raise GPTValueError(GPT_ERR_INVALID_ARG, "seqs %r names a sequence twice" % (seqs,))
        if isinstance(prompt, (str, bytes, bytearray, memoryview)):
            echo = _bytes_arg("the prompt", prompt)
            ids = None  # tokenized when the generation starts
        else:
            ids = self._ids(prompt)
            echo = None
        self._ptr()
        return opts, (echo, ids), seqs

    def _run(self, prompt, opts, seqs):
        """The raw pieces of a generation that continues sequence seqs[0]
        (its prompt appended first) on seqs, stepped on the caller's thread.
        Nothing happens before the first next()."""
        text, ids = prompt
        if ids is None:
            ids = self.model._tokenize(text, bool(opts.params.special))
        with self._lock:
            self._end_stream("another generation started on its session")
            ptr = self._ptr()
            n_before = _lib.gpt_seq_n_past(ptr, seqs[0])
            arr = (ctypes.c_int * max(len(ids), 1))(*ids)
            sarr = (ctypes.c_int * len(seqs))(*seqs)
            err = _Error()
            g = _lib.gpt_generator_new_ids(ptr, arr, len(ids), sarr, ctypes.byref(opts.params), ctypes.byref(err))
            if not g:
                raise _error(err.status, _text(err.message))
            gen = self._gen = _Generator(self._ctx, g)
        base = n_before + len(ids) if (ids or n_before > 0) else 1  # where the continuations start
        hyps = {}
        done = False
        try:
            raws = _checked(_steps(gen, self._lock, self.n_ctx + 2 if opts.beams else 0), lambda: "sequence %d holds all %d positions: no room for a new "
                            "token (rewind it, or slide=True)" % (seqs[0], self.n_ctx))
            try:
                for r in raws:
                    if opts.beams:
                        hyps[r.index] = (r.tokens, r.stop)
                    yield r
                done = True
            finally:
                raws.close()
        finally:
            with self._lock:
                gen.close()
                if self._gen is gen:
                    self._gen = None
        if done and opts.beams:
            with self._lock:
                self._place_hypotheses(seqs, base, hyps)

    def _place_hypotheses(self, seqs, base, hyps):
        """After beam search, sequence seqs[k] holds the history and
        hypothesis k (without a final <|endoftext|>), as after sampling:
        from the beam whose ids share the longest prefix with it, evaluating
        only the rest."""
        ptr = self._ptr()
        for k in sorted(hyps):
            if k >= len(seqs):
                break
            toks, stop = hyps[k]
            if toks and stop == GPT_STOP_EOS and toks[-1] == self.model.eot:
                toks = toks[:-1]
            target = seqs[k]
            cur = self._tokens(target)
            full = cur[:base] + list(toks)
            best, best_n = target, _common_prefix(cur, full)
            for j in seqs:
                if j != target:
                    c = _common_prefix(self._tokens(j), full)
                    if c > best_n:
                        best, best_n = j, c
            if best != target:
                st = _lib.gpt_seq_fork(ptr, best, target)
                if st != GPT_OK:
                    self._fail(st)
                cur = self._tokens(target)
            if best_n == len(full) == len(cur) and _lib.gpt_logits_seq(ptr, target):
                continue
            keep = best_n if best_n < len(full) else len(full) - 1  # something to evaluate, for the logits
            st = _lib.gpt_seq_rewind(ptr, target, keep)
            if st != GPT_OK:
                self._fail(st)
            self._eval_entries(full[keep:], [target] * (len(full) - keep))

    def _echo(self, prompt):
        text, ids = prompt
        return text if text is not None else self.model.detokenize_bytes(ids)

    def generate(self, prompt="", *args, seq=0, seqs=None, **kwargs):
        """Appends prompt (a text, or token ids) to sequence seq and
        continues it; returns what Model.generate() returns. The sequence
        keeps the prompt and the generated ids (not a final <|endoftext|>;
        the ids of a stop string are kept, its text is not returned), so the
        next call continues from there. With n continuations (or num_beams),
        they use sequences seqs (default seq, seq+1, ...), whose content is
        replaced: seqs[k] then holds the history and continuation k (beam
        search: hypothesis k, once the search has run to its end).
        """
        opts, prompt, seqs = self._begin("generate", prompt, args, kwargs, seq, seqs)
        results = _collect(self.model, self._run(prompt, opts, seqs), opts, self._echo(prompt))
        return _shape(results, opts, "details" if opts.details else "text")

    def generate_bytes(self, prompt="", *args, seq=0, seqs=None, **kwargs):
        """Like generate(), with bytes instead of strings."""
        opts, prompt, seqs = self._begin("generate_bytes", prompt, args, kwargs, seq, seqs)
        results = _collect(self.model, self._run(prompt, opts, seqs), opts, self._echo(prompt))
        return _shape(results, opts, "details" if opts.details else "bytes")

    def stream(self, prompt="", *args, seq=0, seqs=None, **kwargs):
        """Like generate(), yielding the text as Model.stream() does. Each
        next() is one step of the library's generator on the calling thread;
        leaving the loop early keeps what was generated so far in the
        sequence."""
        opts, prompt, seqs = self._begin("stream", prompt, args, kwargs, seq, seqs)
        return _stream(self.model, self._run(prompt, opts, seqs), opts, self._echo(prompt),
                       "details" if opts.details else "text")

    def stream_bytes(self, prompt="", *args, seq=0, seqs=None, **kwargs):
        """Like stream(), yielding bytes."""
        opts, prompt, seqs = self._begin("stream_bytes", prompt, args, kwargs, seq, seqs)
        return _stream(self.model, self._run(prompt, opts, seqs), opts, self._echo(prompt),
                       "details" if opts.details else "bytes")


for _name in ("generate", "generate_bytes", "stream", "stream_bytes"):
    _f = getattr(Session, _name)
    _f.__signature__ = _signature(extra=(("seq", 0), ("seqs", None)))
    _f.__doc__ += _GENERATE_DOC


class Sequence:
    """Sequence index of a session (session.sequence(i)): its n_past, tokens
    and logits, and the session's methods for it."""

    def __init__(self, session, index):
        self.session = session
        self.index = index

    def __repr__(self):
        return "<gpt.Sequence %d of %r>" % (self.index, self.session)

    @property
    def n_past(self):
        """Positions the sequence holds."""
        return self.session._n_past(self.index)

    @property
    def tokens(self):
        """The ids the sequence holds."""
        return self.session._tokens(self.index)

    @property
    def logits(self):
        """Its logits after its last evaluated id (see Session.logits)."""
        return self.session._logits(self.index)

    def eval(self, ids):
        return self.session.eval(ids, seq=self.index)

    def rewind(self, n_keep):
        return self.session.rewind(n_keep, seq=self.index)

    def clear(self):
        return self.session.clear(seq=self.index)

    def generate(self, prompt="", *args, **kwargs):
        return self.session.generate(prompt, *args, seq=self.index, **kwargs)

    def generate_bytes(self, prompt="", *args, **kwargs):
        return self.session.generate_bytes(prompt, *args, seq=self.index, **kwargs)

    def stream(self, prompt="", *args, **kwargs):
        return self.session.stream(prompt, *args, seq=self.index, **kwargs)

    def stream_bytes(self, prompt="", *args, **kwargs):
        return self.session.stream_bytes(prompt, *args, seq=self.index, **kwargs)
