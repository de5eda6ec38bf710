/* runtime/npy.c — NumPy .npy files (the format of numpy/lib/format.py).
 *
 * Owns rt_npy_read and rt_npy_write. A file is: the magic "\x93NUMPY", a major and minor
 * version byte, the header length (2 bytes little-endian in version 1.0, 4 bytes in 2.0
 * and 3.0), the header (a Python dict literal with the keys 'descr', 'fortran_order'
 * and 'shape', padded with spaces and ended by '\n'), then the raw C-ordered data.
 *
 * Reading accepts versions 1.0-3.0, the keys in any order, either quote, any spacing, an
 * optional trailing comma, and the descrs of the table below; anything else is refused
 * with a message that starts with the file name. Contents errors are DVM_ERR_DATA, byte
 * counts that overflow DVM_ERR_OVERFLOW, failures of the file system DVM_ERR_IO. The
 * reader never trusts a length: the header is capped at 1 MiB, and the data size is
 * checked against the file size before anything is allocated.
 *
 * Writing produces version 1.0 with the data starting at a multiple of 64 bytes, into a
 * temporary file in the same directory that is renamed over the target, so readers never
 * see a half-written file. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#define MAX_HEADER (1u << 20)

/* The descrs dvm reads; the first one listed for a dtype is the one it writes (NumPy's:
 * '|' for one-byte dtypes, which have no byte order, '<' for the others). Every dtype has
 * one (rt_npy_write relies on it; test_npy round-trips each). */
static const struct {
  const char *descr;
  DType dt;
} descrs[] = {
    {"<f4", DT_F32}, {"<f2", DT_F16},  {"<V2", DT_BF16}, {"|V2", DT_BF16}, {"<i4", DT_I32},
    {"<i8", DT_I64}, {"|b1", DT_BOOL}, {"<b1", DT_BOOL}, {"<f8", DT_F64},  {"|i1", DT_I8},
    {"<i1", DT_I8},  {"<i2", DT_I16},  {"|u1", DT_U8},   {"<u1", DT_U8},   {"<u2", DT_U16},
    {"<u4", DT_U32}, {"<u8", DT_U64},
};
#define SUPPORTED                                                                              \
  "'<f4' f32, '<f2' f16, '<V2' bf16, '<f8' f64, '|i1' i8, '<i2' i16, '<i4' i32, '<i8' i64, "  \
  "'|u1' u8, '<u2' u16, '<u4' u32, '<u8' u64, '|b1' bool"

/* ---- header parsing ----------------------------------------------------------------- */

/* The header dict being parsed. */
typedef struct Hdr {
  const char *path;
  const char *text, *p, *end; /* the header, the cursor */
  Err *err;
  char descr[32];
  int fortran; /* -1 until seen */
  int rank;    /* -1 until seen */
  int64_t shape[DVM_MAX_RANK];
} Hdr;

/* A malformed-header error quoting the header around the cursor. */
static dvm_status bad(Hdr *h, const char *what) {
  char q[96];
  size_t n = 0;
  for (const char *s = h->p; s < h->end && n + 1 < sizeof q && n < 60; s++)
    q[n++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
  q[n] = 0;
  return ir_err(h->err, DVM_ERR_DATA,
                "%s: malformed .npy header: %s at header offset %td (near \"%s\")", h->path,
                what, h->p - h->text, q);
}

static void skip(Hdr *h) {
  while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
    h->p++;
}

/* Skip spaces and consume c if it is next. */
static bool eat(Hdr *h, char c) {
  skip(h);
  if (h->p < h->end && *h->p == c) return h->p++, true;
  return false;
}

/* Consume the identifier w if it is next. */
static bool word(Hdr *h, const char *w) {
  size_t n = strlen(w);
  skip(h);
  if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return false;
  if ((size_t)(h->end - h->p) > n && (isalnum((unsigned char)h->p[n]) || h->p[n] == '_'))
    return false;
  h->p += n;
  return true;
}

/* A quoted string (no escapes) into buf. */
static dvm_status quoted(Hdr *h, char *buf, size_t n) {
  skip(h);
  if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return bad(h, "expected a string");
  char q = *h->p++;
  size_t k = 0;
  for (; h->p < h->end && *h->p != q; h->p++) {
    if (*h->p == '\\') return bad(h, "escapes in strings are not supported");
    if (k + 1 >= n) return bad(h, "string too long");
    buf[k++] = *h->p;
  }
  if (h->p >= h->end) return bad(h, "unterminated string");
  h->p++;
  buf[k] = 0;
  return DVM_OK;
}

/* A shape tuple: "()", "(5,)", "(2, 3)", Python 2 longs "(2L, 3L)". */
static dvm_status tuple(Hdr *h) {
  if (!eat(h, '(')) return bad(h, "expected a tuple for 'shape'");
  h->rank = 0;
  if (eat(h, ')')) return DVM_OK;
  for (;;) {
    skip(h);
    if (h->p < h->end && *h->p == '-')
      return ir_err(h->err, DVM_ERR_DATA, "%s: .npy shape has a negative dim", h->path);
    if (h->p >= h->end || *h->p < '0' || *h->p > '9') return bad(h, "expected a dim");
    int64_t d = 0;
    while (h->p < h->end && *h->p >= '0' && *h->p <= '9')
      if (__builtin_mul_overflow(d, 10, &d) || __builtin_add_overflow(d, *h->p++ - '0', &d))
        return ir_err(h->err, DVM_ERR_OVERFLOW, "%s: .npy shape has a dim that overflows int64",
                      h->path);
    if (h->p < h->end && (*h->p == 'L' || *h->p == 'l')) h->p++;
    if (h->rank == DVM_MAX_RANK)
      return ir_err(h->err, DVM_ERR_DATA,
                    "%s: .npy shape has more than %d dims (dvm's maximum)", h->path,
                    DVM_MAX_RANK);
    h->shape[h->rank++] = d;
    bool comma = eat(h, ',');
    if (eat(h, ')')) return DVM_OK;
    if (!comma) return bad(h, "expected ',' or ')' in 'shape'");
  }
}

/* The whole dict: keys in any order, each once, an optional trailing comma. */
static dvm_status parse(Hdr *h) {
  dvm_status s;
  h->fortran = h->rank = -1;
  h->descr[0] = 0;
  if (!eat(h, '{')) return bad(h, "expected '{'");
  while (!eat(h, '}')) {
    char key[32];
    if ((s = quoted(h, key, sizeof key))) return s;
    if (!eat(h, ':')) return bad(h, "expected ':'");
    if (!strcmp(key, "descr") && !h->descr[0]) {
      skip(h);
      if (h->p < h->end && *h->p == '[')
        return ir_err(h->err, DVM_ERR_DATA,
                      "%s: structured .npy dtypes are not supported (dvm reads " SUPPORTED ")",
                      h->path);
      if ((s = quoted(h, h->descr, sizeof h->descr))) return s;
      if (!h->descr[0]) return bad(h, "empty 'descr'");
    } else if (!strcmp(key, "fortran_order") && h->fortran < 0) {
      if (word(h, "True"))
        h->fortran = 1;
      else if (word(h, "False"))
        h->fortran = 0;
      else
        return bad(h, "expected True or False for 'fortran_order'");
    } else if (!strcmp(key, "shape") && h->rank < 0) {
      if ((s = tuple(h))) return s;
    } else {
      return ir_err(h->err, DVM_ERR_DATA,
                    "%s: malformed .npy header: unexpected or repeated key '%s'", h->path, key);
    }
    if (!eat(h, ',')) {
      if (eat(h, '}')) break;
      return bad(h, "expected ',' or '}'");
    }
  }
  while (h->p < h->end &&
         (*h->p == ' ' || *h->p == '\n' || *h->p == '\r' || *h->p == '\t' || *h->p == 0))
    h->p++;
  if (h->p != h->end) return bad(h, "unexpected text after the dict");
  if (!h->descr[0] || h->fortran < 0 || h->rank < 0)
    return ir_err(h->err, DVM_ERR_DATA, "%s: malformed .npy header: missing key '%s'", h->path,
                  !h->descr[0]     ? "descr"
                  : h->fortran < 0 ? "fortran_order"
                                   : "shape");
  return DVM_OK;
}

/* The dtype of h->descr, or an error naming it. */
static dvm_status dtype(Hdr *h, DType *dt) {
  for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
    if (!strcmp(h->descr, descrs[i].descr)) return *dt = descrs[i].dt, DVM_OK;
  if (h->descr[0] == '>' || h->descr[0] == '!')
    return ir_err(h->err, DVM_ERR_DATA,
                  "%s: big-endian .npy data ('%s') is not supported; dvm reads little-endian "
                  "(save with arr.astype(arr.dtype.newbyteorder('<')))",
                  h->path, h->descr);
  return ir_err(h->err, DVM_ERR_DATA,
                "%s: unsupported .npy dtype '%s' (dvm reads " SUPPORTED ")", h->path, h->descr);
}

/* ---- reading ------------------------------------------------------------------------ */

/* Read exactly n bytes unless the file ends; returns the count read. */
static size_t readn(FILE *f, void *buf, size_t n) {
  size_t k = 0;
  while (k < n) {
    size_t r = fread((char *)buf + k, 1, n - k, f);
    if (r == 0) break;
    k += r;
  }
  return k;
}

/* An I/O error if the stream failed, else a truncation error. */
static dvm_status shortread(FILE *f, const char *path, const char *what, size_t want,
                            size_t got, Err *err) {
  if (ferror(f)) return ir_err(err, DVM_ERR_IO, "%s: read error: %s", path, strerror(errno));
  return ir_err(err, DVM_ERR_DATA, "%s: truncated .npy %s: expected %zu bytes, found %zu", path,
                what, want, got);
}

/* Read the file's prelude and header, then the data into a new tensor. */
/* Read a .npy from f, named path in messages; size: f's bytes when known (a regular file,
 * a buffer), else -1 (a pipe), which lets the data's length be checked before the tensor
 * is made. */
static dvm_status load(FILE *f, const char *path, int64_t size, Tensor **out, Err *err) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  unsigned char pre[12];
  bool regular = size >= 0;
  size_t n = readn(f, pre, 10);
  if (ferror(f)) return ir_err(err, DVM_ERR_IO, "%s: read error: %s", path, strerror(errno));
  if (n < 6 || memcmp(pre, magic, 6) != 0)
    return ir_err(err, DVM_ERR_DATA, "%s: not a .npy file (bad magic: expected \\x93NUMPY)",
                  path);
  if (n < 8) return shortread(f, path, "header", 10, n, err);
  int major = pre[6], minor = pre[7];
  if (!(major >= 1 && major <= 3 && minor == 0))
    return ir_err(err, DVM_ERR_DATA,
                  "%s: unsupported .npy format version %d.%d (dvm reads 1.0, 2.0 and 3.0)",
                  path, major, minor);
  size_t lenbytes = major == 1 ? 2 : 4, prelen = 8 + lenbytes;
  if (n == 10 && lenbytes == 4) n += readn(f, pre + 10, 2);
  if (n < prelen) return shortread(f, path, "header", prelen, n, err);
  uint32_t hlen = pre[8] | (uint32_t)pre[9] << 8;
  if (lenbytes == 4) hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  if (hlen > MAX_HEADER)
    return ir_err(err, DVM_ERR_DATA, "%s: .npy header of %u bytes is longer than 1 MiB", path,
                  hlen);

  char *text = malloc(hlen + 1);
  if (!text) return ir_err(err, DVM_ERR_NOMEM, "%s: out of memory", path);
  n = readn(f, text, hlen);
  if (n < hlen) {
    dvm_status s = shortread(f, path, "header", hlen, n, err);
    free(text);
    return s;
  }
  text[hlen] = 0;
  Hdr h = {.path = path, .text = text, .p = text, .end = text + hlen, .err = err};
  DType dt = DT_F32;
  dvm_status s = parse(&h);
  if (!s) s = dtype(&h, &dt);
  free(text);
  if (s) return s;
  if (h.fortran)
    return ir_err(err, DVM_ERR_DATA,
                  "%s: Fortran-order .npy arrays are not supported (save a C-ordered array: "
                  "np.ascontiguousarray)",
                  path);

  /* the byte count, with NumPy's rule: the product of the nonzero dims must fit */
  int64_t nz = 1, bytes;
  bool zero = false;
  for (int i = 0; i < h.rank; i++) {
    if (h.shape[i] == 0)
      zero = true;
    else if (__builtin_mul_overflow(nz, h.shape[i], &nz))
      nz = -1;
    if (nz < 0) break;
  }
  if (nz < 0 || __builtin_mul_overflow(nz, (int64_t)ir_dtype_size(dt), &bytes)) {
    char dims[256];
    size_t k = 0;
    for (int i = 0; i < h.rank; i++)
      k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%lld", i ? ", " : "",
                            (long long)h.shape[i]);
    return ir_err(err, DVM_ERR_OVERFLOW,
                  "%s: .npy shape (%s) of '%s' overflows the byte count (more than 2^63 bytes)",
                  path, dims, h.descr);
  }
  if (zero) bytes = 0;
  int64_t off = (int64_t)prelen + hlen;
  if (regular && size - off < bytes)
    return ir_err(err, DVM_ERR_DATA, "%s: truncated .npy data: expected %lld bytes, found %lld",
                  path, (long long)bytes, (long long)(size - off));
  if (regular && size - off > bytes)
    return ir_err(err, DVM_ERR_DATA,
                  "%s: %lld trailing bytes after the .npy data (expected %lld bytes of data)",
                  path, (long long)(size - off - bytes), (long long)bytes);

  Tensor *t;
  if ((s = rt_tensor_new(dt, h.rank, h.shape, &t, err))) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return ir_err(err, s, "%s: %s", path, msg);
  }
  n = readn(f, t->data, (size_t)bytes);
  if (n < (size_t)bytes) {
    s = shortread(f, path, "data", (size_t)bytes, n, err);
    rt_tensor_free(t);
    return s;
  }
  if (fgetc(f) != EOF) {
    rt_tensor_free(t);
    return ir_err(err, DVM_ERR_DATA, "%s: trailing bytes after the .npy data", path);
  }
  if (dt == DT_BOOL) /* NumPy reads any nonzero byte as True; dvm's bools are 0 or 1 */
    for (int64_t i = 0; i < t->numel; i++)
      ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
  *out = t;
  return DVM_OK;
}

/* Read a .npy file into a new tensor (see runtime.h). */
dvm_status rt_npy_read(const char *path, Tensor **out, Err *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ir_err(err, DVM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  bool known = fstat(fileno(f), &st) == 0;
  dvm_status s = known && S_ISDIR(st.st_mode) ? ir_err(err, DVM_ERR_IO, "%s: is a directory, not a .npy file", path)
                 : load(f, path, known && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1, out, err);
  fclose(f);
  return s;
}

/* Read a .npy held in memory (see runtime.h). */
dvm_status rt_npy_read_mem(const void *data, size_t len, const char *name, Tensor **out, Err *err) {
  *out = NULL;
  FILE *f = fmemopen((void *)data, len, "rb"); /* read only: the buffer is not written */
  if (!f) return ir_err(err, DVM_ERR_NOMEM, "%s: out of memory", name);
  dvm_status s = load(f, name, (int64_t)len, out, err);
  fclose(f);
  return s;
}

/* ---- writing ------------------------------------------------------------------------ */

/* Write all n bytes to fd; false with errno set on failure. */
static bool writeall(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Format the prelude and padded header of t into buf; returns its length. */
static size_t header(char *buf, size_t cap, const Tensor *t) {
  const char *descr = NULL;
  for (size_t i = 0; i < sizeof descrs / sizeof descrs[0] && !descr; i++)
    if (descrs[i].dt == t->dtype) descr = descrs[i].descr;
  assert(descr); /* every dtype is in the table */
  size_t k = 10;
  k += (size_t)snprintf(buf + k, cap - k, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                        descr);
  for (int i = 0; i < t->rank; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  k += (size_t)snprintf(buf + k, cap - k, "%s), }", t->rank == 1 ? "," : "");
  size_t total = (k + 1 + 63) / 64 * 64; /* room for '\n', then a multiple of 64 */
  memset(buf + k, ' ', total - k);
  buf[total - 1] = '\n';
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)((total - 10) & 0xff);
  buf[9] = (char)((total - 10) >> 8);
  return total;
}

/* Create a fresh temporary file next to path; returns the fd, or -1 with errno set. */
static int maketemp(const char *path, char *tmp, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t nonce = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts;
  for (int i = 0; i < 100; i++) {
    nonce = nonce * 6364136223846793005ull + 1442695040888963407ull;
    snprintf(tmp, cap, "%s.%ld.%08llx.tmp", path, (long)getpid(),
             (unsigned long long)(nonce >> 32));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

/* Write a .npy file (version 1.0), atomically (see runtime.h). */
dvm_status rt_npy_write(const char *path, const Tensor *t, Err *err) {
  if ((unsigned)t->dtype >= DT_COUNT || t->rank < 0 || t->rank > DVM_MAX_RANK ||
      rt_numel(t->rank, t->shape) != t->numel || (!t->data && t->numel > 0))
    return ir_err(err, DVM_ERR_USAGE, "%s: cannot save an invalid tensor", path);
  int64_t bytes;
  if (__builtin_mul_overflow(t->numel, (int64_t)ir_dtype_size(t->dtype), &bytes))
    return ir_err(err, DVM_ERR_OVERFLOW, "%s: tensor byte count overflows", path);
  char hdr[448]; /* 8 dims of 20 digits fit with room to spare */
  size_t hn = header(hdr, sizeof hdr, t);

  size_t cap = strlen(path) + 48;
  char *tmp = malloc(cap);
  if (!tmp) return ir_err(err, DVM_ERR_NOMEM, "%s: out of memory", path);
  int fd = maketemp(path, tmp, cap);
  if (fd < 0) {
    dvm_status s = ir_err(err, DVM_ERR_IO, "%s: cannot create a temporary file: %s", path,
                          strerror(errno));
    free(tmp);
    return s;
  }
  bool ok = writeall(fd, hdr, hn) && writeall(fd, t->data, (size_t)bytes);
  int e = errno;
  if (close(fd) != 0 && ok) ok = false, e = errno;
  if (ok && rename(tmp, path) != 0) ok = false, e = errno;
  if (!ok) unlink(tmp);
  free(tmp);
  if (!ok) return ir_err(err, DVM_ERR_IO, "%s: cannot write: %s", path, strerror(e));
  return DVM_OK;
}
