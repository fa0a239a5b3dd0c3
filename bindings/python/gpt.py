"""gpt.py - Python binding of gpt.c (ctypes; standard library only).

    import gpt
    with gpt.Model() as model:                  # the demo model
        print(model.generate("And God said", max_new_tokens=40, seed=1))
        for piece in model.stream("In the beginning", max_new_tokens=40):
            print(piece, end="", flush=True)

The shared library is found through the GPT_LIBRARY environment variable (a
path to libgpt.so / gpt.dll / libgpt.dylib), else next to this file (the
package that `pip install bindings/python` builds), else in the build/ folder
of the repository this file belongs to, else in the lib/ folder of the
installation this file is part of (`make install`), else where the system
keeps libraries (ctypes.util.find_library("gpt")).

Arguments are checked before they reach C: a wrong type raises TypeError, an
integer that does not fit its C type OverflowError (a negative seed
ValueError), a NUL character in a prompt or a stop string ValueError; values
of the right type that the library refuses raise GPTError.

A Model holds one loaded checkpoint, which is immutable: any number of Python
threads may call its methods at once. Every call creates its own context (KV
cache and scratch), and ctypes releases the GIL while the library computes.

MIT licence; see LICENSE.
"""

import atexit
import ctypes
import ctypes.util
import numbers
import os
import queue
import sys
import threading
import weakref

__all__ = ["Model", "GPTError", "version", "library_path", "default_model_path"]

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


# int (*gpt_on_text)(const char *text, size_t len, void *user); the text is
# taken as a plain pointer, because c_char_p would stop at a NUL byte.
_ON_TEXT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)

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
        _fn(lib, "gpt_tokenize_ex", c_int, [c_void_p, c_char_p, c_size_t, int_p, c_int, c_int])
        _fn(lib, "gpt_detokenize", c_int, [c_void_p, int_p, c_int, c_void_p, c_size_t])
        _fn(lib, "gpt_context_defaults", _ContextParams, [])
        _fn(lib, "gpt_context_new", c_void_p, [c_void_p, P(_ContextParams), P(_Error)])
        _fn(lib, "gpt_context_free", None, [c_void_p])
        _fn(lib, "gpt_context_error", c_char_p, [c_void_p])
        _fn(lib, "gpt_score", c_int, [c_void_p, int_p, c_int, float_p])
        _fn(lib, "gpt_generate_defaults", _GenerateParams, [])
        _fn(lib, "gpt_generate_params_check", c_int, [P(_GenerateParams), P(_Error)])
        _fn(lib, "gpt_generate_ex", c_int,
            [c_void_p, c_char_p, P(_GenerateParams), _ON_TEXT, c_void_p, P(_GenerateResult)])
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
# Background generation for stream() (and generate() on the main thread)

_live_streams = weakref.WeakSet()


@atexit.register
def _stop_live_streams():
    """At interpreter exit, ask every unfinished generation to stop and wait
    for it, so that no library call outlives the interpreter."""
    for s in list(_live_streams):
        s.stop()
    for s in list(_live_streams):
        s.join(5.0)


class _Run:
    """One gpt_generate_ex call on a worker thread; its pieces go through a
    bounded queue to the consumer. stop() makes the callback return non-zero,
    which ends generation at the next piece."""

    _DONE = object()

    def __init__(self, model, prompt, params, keep):
        self._model = model
        self._prompt = prompt
        self._params = params
        self._keep = keep  # objects params points into
        self._queue = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self.error = None
        self.result = None
        self._thread = threading.Thread(target=self._work, name="gpt-generate", daemon=True)

    def start(self):
        _live_streams.add(self)
        self._thread.start()

    def stop(self):
        self._stop.set()

    def join(self, timeout=None):
        self._thread.join(timeout)

    def _put(self, item):
        while True:
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _work(self):
        try:
            def on_bytes(b):
                if self._stop.is_set() or not self._put(b):
                    return True
                return self._stop.is_set()

            self.result = self._model._run_generate(self._prompt, self._params, on_bytes)
        except BaseException as e:
            self.error = e
        finally:
            self._put(self._DONE)

    def pieces(self):
        """Yields the generated bytes as they arrive; raises the worker's
        error at the end. Closing the generator or an exception in the
        consumer (KeyboardInterrupt) stops the worker and waits for it."""
        try:
            while True:
                try:
                    # a timeout keeps the wait interruptible by Ctrl-C everywhere
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is self._DONE:
                    break
                yield item
            if self.error is not None:
                raise self.error
        finally:
            self._stop.set()
            while self._thread.is_alive():
                # drain so that a worker blocked on a full queue sees the stop
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            _live_streams.discard(self)


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
                raise GPTError(GPT_ERR_INVALID_ARG, "threads must be >= 0 (0 or None: one per CPU), not %d" % threads)
        if not isinstance(kv, str):
            raise TypeError("kv must be a str (\"auto\", \"f16\" or \"f32\"), not %s" % type(kv).__name__)
        if kv not in self._KV_TYPES:
            raise GPTError(GPT_ERR_INVALID_ARG, "kv must be \"auto\", \"f16\" or \"f32\", not %r" % (kv,))
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

    def _new_context(self):
        """A context of its own for one call; the caller frees it."""
        p = _lib.gpt_context_defaults()
        p.n_threads = self.threads
        p.kv_type = self._KV_TYPES[self.kv]
        err = _Error()
        ctx = _lib.gpt_context_new(self._ptr, ctypes.byref(p), ctypes.byref(err))
        if not ctx:
            raise GPTError(err.status, _text(err.message))
        return ctx

    # -- tokenizer -----------------------------------------------------------

    def tokenize(self, text, special=False):
        """Token ids of text (str, encoded as UTF-8, or bytes). special: the
        text "<|endoftext|>" becomes the end-of-text id."""
        data = _bytes_arg("text", text)
        flags = GPT_TOKENIZE_SPECIAL if special else 0
        self._enter()
        try:
            n = _lib.gpt_tokenize_ex(self._tok, data, len(data), None, 0, flags)
            while n > 0:
                ids = (ctypes.c_int * n)()
                got = _lib.gpt_tokenize_ex(self._tok, data, len(data), ids, n, flags)
                if got == n:
                    return list(ids)
                n = got
            if n < 0:
                raise GPTError(n, "cannot tokenize %d bytes of text" % len(data))
            return []
        finally:
            self._leave()

    def detokenize_bytes(self, ids):
        """The exact bytes of a list of token ids."""
        ids = [int(i) for i in self._check_ids(list(ids))]
        arr = (ctypes.c_int * len(ids))(*ids)
        self._enter()
        try:
            n = _lib.gpt_detokenize(self._tok, arr, len(ids), None, 0)
            if n < 0:
                bad = [i for i in ids if not 0 <= i < self.config["n_vocab"]]
                raise GPTError(n, "token id %s is outside [0, %d)" % (bad[0] if bad else "?", self.config["n_vocab"])
                               if n == GPT_ERR_TOKEN_RANGE else "cannot detokenize %d ids" % len(ids))
            buf = ctypes.create_string_buffer(n + 1)
            n = _lib.gpt_detokenize(self._tok, arr, len(ids), buf, n + 1)
            if n < 0:
                raise GPTError(n, "cannot detokenize %d ids" % len(ids))
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
                raise GPTError(GPT_ERR_TOKEN_RANGE, "token id %d is outside [0, %d)" % (i, self.config["n_vocab"]))
        return ids

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
        self._enter()
        try:
            ctx = self._new_context()
            try:
                st = _lib.gpt_score(ctx, arr, len(ids), out)
                if st != GPT_OK:
                    raise GPTError(st, _text(_lib.gpt_context_error(ctx)))
            finally:
                _lib.gpt_context_free(ctx)
        finally:
            self._leave()
        return list(out)

    # -- generation --------------------------------------------------------------

    def _params(self, max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed,
                stop, ignore_eos, special, slide):
        """gpt_generate_params from the arguments (None: the library's
        default), checked for type and C range here and for meaning by
        gpt_generate_params_check."""
        p = _lib.gpt_generate_defaults()
        if max_new_tokens is not None:
            n = _int_arg("max_new_tokens", max_new_tokens)
            p.max_new_tokens = _INT_MAX if n == -1 else n  # -1: until the context is full, as `gpt -n -1`
        if temperature is not None:
            p.temperature = _float_arg("temperature", temperature)
        if top_k is not None:
            p.top_k = _int_arg("top_k", top_k)
        if top_p is not None:
            p.top_p = _float_arg("top_p", top_p)
        if min_p is not None:
            p.min_p = _float_arg("min_p", min_p)
        if repeat_penalty is not None:
            p.repetition_penalty = _float_arg("repeat_penalty", repeat_penalty)
        if repeat_last_n is not None:
            p.repeat_last_n = _int_arg("repeat_last_n", repeat_last_n)
        if seed is not None:
            if not isinstance(seed, bool) and isinstance(seed, numbers.Integral) and seed < 0:
                raise ValueError("seed must be in 0 .. 2**64 - 1, not %d" % seed)
            p.seed = _int_arg("seed", seed, 0, _U64_MAX)
        p.ignore_eos = 1 if ignore_eos else 0
        p.special = 1 if special else 0
        p.context_policy = GPT_CONTEXT_SLIDE if slide else GPT_CONTEXT_STOP
        keep = []
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
                keep = [enc, arr]
                p.stop = arr
                p.n_stop = len(enc)
        err = _Error()
        st = _lib.gpt_generate_params_check(ctypes.byref(p), ctypes.byref(err))
        if st != GPT_OK:
            raise GPTError(st, _text(err.message))
        return p, keep

    def _run_generate(self, prompt, params, on_bytes):
        """gpt_generate_ex on a fresh context, passing each piece to
        on_bytes(bytes), which returns True to stop; returns the
        gpt_generate_result as a dict. A window that fills up after some text
        was generated is not an error (stop_reason "context_full", like
        "max_tokens"); a prompt that leaves no room for any text is
        (GPT_ERR_CONTEXT_FULL), as for `gpt generate`."""
        delivered = [0]

        def on_text(ptr, n, user):
            try:
                delivered[0] += n
                return 1 if on_bytes(ctypes.string_at(ptr, n)) else 0
            except BaseException:  # never let an exception cross into C
                return 1

        callback = _ON_TEXT(on_text)
        self._enter()
        try:
            ctx = self._new_context()
            try:
                res = _GenerateResult()
                st = _lib.gpt_generate_ex(ctx, prompt, ctypes.byref(params), callback, None, ctypes.byref(res))
                if st != GPT_OK and not (st == GPT_ERR_CONTEXT_FULL and delivered[0] > 0):
                    raise GPTError(st, _text(_lib.gpt_context_error(ctx)))
                return {
                    "stop_reason": STOP_REASONS.get(res.stop_reason, str(res.stop_reason)),
                    "n_prompt_tokens": res.n_prompt_tokens,
                    "n_generated": res.n_generated,
                }
            finally:
                _lib.gpt_context_free(ctx)
        finally:
            self._leave()

    def stream_bytes(self, prompt="", max_new_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
                     repeat_penalty=None, repeat_last_n=None, seed=None, stop=None, ignore_eos=False,
                     special=False, slide=False):
        """Like stream(), yielding the exact bytes of each piece."""
        p, keep = self._params(max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                               seed, stop, ignore_eos, special, slide)
        data = _c_string_arg("the prompt", prompt)
        if self._closed:
            raise GPTError(GPT_ERR_INVALID_ARG, "the model is closed")
        run = _Run(self, data, p, keep)
        run.start()  # on the first next(): a generator never iterated starts nothing
        pieces = run.pieces()
        try:
            for b in pieces:
                yield b
        finally:
            pieces.close()  # stops and joins the worker when the consumer leaves early

    def stream(self, prompt="", max_new_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
               repeat_penalty=None, repeat_last_n=None, seed=None, stop=None, ignore_eos=False, special=False,
               slide=False):
        """Continues prompt and yields the new text piece by piece, as the
        model produces it. Pieces are whole characters (bytes that are not
        valid UTF-8 become U+FFFD). Leaving the loop early (break, an
        exception, KeyboardInterrupt, or closing the generator) stops the
        generation cleanly. Arguments as for generate()."""
        pieces = self.stream_bytes(prompt, max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
                                   repeat_last_n, seed, stop, ignore_eos, special, slide)
        try:
            for b in pieces:
                yield b.decode("utf-8", "replace")
        finally:
            pieces.close()

    def generate_bytes(self, prompt="", max_new_tokens=None, temperature=None, top_k=None, top_p=None,
                       min_p=None, repeat_penalty=None, repeat_last_n=None, seed=None, stop=None, ignore_eos=False,
                       special=False, slide=False):
        """Like generate(), returning the exact bytes."""
        if threading.current_thread() is threading.main_thread():
            # On the main thread the library runs on a worker, so that
            # Ctrl-C (KeyboardInterrupt) interrupts the wait and stops it.
            return b"".join(self.stream_bytes(prompt, max_new_tokens, temperature, top_k, top_p, min_p,
                                              repeat_penalty, repeat_last_n, seed, stop, ignore_eos, special, slide))
        p, keep = self._params(max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                               seed, stop, ignore_eos, special, slide)
        data = _c_string_arg("the prompt", prompt)
        pieces = []

        def on_bytes(b):
            pieces.append(b)
            return False

        self._run_generate(data, p, on_bytes)
        del keep
        return b"".join(pieces)

    def generate(self, prompt="", max_new_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
                 repeat_penalty=None, repeat_last_n=None, seed=None, stop=None, ignore_eos=False, special=False,
                 slide=False):
        """Continues prompt and returns the new text (without the prompt).

        max_new_tokens (default 128), temperature (0.8; 0 = greedy), top_k
        (40; 0 = off), top_p (0.95; 1 = off), min_p (0.05; 0 = off),
        repeat_penalty (1.0 = off), repeat_last_n (-1 = the whole context),
        seed (42; the same seed gives the same text), stop (a string or a
        list of strings; generation ends before one, which is not returned),
        ignore_eos (go on after <|endoftext|>), special ("<|endoftext|>" in
        the prompt is the special id), slide (when the context window is
        full, drop its older half and go on; otherwise generation stops
        there, and GPTError GPT_ERR_CONTEXT_FULL is raised only when the
        prompt leaves no room for a single new token).
        """
        return self.generate_bytes(prompt, max_new_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
                                   repeat_last_n, seed, stop, ignore_eos, special, slide).decode("utf-8", "replace")
