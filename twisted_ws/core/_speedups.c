/*
 * twisted_ws.core._speedups: optional C accelerator for twisted_ws.
 *
 * WebSocket payload masking (RFC 6455 section 5.3) XORs byte i of a payload
 * with key[(i + offset) % 4].  It runs on every byte a client sends, so it is
 * worth doing in C.  twisted_ws.core.masking falls back to a pure-Python
 * implementation when this module is not built, and the two must agree
 * exactly; tests/test_masking.py checks that.  The server's opening
 * handshake parses one HTTP head per connection, and the common case (a
 * whole, well-formed head in one read) is parsed here too; twisted_ws.core.http
 * falls back to its own code likewise, and tests/test_http.py holds the two
 * equal.
 *
 * Functions:
 *
 *   mask(data, key, offset=0) -> bytes
 *       data: any C-contiguous buffer; key: a 4-byte buffer; offset: an int
 *       of which only offset % 4 matters (Python semantics, so negative and
 *       huge values are fine).  Returns a new bytes object.
 *
 *   maskInto(target, key, offset=0) -> None
 *       The same, in place, on a writable C-contiguous buffer.
 *
 *   MessageBuffer(size)
 *       A bytes object of a known size filled piece by piece (write(data,
 *       key=None, offset=0) copies data in, unmasking it on the way), handed
 *       out whole by take().  A large incoming frame is unmasked straight
 *       into the bytes the application receives: no per-read pieces kept
 *       and no join.  The bytes is not visible to Python until take()
 *       finds it full, so its immutability is never observable as broken.
 *
 *   parseHead(data, isRequest, maxLineLength, maxHeaderBytes, maxHeaderCount)
 *       The whole-head fast path of the HTTP/1.1 head parser
 *       (twisted_ws.core.http.HeadParser._parseWhole, which it must match
 *       exactly): the opening handshake's head, parsed in one pass, with
 *       None for anything the Python code has to look at.
 *
 * The kernels read and write with memcpy / unaligned vector loads and stores,
 * so no alignment is assumed anywhere.  On x86 an SSE2 kernel is always used
 * (SSE2 is part of x86-64), and an AVX2 kernel is picked at run time when
 * the CPU and OS support it; elsewhere a portable 64-bit word loop is used,
 * written so that the compiler can auto-vectorise it.
 *
 * Large inputs are processed with the GIL released.  The Py_buffer views of
 * the data, key and target are held for the whole operation, which keeps the
 * exporters (e.g. a bytearray) from resizing or freeing the memory while we
 * are not holding the GIL.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Define TWS_FORCE_PORTABLE to build (and test) the portable kernels on x86. */
#if !defined(TWS_FORCE_PORTABLE) && \
    (defined(__SSE2__) || defined(_M_X64) || \
     (defined(_M_IX86_FP) && _M_IX86_FP >= 2))
#  define TWS_HAVE_SSE2 1
#  include <emmintrin.h>
#endif

/* AVX2 kernel compiled with a per-function target attribute and chosen at
 * run time, so the module works on any x86-64 CPU without -mavx2. */
#if defined(TWS_HAVE_SSE2) && !defined(TWS_NO_AVX2) && \
    (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 5))
#  define TWS_HAVE_AVX2_DISPATCH 1
#  include <immintrin.h>
#endif

/* Inputs at least this large are masked with the GIL released. */
#define TWS_NOGIL_THRESHOLD (64 * 1024)

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */
/*                                                                           */
/* Every kernel XORs n bytes of src into dst with the repeating 4-byte key   */
/* rk (already rotated by the offset, so byte i uses rk[i % 4]).  dst may be */
/* equal to src (in-place masking) but must not otherwise overlap it.        */
/* ------------------------------------------------------------------------ */

static void
mask_tail(unsigned char *dst, const unsigned char *src, size_t n,
          const unsigned char rk[4])
{
    size_t i;
    for (i = 0; i < n; i++) {
        dst[i] = src[i] ^ rk[i & 3];
    }
}

static uint64_t
key_word(const unsigned char rk[4])
{
    unsigned char pattern[8];
    uint64_t word;
    memcpy(pattern, rk, 4);
    memcpy(pattern + 4, rk, 4);
    /* Loading the byte pattern with memcpy (rather than building it with
     * shifts) makes the word match memory order on any endianness. */
    memcpy(&word, pattern, 8);
    return word;
}

#if !defined(TWS_HAVE_SSE2)
/* Portable kernels: one for a fresh output buffer (restrict lets the
 * compiler vectorise without run-time overlap checks), one in place. */
static void
mask_portable_copy(unsigned char *restrict dst,
                   const unsigned char *restrict src, size_t n,
                   const unsigned char rk[4])
{
    const uint64_t word = key_word(rk);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= word;
        memcpy(dst + i, &v, 8);
    }
    mask_tail(dst + i, src + i, n - i, rk);  /* i % 4 == 0: key phase kept */
}

static void
mask_portable_inplace(unsigned char *buf, size_t n, const unsigned char rk[4])
{
    const uint64_t word = key_word(rk);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, buf + i, 8);
        v ^= word;
        memcpy(buf + i, &v, 8);
    }
    mask_tail(buf + i, buf + i, n - i, rk);
}
#endif /* !TWS_HAVE_SSE2 */

#if defined(TWS_HAVE_SSE2)
/* SSE2: 64 bytes per iteration, then 16, then 8, then single bytes.  All
 * chunk sizes are multiples of 4 so the key phase never changes. */
static void
mask_sse2(unsigned char *dst, const unsigned char *src, size_t n,
          const unsigned char rk[4])
{
    uint32_t k32;
    __m128i k;
    size_t i = 0;

    memcpy(&k32, rk, 4);
    k = _mm_set1_epi32((int)k32);

    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
        _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
        _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
    }
    if (i + 8 <= n) {
        const uint64_t word = key_word(rk);
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= word;
        memcpy(dst + i, &v, 8);
        i += 8;
    }
    mask_tail(dst + i, src + i, n - i, rk);
}
#endif /* TWS_HAVE_SSE2 */

#if defined(TWS_HAVE_AVX2_DISPATCH)
/* AVX2: 128 bytes per iteration; the rest goes to the SSE2 kernel. */
__attribute__((target("avx2"))) static void
mask_avx2(unsigned char *dst, const unsigned char *src, size_t n,
          const unsigned char rk[4])
{
    uint32_t k32;
    __m256i k;
    size_t i = 0;

    memcpy(&k32, rk, 4);
    k = _mm256_set1_epi32((int)k32);

    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
    }
    /* Leave AVX state before running SSE code to avoid transition stalls. */
    _mm256_zeroupper();
    mask_sse2(dst + i, src + i, n - i, rk);
}

/* Set once at module exec; the value only ever goes from 0 to the same
 * non-zero answer, so repeated or concurrent initialisation is harmless. */
static int tws_use_avx2 = 0;

static void
detect_cpu(void)
{
#  if defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
#  endif
    /* __builtin_cpu_supports("avx2") also checks that the OS saves the YMM
     * registers (XGETBV), so a true answer means AVX2 is usable. */
    tws_use_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static void
detect_cpu(void)
{
}
#endif /* TWS_HAVE_AVX2_DISPATCH */

/* Below this size the AVX2 kernel has nothing to gain over SSE2. */
#define TWS_AVX2_MIN 128

static void
mask_copy(unsigned char *dst, const unsigned char *src, size_t n,
          const unsigned char rk[4])
{
#if defined(TWS_HAVE_AVX2_DISPATCH)
    if (tws_use_avx2 && n >= TWS_AVX2_MIN) {
        mask_avx2(dst, src, n, rk);
        return;
    }
#endif
#if defined(TWS_HAVE_SSE2)
    mask_sse2(dst, src, n, rk);
#else
    mask_portable_copy(dst, src, n, rk);
#endif
}

static void
mask_inplace(unsigned char *buf, size_t n, const unsigned char rk[4])
{
#if defined(TWS_HAVE_AVX2_DISPATCH)
    if (tws_use_avx2 && n >= TWS_AVX2_MIN) {
        mask_avx2(buf, buf, n, rk);
        return;
    }
#endif
#if defined(TWS_HAVE_SSE2)
    mask_sse2(buf, buf, n, rk);
#else
    mask_portable_inplace(buf, n, rk);
#endif
}

/* ------------------------------------------------------------------------ */
/* Argument handling                                                         */
/* ------------------------------------------------------------------------ */

/* Parse (first, key, offset=0) given positionally or by keyword into out[].
 * Returns borrowed references; out[2] is NULL when offset was not given. */
static int
parse_args(const char *fname, const char *const names[3],
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           PyObject *out[3])
{
    Py_ssize_t i, nkw;

    out[0] = out[1] = out[2] = NULL;
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most 3 arguments (%zd given)",
                     fname, nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int slot;
        for (slot = 0; slot < 3; slot++) {
            if (PyUnicode_CompareWithASCIIString(name, names[slot]) == 0) {
                break;
            }
        }
        if (slot == 3) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, name);
            return -1;
        }
        if (out[slot] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         fname, names[slot]);
            return -1;
        }
        out[slot] = args[nargs + i];
    }
    for (i = 0; i < 2; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'",
                         fname, names[i]);
            return -1;
        }
    }
    return 0;
}

/* Read the key and the offset and produce the rotated key rk, where
 * rk[i] = key[(i + offset) % 4]. */
static int
get_rotated_key(PyObject *keyobj, PyObject *offsetobj, unsigned char rk[4])
{
    Py_buffer keyview;
    unsigned char key[4];
    unsigned int off = 0;
    int i;

    if (PyObject_GetBuffer(keyobj, &keyview, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (keyview.len != 4) {
        PyErr_Format(PyExc_ValueError,
                     "masking key must be exactly 4 bytes, not %zd",
                     keyview.len);
        PyBuffer_Release(&keyview);
        return -1;
    }
    memcpy(key, keyview.buf, 4);
    PyBuffer_Release(&keyview);

    if (offsetobj != NULL) {
        PyObject *index = PyNumber_Index(offsetobj);
        unsigned long long low;
        if (index == NULL) {
            return -1;
        }
        /* The low 64 bits in two's complement: & 3 is the Python-style
         * offset % 4 for any int, negative or huge. */
        low = PyLong_AsUnsignedLongLongMask(index);
        Py_DECREF(index);
        if (low == (unsigned long long)-1 && PyErr_Occurred()) {
            return -1;
        }
        off = (unsigned int)(low & 3);
    }
    for (i = 0; i < 4; i++) {
        rk[i] = key[(i + off) & 3];
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Module functions                                                          */
/* ------------------------------------------------------------------------ */

static const char *const mask_names[3] = {"data", "key", "offset"};
static const char *const maskinto_names[3] = {"target", "key", "offset"};

PyDoc_STRVAR(mask_doc,
"mask(data, key, offset=0) -> bytes\n"
"\n"
"Return data with byte i XORed with key[(i + offset) % 4] (RFC 6455\n"
"section 5.3).  data is any C-contiguous buffer, key a 4-byte buffer and\n"
"offset an int of which only offset % 4 matters.  Masking twice with the\n"
"same key and offset gives the data back.  Raises ValueError when key is\n"
"not 4 bytes long and TypeError for arguments that are not buffers.");

static PyObject *
tws_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    PyObject *argv[3];
    Py_buffer data;
    unsigned char rk[4];
    PyObject *result;
    (void)module;

    if (parse_args("mask", mask_names, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    if (get_rotated_key(argv[1], argv[2], rk) < 0) {
        return NULL;
    }
    /* PyBUF_SIMPLE only succeeds for C-contiguous memory. */
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (data.len >= TWS_NOGIL_THRESHOLD) {
        /* Nobody else can see result yet, and the buffer view keeps data
         * alive and unresized while the GIL is released. */
        Py_BEGIN_ALLOW_THREADS
        mask_copy((unsigned char *)PyBytes_AS_STRING(result),
                  (const unsigned char *)data.buf, (size_t)data.len, rk);
        Py_END_ALLOW_THREADS
    }
    else {
        mask_copy((unsigned char *)PyBytes_AS_STRING(result),
                  (const unsigned char *)data.buf, (size_t)data.len, rk);
    }
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(maskinto_doc,
"maskInto(target, key, offset=0) -> None\n"
"\n"
"Mask the writable C-contiguous buffer target in place (a bytearray, a\n"
"writable memoryview, ...): byte i is XORed with key[(i + offset) % 4].\n"
"Raises ValueError when key is not 4 bytes long, and TypeError or\n"
"BufferError when target is not a writable contiguous buffer.");

static PyObject *
tws_maskinto(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *argv[3];
    Py_buffer target;
    unsigned char rk[4];
    (void)module;

    if (parse_args("maskInto", maskinto_names, args, nargs, kwnames,
                   argv) < 0) {
        return NULL;
    }
    /* The key is copied out before the target is touched, so a key that
     * aliases the target is harmless. */
    if (get_rotated_key(argv[1], argv[2], rk) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &target, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (target.len >= TWS_NOGIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        mask_inplace((unsigned char *)target.buf, (size_t)target.len, rk);
        Py_END_ALLOW_THREADS
    }
    else {
        mask_inplace((unsigned char *)target.buf, (size_t)target.len, rk);
    }
    PyBuffer_Release(&target);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* MessageBuffer                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *bytes;    /* the message being filled; NULL once taken */
    Py_ssize_t size;
    Py_ssize_t filled;
} MessageBufferObject;

static PyObject *
mb_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_ssize_t size;
    MessageBufferObject *self;
    static char *kwlist[] = {"size", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:MessageBuffer", kwlist,
                                     &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    self = (MessageBufferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* Uninitialised: nothing reads it before write() has filled it all
     * (take() refuses a partial buffer), and untouched pages of a large
     * allocation cost no memory until the data arrives. */
    self->bytes = PyBytes_FromStringAndSize(NULL, size);
    if (self->bytes == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->size = size;
    self->filled = 0;
    return (PyObject *)self;
}

static void
mb_dealloc(MessageBufferObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(self->bytes);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static const char *const mbwrite_names[3] = {"data", "key", "offset"};

PyDoc_STRVAR(mbwrite_doc,
"write(data, key=None, offset=0) -> None\n"
"\n"
"Append data (any C-contiguous buffer), XORed with key[(i + offset) % 4]\n"
"when a 4-byte key is given.  ValueError if it would overflow the size.");

static PyObject *
mb_write(MessageBufferObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    PyObject *argv[3] = {NULL, NULL, NULL};
    Py_buffer data;
    unsigned char rk[4];
    int masked;
    unsigned char *dst;

    /* parse_args wants the key; accept it missing or None here. */
    if (nargs == 1 && kwnames == NULL) {
        argv[0] = args[0];
    }
    else if (parse_args("write", mbwrite_names, args, nargs, kwnames,
                        argv) < 0) {
        return NULL;
    }
    masked = argv[1] != NULL && argv[1] != Py_None;
    if (masked && get_rotated_key(argv[1], argv[2], rk) < 0) {
        return NULL;
    }
    if (self->bytes == NULL) {
        PyErr_SetString(PyExc_ValueError, "the message was already taken");
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (data.len > self->size - self->filled) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError,
                     "%zd bytes do not fit: %zd of %zd are filled",
                     data.len, self->filled, self->size);
        return NULL;
    }
    dst = (unsigned char *)PyBytes_AS_STRING(self->bytes) + self->filled;
    if (masked) {
        mask_copy(dst, (const unsigned char *)data.buf, (size_t)data.len, rk);
    }
    else if (data.len) {
        memcpy(dst, data.buf, (size_t)data.len);
    }
    self->filled += data.len;
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mbtake_doc,
"take() -> bytes\n"
"\n"
"The full message (once: the buffer forgets it).  ValueError while it\n"
"is not full.");

static PyObject *
mb_take(MessageBufferObject *self, PyObject *unused)
{
    PyObject *result;
    (void)unused;
    if (self->bytes == NULL) {
        PyErr_SetString(PyExc_ValueError, "the message was already taken");
        return NULL;
    }
    if (self->filled != self->size) {
        PyErr_Format(PyExc_ValueError, "only %zd of %zd bytes are filled",
                     self->filled, self->size);
        return NULL;
    }
    result = self->bytes;
    self->bytes = NULL;
    return result;
}

static PyObject *
mb_get_filled(MessageBufferObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->filled);
}

static PyObject *
mb_get_size(MessageBufferObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->size);
}

static PyMethodDef mb_methods[] = {
    {"write", (PyCFunction)(void (*)(void))mb_write,
     METH_FASTCALL | METH_KEYWORDS, mbwrite_doc},
    {"take", (PyCFunction)mb_take, METH_NOARGS, mbtake_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef mb_getset[] = {
    {"filled", (getter)mb_get_filled, NULL, "bytes written so far", NULL},
    {"size", (getter)mb_get_size, NULL, "the message's size", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

PyDoc_STRVAR(mb_doc,
"MessageBuffer(size)\n"
"\n"
"A message of a known size, filled by write() (unmasking on the way) and\n"
"handed out as bytes by take() once full, without a final copy.");

static PyType_Slot mb_slots[] = {
    {Py_tp_new, (void *)mb_new},
    {Py_tp_dealloc, (void *)mb_dealloc},
    {Py_tp_methods, mb_methods},
    {Py_tp_getset, mb_getset},
    {Py_tp_doc, (void *)mb_doc},
    {0, NULL}
};

static PyType_Spec mb_spec = {
    "twisted_ws.core._speedups.MessageBuffer",
    sizeof(MessageBufferObject),
    0,
    Py_TPFLAGS_DEFAULT,
    mb_slots,
};

/* ------------------------------------------------------------------------ */
/* HTTP/1.1 heads                                                            */
/*                                                                           */
/* parseHead() is the C twin of HeadParser._parseWhole in                    */
/* twisted_ws/core/http.py: a complete, well-formed head that arrives in one */
/* piece.  It answers None whenever that Python fast path gives no head (it  */
/* then raises or hands over to the line parser, which names the problem),   */
/* so every check here need only be exact about which heads pass and what    */
/* they parse to; tests/test_http.py holds the two equal on generated heads. */
/*                                                                           */
/* First the data's first CRLFCRLF is looked for, as the Python code does   */
/* (no whole head yet: None, no object made).  Then one pass from the start: */
/* the start line, then header lines until an empty one.  No byte of a line */
/* may be CR or LF, so the CRLF ending each line is the first CRLF after its */
/* start, and the empty line that ends the pass is the one that CRLFCRLF     */
/* found: the same head the Python code finds.  No read goes past it.        */
/* ------------------------------------------------------------------------ */

#define TWS_TCHAR 1   /* RFC 7230 tchar: header names and methods */
#define TWS_TEXT 2    /* HTAB, SP to '~' and 0x80-0xFF: values and reasons */

static const unsigned char tws_http_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,  /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x10 */
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,  /* 0x20 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,  /* 0x30 */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 0x40 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,  /* 0x50 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 0x60 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,  /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xf0 */
};

#define TWS_IS_TCHAR(c) (tws_http_class[(c)] & TWS_TCHAR)
#define TWS_IS_TEXT(c) (tws_http_class[(c)] & TWS_TEXT)
#define TWS_IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)
#define TWS_IS_BLANK(c) ((c) == ' ' || (c) == '\t')

/* Header names common in opening handshakes.  The module makes their str
 * objects once (as spelt here, and lowercase: the index's key), and every
 * head that has one of them shares those instead of making and hashing
 * new ones (the bench request's parse: 0.95 -> 0.77 us).  The keys are
 * interned: a lookup by an interned literal ("upgrade") finds its key by
 * identity. */
static const char *const tws_common_names[] = {
    "Host", "Upgrade", "Connection", "Origin", "User-Agent", "Pragma",
    "Cache-Control", "Accept-Encoding", "Accept-Language", "Cookie",
    "Authorization", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Accept", "X-Forwarded-For", "Content-Type",
    "Content-Length", "Date", "Server",
};
#define TWS_N_COMMON \
    ((int)(sizeof(tws_common_names) / sizeof(tws_common_names[0])))

typedef struct {
    PyObject *names[TWS_N_COMMON];  /* as spelt in tws_common_names */
    PyObject *keys[TWS_N_COMMON];   /* lowercase */
    Py_ssize_t lengths[TWS_N_COMMON];
} speedups_state;

/* The index of the common name that name[0:len] is in any case, or -1.
 * The keys hold only lowercase letters and '-', and a tchar c is one of
 * those in some case exactly when c | 0x20 is (for '^' and '_' it is '~'
 * and DEL, neither of them). */
static int
common_name(const speedups_state *st, const unsigned char *name,
            Py_ssize_t len)
{
    int i;
    for (i = 0; i < TWS_N_COMMON; i++) {
        if (st->lengths[i] == len) {
            const Py_UCS1 *key = PyUnicode_1BYTE_DATA(st->keys[i]);
            Py_ssize_t j = 0;
            while (j < len && (name[j] | 0x20) == key[j]) {
                j++;
            }
            if (j == len) {
                return i;
            }
        }
    }
    return -1;
}

/* The str of the latin-1 bytes s[0:len]: the compact ASCII kind unless
 * high (the OR of the bytes) has bit 7 set.  PyUnicode_New(0, ...) is the
 * empty string. */
static PyObject *
latin1_str(const unsigned char *s, Py_ssize_t len, unsigned int high)
{
    PyObject *u = PyUnicode_New(len, (high & 0x80) ? 255 : 127);
    if (u != NULL && len > 0) {
        memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)len);
    }
    return u;
}

/* The ASCII bytes s[0:len] lowercased (only A-Z change, as str.lower()
 * does for ASCII). */
static PyObject *
ascii_lower(const unsigned char *s, Py_ssize_t len)
{
    PyObject *u = PyUnicode_New(len, 127);
    Py_ssize_t i;
    Py_UCS1 *d;
    if (u == NULL) {
        return NULL;
    }
    d = PyUnicode_1BYTE_DATA(u);
    for (i = 0; i < len; i++) {
        unsigned char c = s[i];
        d[i] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + ('a' - 'A')) : c;
    }
    return u;
}

static PyObject *
version_tuple(int major, int minor)
{
    PyObject *t = PyTuple_New(2), *v;
    if (t == NULL) {
        return NULL;
    }
    v = PyLong_FromLong(major);
    if (v == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, v);
    v = PyLong_FromLong(minor);
    if (v == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 1, v);
    return t;
}

/* Where the first "\r\n\r\n" in p[0:n] starts, or -1. */
static Py_ssize_t
find_head_end(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (n - i >= 4) {
        const unsigned char *cr = memchr(p + i, '\r', (size_t)(n - i - 3));
        if (cr == NULL) {
            return -1;
        }
        i = cr - p;
        if (p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            return i;
        }
        i++;
    }
    return -1;
}

/* Read a limit: 1 and *out set for an int that fits a Py_ssize_t; 0 for
 * anything else (another number type, a huge int: the Python code, which
 * compares any number, takes the head); -1 with an exception set. */
static int
get_limit(PyObject *obj, Py_ssize_t *out)
{
    if (!PyLong_Check(obj)) {
        return 0;
    }
    *out = PyLong_AsSsize_t(obj);
    if (*out == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Append one field to fields and to index (lowercase name -> values).
 * upper says whether the name has an uppercase letter: without one the
 * name itself is the key.  0 on success, -1 with an exception set. */
static int
add_field(const speedups_state *st, PyObject *fields, PyObject *index,
          const unsigned char *name, Py_ssize_t nameLen, int upper,
          const unsigned char *value, Py_ssize_t valueLen, unsigned int high)
{
    PyObject *nameStr, *valueStr, *pair, *key, *values;
    int rc, common = common_name(st, name, nameLen);

    if (common >= 0) {
        PyObject *spelt = st->names[common];
        /* The name as received: the usual spelling, all lowercase (the
         * key), or another mix of cases (a new str). */
        if (memcmp(PyUnicode_1BYTE_DATA(spelt), name, (size_t)nameLen) == 0) {
            nameStr = Py_NewRef(spelt);
        }
        else if (!upper) {
            nameStr = Py_NewRef(st->keys[common]);
        }
        else {
            nameStr = latin1_str(name, nameLen, 0);
        }
    }
    else {
        nameStr = latin1_str(name, nameLen, 0);
    }
    if (nameStr == NULL) {
        return -1;
    }
    valueStr = latin1_str(value, valueLen, high);
    if (valueStr == NULL) {
        Py_DECREF(nameStr);
        return -1;
    }
    if (common >= 0) {
        key = Py_NewRef(st->keys[common]);
    }
    else if (upper) {
        key = ascii_lower(name, nameLen);
        if (key == NULL) {
            Py_DECREF(nameStr);
            Py_DECREF(valueStr);
            return -1;
        }
    }
    else {
        Py_INCREF(nameStr);
        key = nameStr;
    }
    pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(nameStr);
        Py_DECREF(valueStr);
        Py_DECREF(key);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 0, nameStr);   /* stolen */
    PyTuple_SET_ITEM(pair, 1, valueStr);  /* stolen; pair keeps it alive */
    rc = PyList_Append(fields, pair);
    Py_DECREF(pair);
    if (rc < 0) {
        Py_DECREF(key);
        return -1;
    }
    values = PyDict_GetItemWithError(index, key);  /* borrowed */
    if (values != NULL) {
        rc = PyList_Append(values, valueStr);
    }
    else if (PyErr_Occurred()) {
        rc = -1;
    }
    else {
        values = PyList_New(1);
        if (values == NULL) {
            rc = -1;
        }
        else {
            Py_INCREF(valueStr);
            PyList_SET_ITEM(values, 0, valueStr);
            rc = PyDict_SetItem(index, key, values);
            Py_DECREF(values);
        }
    }
    Py_DECREF(key);
    return rc;
}

PyDoc_STRVAR(parsehead_doc,
"parseHead(data, isRequest, maxLineLength, maxHeaderBytes, maxHeaderCount)\n"
"\n"
"The whole-head fast path of twisted_ws.core.http.HeadParser: parse the\n"
"complete, well-formed HTTP/1.1 head that starts the bytes data (CRLF\n"
"line ends, token names, values free of controls but HTAB, every limit\n"
"kept).  Returns (method, target, version, fields, index, raw, rest) for\n"
"a request and (version, status, reason, fields, index, raw, rest) for a\n"
"response: fields the list of (name, value) pairs, index their values by\n"
"lowercase name, raw the header block decoded as latin-1, rest the bytes\n"
"after the head.  Returns None for anything else (no whole head, a\n"
"malformed one, a limit broken, data not bytes, a limit not an int that\n"
"fits): the Python parser decides those.");

static PyObject *
tws_parsehead(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *p;
    Py_ssize_t size, n, q, maxLine, maxBytes, maxCount, count = 0;
    Py_ssize_t firstEnd, blockStart, s1 = 0, t0 = 0, t1 = 0;
    int isRequest, ok, major = 0, minor = 0, status = 0;
    unsigned int high = 0, reasonHigh = 0;
    PyObject *fields = NULL, *index = NULL, *result = NULL;
    PyObject *items[7] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const speedups_state *st = PyModule_GetState(module);
    int i;

    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "parseHead() takes exactly 5 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        Py_RETURN_NONE;
    }
    isRequest = PyObject_IsTrue(args[1]);
    if (isRequest < 0) {
        return NULL;
    }
    if ((ok = get_limit(args[2], &maxLine)) <= 0
        || (ok = get_limit(args[3], &maxBytes)) <= 0
        || (ok = get_limit(args[4], &maxCount)) <= 0) {
        if (ok < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    size = PyBytes_GET_SIZE(args[0]);
    /* The head ends at the first CRLFCRLF (see above): nothing past it is
     * read, and a head not complete yet costs one search. */
    n = find_head_end(p, size);
    if (n < 0) {
        Py_RETURN_NONE;
    }
    n += 4;

    /* The start line: p[0:s1] is the method and p[t0:t1] the target, or
     * p[t0:t1] the reason phrase. */
    if (isRequest) {
        /* token SP [\x21-\x7e]+ SP "HTTP/" DIGIT "." DIGIT */
        q = 0;
        while (q < n && TWS_IS_TCHAR(p[q])) {
            q++;
        }
        if (q == 0 || q >= n || p[q] != ' ') {
            Py_RETURN_NONE;
        }
        s1 = q++;
        t0 = q;
        while (q < n && p[q] >= 0x21 && p[q] <= 0x7e) {
            q++;
        }
        t1 = q;
        if (t1 == t0 || n - q < 9 || memcmp(p + q, " HTTP/", 6) != 0
            || !TWS_IS_DIGIT(p[q + 6]) || p[q + 7] != '.'
            || !TWS_IS_DIGIT(p[q + 8])) {
            Py_RETURN_NONE;
        }
        major = p[q + 6] - '0';
        minor = p[q + 8] - '0';
        q += 9;
    }
    else {
        /* "HTTP/" DIGIT "." DIGIT SP 3DIGIT [SP reason] */
        if (n < 12 || memcmp(p, "HTTP/", 5) != 0 || !TWS_IS_DIGIT(p[5])
            || p[6] != '.' || !TWS_IS_DIGIT(p[7]) || p[8] != ' '
            || !TWS_IS_DIGIT(p[9]) || !TWS_IS_DIGIT(p[10])
            || !TWS_IS_DIGIT(p[11])) {
            Py_RETURN_NONE;
        }
        major = p[5] - '0';
        minor = p[7] - '0';
        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        q = t0 = t1 = 12;
        if (q < n && p[q] == ' ') {
            t0 = ++q;
            while (q < n && TWS_IS_TEXT(p[q])) {
                reasonHigh |= p[q];
                q++;
            }
            t1 = q;
        }
    }
    if (n - q < 2 || p[q] != '\r' || p[q + 1] != '\n') {
        Py_RETURN_NONE;
    }
    firstEnd = q;
    if (firstEnd > maxLine) {
        Py_RETURN_NONE;
    }
    q += 2;
    blockStart = q;

    fields = PyList_New(0);
    if (fields == NULL) {
        goto error;
    }
    index = PyDict_New();
    if (index == NULL) {
        goto error;
    }
    /* Header lines: token ":" [SP / HTAB]* text* CRLF, until "\r\n". */
    for (;;) {
        Py_ssize_t lineStart = q, nameEnd, valueStart, valueEnd;
        unsigned int lineHigh = 0;
        int upper = 0;

        if (n - q >= 2 && p[q] == '\r' && p[q + 1] == '\n') {
            break;
        }
        if (++count > maxCount) {
            goto fallback;
        }
        while (q < n && TWS_IS_TCHAR(p[q])) {
            upper |= (p[q] >= 'A' && p[q] <= 'Z');
            q++;
        }
        if (q == lineStart || q >= n || p[q] != ':') {
            goto fallback;
        }
        nameEnd = q++;
        while (q < n && TWS_IS_BLANK(p[q])) {
            q++;
        }
        valueStart = q;
        while (q < n && TWS_IS_TEXT(p[q])) {
            lineHigh |= p[q];
            q++;
        }
        if (n - q < 2 || p[q] != '\r' || p[q + 1] != '\n'
            || q - lineStart > maxLine || q + 2 - blockStart > maxBytes) {
            goto fallback;
        }
        valueEnd = q;
        while (valueEnd > valueStart && TWS_IS_BLANK(p[valueEnd - 1])) {
            valueEnd--;
        }
        q += 2;
        high |= lineHigh;
        if (add_field(st, fields, index, p + lineStart, nameEnd - lineStart,
                      upper, p + valueStart, valueEnd - valueStart,
                      lineHigh) < 0) {
            goto error;
        }
    }
    /* q is at the final CRLF (q + 2 == n, as argued above; checked for
     * safety's sake); the block is blockStart:q.  The limits are checked
     * once more for an empty block (negative limits). */
    if (q + 2 != n || q - blockStart > maxBytes || count > maxCount) {
        goto fallback;
    }

    if (isRequest) {
        items[0] = latin1_str(p, s1, 0);
        items[1] = items[0] ? latin1_str(p + t0, t1 - t0, 0) : NULL;
        items[2] = items[1] ? version_tuple(major, minor) : NULL;
    }
    else {
        items[0] = version_tuple(major, minor);
        items[1] = items[0] ? PyLong_FromLong(status) : NULL;
        items[2] = items[1] ? latin1_str(p + t0, t1 - t0, reasonHigh) : NULL;
    }
    if (items[2] == NULL) {
        goto error;
    }
    items[3] = fields;
    items[4] = index;
    fields = index = NULL;
    items[5] = latin1_str(p + blockStart, q - blockStart, high);
    if (items[5] == NULL) {
        goto error;
    }
    items[6] = PyBytes_FromStringAndSize((const char *)p + n, size - n);
    if (items[6] == NULL) {
        goto error;
    }
    result = PyTuple_New(7);
    if (result == NULL) {
        goto error;
    }
    for (i = 0; i < 7; i++) {
        PyTuple_SET_ITEM(result, i, items[i]);  /* stolen */
    }
    return result;

fallback:
    Py_DECREF(fields);
    Py_DECREF(index);
    Py_RETURN_NONE;

error:
    Py_XDECREF(fields);
    Py_XDECREF(index);
    for (i = 0; i < 7; i++) {
        Py_XDECREF(items[i]);
    }
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))tws_mask,
     METH_FASTCALL | METH_KEYWORDS, mask_doc},
    {"maskInto", (PyCFunction)(void (*)(void))tws_maskinto,
     METH_FASTCALL | METH_KEYWORDS, maskinto_doc},
    {"parseHead", (PyCFunction)(void (*)(void))tws_parsehead,
     METH_FASTCALL, parsehead_doc},
    {NULL, NULL, 0, NULL}
};

/* ------------------------------------------------------------------------ */
/* Module definition (multi-phase initialisation; the state holds the      */
/* common header names' str objects)                                         */
/* ------------------------------------------------------------------------ */

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    speedups_state *st = PyModule_GetState(module);
    int i;
    if (st == NULL) {
        return 0;
    }
    for (i = 0; i < TWS_N_COMMON; i++) {
        Py_VISIT(st->names[i]);
        Py_VISIT(st->keys[i]);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    speedups_state *st = PyModule_GetState(module);
    int i;
    if (st == NULL) {
        return 0;
    }
    for (i = 0; i < TWS_N_COMMON; i++) {
        Py_CLEAR(st->names[i]);
        Py_CLEAR(st->keys[i]);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    (void)speedups_clear((PyObject *)module);
}

static int
speedups_exec(PyObject *module)
{
    const char *kernel;
    speedups_state *st = PyModule_GetState(module);
    PyObject *mbtype;
    int i;

    for (i = 0; i < TWS_N_COMMON; i++) {
        const char *spelt = tws_common_names[i];
        st->lengths[i] = (Py_ssize_t)strlen(spelt);
        st->names[i] = PyUnicode_InternFromString(spelt);
        if (st->names[i] == NULL) {
            return -1;
        }
        st->keys[i] = ascii_lower((const unsigned char *)spelt,
                                  st->lengths[i]);
        if (st->keys[i] == NULL) {
            return -1;
        }
        PyUnicode_InternInPlace(&st->keys[i]);
    }
    detect_cpu();
    mbtype = PyType_FromSpec(&mb_spec);
    if (mbtype == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "MessageBuffer", mbtype) < 0) {
        Py_DECREF(mbtype);
        return -1;
    }
#if defined(TWS_HAVE_AVX2_DISPATCH)
    kernel = tws_use_avx2 ? "avx2" : "sse2";
#elif defined(TWS_HAVE_SSE2)
    kernel = "sse2";
#else
    kernel = "portable";
#endif
    /* Which kernel large inputs use; informational (benchmarks, bug
     * reports). */
    if (PyModule_AddStringConstant(module, "KERNEL", kernel) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, (void *)speedups_exec},
#if defined(Py_mod_multiple_interpreters)
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if defined(Py_mod_gil)
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL}
};

PyDoc_STRVAR(speedups_doc,
"Optional C accelerator for twisted_ws: WebSocket payload masking and\n"
"the HTTP/1.1 head fast path.\n"
"\n"
"Use twisted_ws.core.masking and twisted_ws.core.http rather than this\n"
"module directly; they fall back to pure Python when it is not built.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "twisted_ws.core._speedups", /* m_name */
    speedups_doc,             /* m_doc */
    sizeof(speedups_state),   /* m_size */
    speedups_methods,         /* m_methods */
    speedups_slots,           /* m_slots */
    speedups_traverse,        /* m_traverse */
    speedups_clear,           /* m_clear */
    speedups_free,            /* m_free */
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
