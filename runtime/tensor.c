/* runtime/tensor.c — tensors and element access.
 *
 * Owns: Tensor allocation (rt_tensor_new/free, rt_numel), the public dtype and tensor
 * functions of include/dvm.h, IEEE half / bfloat16 conversion, typed element get/set with
 * dvm's rounding rules (docs/ops.md), and the deterministic random fill.
 *
 * Invariants: a Tensor's shape has no negative dim; the product of its nonzero dims times
 * the element size fits in int64 (NumPy's rule, so every partial product of dims fits
 * too); its storage is at least one byte, so data is never NULL for created tensors.
 *
 * Rounding: every store to f32/f16/bf16 is a single round-to-nearest-even of the exact
 * value. f16/bf16 from a double go through f32 with round-to-odd, which is exact for a
 * final rounding to at most 22 bits; integers stored to floats go through a round-to-odd
 * double the same way, so no value is rounded twice. f64 stores a double as it is.
 * Integer stores saturate to the dtype's range (from a double: truncated first, NaN 0).
 *
 * u64 in an int64: rt_get_i and rt_set_i carry a u64 element as its bit pattern (the
 * two's-complement reinterpretation), so they move every u64 exactly; rt_get_f and
 * rt_set_f see its unsigned value, and rt_set_u stores an unsigned value to any dtype. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime.h"

/* ---- shapes and allocation ------------------------------------------------------------ */

/* Write "f32[2, 3]" into buf. */
static const char *fmtshape(char *buf, size_t n, DType dt, int rank, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(dt));
  for (int i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

/* The product of the nonzero dims, or -1 on a negative dim or overflow. */
static int64_t nzprod(int rank, const int64_t *shape) {
  int64_t p = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] > 0 && __builtin_mul_overflow(p, shape[i], &p)) return -1;
  }
  return p;
}

/* numel of a shape, or -1 on a negative dim, a bad rank or overflow. */
int64_t rt_numel(int rank, const int64_t *shape) {
  if (rank < 0 || rank > DVM_MAX_RANK || (rank > 0 && !shape)) return -1;
  int64_t p = nzprod(rank, shape);
  if (p < 0) return -1;
  for (int i = 0; i < rank; i++)
    if (shape[i] == 0) return 0;
  return p;
}

/* Check dtype, rank and dims; set *numel and *bytes. */
static dvm_status check(DType dt, int rank, const int64_t *shape, int64_t *numel, size_t *bytes,
                        Err *err) {
  char buf[256];
  if ((unsigned)dt >= DT_COUNT) return ir_err(err, DVM_ERR_USAGE, "unknown dtype %d", (int)dt);
  if (rank < 0) return ir_err(err, DVM_ERR_USAGE, "tensor rank %d is negative", rank);
  if (rank > DVM_MAX_RANK)
    return ir_err(err, DVM_ERR_UNSUPPORTED, "tensor rank %d is larger than the maximum %d",
                  rank, DVM_MAX_RANK);
  if (rank > 0 && !shape) return ir_err(err, DVM_ERR_USAGE, "tensor shape is NULL");
  for (int i = 0; i < rank; i++)
    if (shape[i] < 0)
      return ir_err(err, DVM_ERR_SHAPE, "tensor shape %s has a negative dim",
                    fmtshape(buf, sizeof buf, dt, rank, shape));
  int64_t p = nzprod(rank, shape), b;
  if (p < 0 || __builtin_mul_overflow(p, (int64_t)ir_dtype_size(dt), &b) ||
      (uint64_t)b > (uint64_t)PTRDIFF_MAX)
    return ir_err(err, DVM_ERR_OVERFLOW, "tensor shape %s: byte count overflows",
                  fmtshape(buf, sizeof buf, dt, rank, shape));
  *numel = rt_numel(rank, shape);
  *bytes = (size_t)*numel * ir_dtype_size(dt);
  return DVM_OK;
}

/* Fill the header fields of t. */
static void setup(Tensor *t, DType dt, int rank, const int64_t *shape, int64_t numel) {
  t->dtype = dt;
  t->rank = rank;
  memset(t->shape, 0, sizeof t->shape);
  for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
  t->numel = numel;
  t->release = NULL, t->release_arg = NULL;
}

enum { HUGE_PAGE = 2 << 20, HUGE_FROM = 1 << 20 };

/* Tensor data, arenas and packed weights: 64-byte aligned (a vector load of an unaligned
 * row spans two lines); blocks of HUGE_FROM bytes or more are rounded up to whole 2 MB
 * pages that the kernel is asked to back with transparent huge pages. A first touch
 * costs a page fault per page, 10 to 20 µs each for 4 KB pages on the virtual machines
 * dvm is measured on (16 MB: 73 to 84 ms on 4 KB pages, 1.8 ms on 2 MB pages the process
 * had just freed), which was most of a first run (W5 at N = 1024: its arena and output;
 * at N = 1, packing its weights). Up to 1 MB of the last page may go unused. Smaller
 * blocks stay on 4 KB pages: a fresh 2 MB page sometimes took 3.5 ms to fault in (W5's
 * 256 KB arena at N = 16 rounded to one: first runs of 3.4–3.8 or 7.0–7.2 ms, against
 * 3.7–4.0 ms on 4 KB pages). Free with free(). */
static size_t alloc_align(size_t bytes) { return bytes >= HUGE_FROM ? HUGE_PAGE : 64; }

size_t rt_alloc_size(size_t bytes) {
  size_t align = alloc_align(bytes);
  return bytes > PTRDIFF_MAX - HUGE_PAGE ? bytes : bytes ? (bytes + align - 1) / align * align : align;
}

void *rt_alloc(size_t bytes) {
  if (bytes > PTRDIFF_MAX - HUGE_PAGE) return NULL;
  size_t align = alloc_align(bytes);
  bytes = rt_alloc_size(bytes);
  void *p = aligned_alloc(align, bytes);
#ifdef MADV_HUGEPAGE
  if (p && align == HUGE_PAGE) madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
#endif
  return p;
}

/* A new zeroed tensor, its data from rt_alloc; fails on negative dims or byte counts that
 * overflow. */
dvm_status rt_tensor_new(DType dt, int rank, const int64_t *shape, Tensor **out, Err *err) {
  int64_t numel;
  size_t bytes;
  *out = NULL;
  dvm_status s = check(dt, rank, shape, &numel, &bytes, err);
  if (s) return s;
  Tensor *t = malloc(sizeof *t);
  void *data = t ? rt_alloc(bytes) : NULL;
  if (data) memset(data, 0, (bytes + 63) & ~(size_t)63); /* rt_alloc's rounding */
  if (!data) {
    char buf[256];
    free(t);
    return ir_err(err, DVM_ERR_NOMEM, "out of memory allocating a tensor %s (%zu bytes)",
                  fmtshape(buf, sizeof buf, dt, rank, shape), bytes);
  }
  setup(t, dt, rank, shape, numel);
  t->data = data;
  t->owned = true;
  *out = t;
  return DVM_OK;
}

/* Free a tensor and, if it owns it, its storage. */
void rt_tensor_free(Tensor *t) {
  if (!t) return;
  if (t->owned) free(t->data);
  if (t->release) t->release(t->release_arg);
  free(t);
}

/* ---- public dtypes and tensors ------------------------------------------------------- */

/* The text-format name of a dtype, or NULL. */
const char *dvm_dtype_name(dvm_dtype dt) {
  return (unsigned)dt < DT_COUNT ? ir_dtype_name(dt) : NULL;
}

/* Bytes per element (0 for an unknown dtype). */
size_t dvm_dtype_size(dvm_dtype dt) { return ir_dtype_size(dt); }

/* A new zeroed, owning tensor. */
dvm_status dvm_tensor_create(dvm_dtype dt, int rank, const int64_t *shape, dvm_tensor **out) {
  Err err;
  if (!out) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_create: out is NULL"});
  if (rt_tensor_new(dt, rank, shape, out, &err)) return rt_fail(&err);
  return rt_ok();
}

/* A tensor header over memory someone else owns (and frees). */
dvm_status rt_tensor_wrap(DType dt, int rank, const int64_t *shape, void *data, Tensor **out, Err *err) {
  int64_t numel;
  size_t bytes;
  *out = NULL;
  dvm_status s = check(dt, rank, shape, &numel, &bytes, err);
  if (s) return s;
  if (!data && bytes > 0) return ir_err(err, DVM_ERR_USAGE, "dvm_tensor_wrap: data is NULL");
  Tensor *t = malloc(sizeof *t);
  if (!t) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  setup(t, dt, rank, shape, numel);
  t->data = data;
  t->owned = false;
  *out = t;
  return DVM_OK;
}

/* A tensor over the caller's memory, which must outlive it. */
dvm_status dvm_tensor_wrap(dvm_dtype dt, int rank, const int64_t *shape, void *data,
                           dvm_tensor **out) {
  Err err;
  if (!out) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_wrap: out is NULL"});
  if (rt_tensor_wrap(dt, rank, shape, data, out, &err)) return rt_fail(&err);
  return rt_ok();
}

/* Destroy a tensor (NULL is allowed). */
void dvm_tensor_destroy(dvm_tensor *t) { rt_tensor_free(t); }
/* Accessors; a NULL tensor reads as an f32 scalar with no data. */
dvm_dtype dvm_tensor_dtype(const dvm_tensor *t) { return t ? t->dtype : DVM_F32; }
int dvm_tensor_rank(const dvm_tensor *t) { return t ? t->rank : 0; }
const int64_t *dvm_tensor_shape(const dvm_tensor *t) { return t ? t->shape : NULL; }
int64_t dvm_tensor_numel(const dvm_tensor *t) { return t ? t->numel : 0; }
void *dvm_tensor_data(dvm_tensor *t) { return t ? t->data : NULL; }
/* Element i, converted as rt_get_f / rt_get_i / rt_set_i do. */
double dvm_tensor_get_f64(const dvm_tensor *t, int64_t i) {
  return rt_get_f(t->data, t->dtype, i);
}
int64_t dvm_tensor_get_i64(const dvm_tensor *t, int64_t i) {
  return rt_get_i(t->data, t->dtype, i);
}
void dvm_tensor_set_i64(dvm_tensor *t, int64_t i, int64_t v) {
  rt_set_i(t->data, t->dtype, i, v);
}

/* Read a .npy file into a new tensor. */
dvm_status dvm_tensor_load_npy(const char *path, dvm_tensor **out) {
  Err err;
  if (!path || !out)
    return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_load_npy: NULL argument"});
  if (rt_npy_read(path, out, &err)) return rt_fail(&err);
  return rt_ok();
}

/* Write a tensor as a .npy file. */
dvm_status dvm_tensor_save_npy(const char *path, const dvm_tensor *t) {
  Err err;
  if (!path || !t) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_save_npy: NULL argument"});
  if (rt_npy_write(path, t, &err)) return rt_fail(&err);
  return rt_ok();
}

/* Deterministic pseudo-random fill (NULL is allowed). */
void dvm_tensor_fill_random(dvm_tensor *t, uint64_t seed) {
  if (t) rt_fill_random(t, seed);
}

/* ---- half and bfloat16 --------------------------------------------------------------- */

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bitsf(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* IEEE half to f32 (exact; a NaN stays a NaN, made quiet). */
float rt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return bitsf(sign | 0x7f800000 | (m ? 0x400000 | (m << 13) : 0));
  if (e == 0) {
    if (!m) return bitsf(sign);
    e = 113; /* normalize a subnormal: value is m * 2^-24 */
    while (!(m & 0x400)) m <<= 1, e--;
    return bitsf(sign | (e << 23) | ((m & 0x3ff) << 13));
  }
  return bitsf(sign | ((e + 112) << 23) | (m << 13));
}

/* f32 to IEEE half, round to nearest even; overflow gives infinity. */
uint16_t rt_f32_to_f16(float f) {
  uint32_t x = fbits(f), a = x & 0x7fffffff;
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  if (a > 0x7f800000) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); /* NaN */
  if (a >= 0x47800000) return sign | 0x7c00; /* >= 65536 (or inf): infinity */
  uint32_t m, shift;
  if (a >= 0x38800000) { /* normal half: rebias the exponent by 127 - 15 */
    m = a - 0x38000000;
    shift = 13;
  } else { /* subnormal half (or zero), in units of 2^-24; 2^-25 ties to even 0 */
    if (a <= 0x33000000) return sign;
    m = (a & 0x7fffff) | 0x800000;
    shift = 126 - (a >> 23);
  }
  uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) h++; /* a carry may reach inf: correct */
  return sign | (uint16_t)h;
}

/* bfloat16 to f32 (exact). */
float rt_bf16_to_f32(uint16_t h) { return bitsf((uint32_t)h << 16); }

/* f32 to bfloat16, round to nearest even; a NaN stays a NaN, made quiet. */
uint16_t rt_f32_to_bf16(float f) {
  uint32_t x = fbits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* v rounded to f32 with round-to-odd (truncate, then set the last bit if inexact). */
static float oddf(double v) {
  float f = (float)v;
  if (isnan(v) || (double)f == v) return f;
  uint32_t b = fbits(f);
  if (fabs((double)f) > fabs(v)) b--; /* step toward zero; f is nonzero here */
  return bitsf(b | 1);
}

/* v rounded to double with round-to-odd. */
static double oddd(int64_t v) {
  double d = (double)v;
  bool away = true; /* d was rounded away from zero */
  if (d < 9223372036854775808.0) {
    int64_t back = (int64_t)d;
    if (back == v) return d;
    away = v < 0 ? back < v : back > v;
  }
  uint64_t b;
  memcpy(&b, &d, 8);
  if (away) b--; /* d is nonzero here: this steps toward zero */
  b |= 1;
  memcpy(&d, &b, 8);
  return d;
}

/* The unsigned v rounded to double with round-to-odd. */
static double oddu(uint64_t v) {
  double d = (double)v;
  bool away = true; /* d == 2^64 was rounded up */
  if (d < 18446744073709551616.0) {
    uint64_t back = (uint64_t)d;
    if (back == v) return d;
    away = back > v;
  }
  uint64_t b;
  memcpy(&b, &d, 8);
  if (away) b--; /* d is nonzero here: this steps toward zero */
  b |= 1;
  memcpy(&d, &b, 8);
  return d;
}

/* ---- element access ------------------------------------------------------------------ */

/* Truncate toward zero and saturate to [lo, hi] (given as exact doubles); NaN gives 0. */
static int64_t sat(double v, double lo, double hi, int64_t ilo, int64_t ihi) {
  if (isnan(v)) return 0;
  if (v <= lo) return ilo;
  if (v >= hi) return ihi;
  return (int64_t)v;
}

/* One element of any integer dtype (or bool), for loads and stores through memcpy: every
 * member starts at offset 0, so the first ir_dtype_size bytes are the element. */
typedef union Elem {
  int8_t i8;
  int16_t i16;
  int32_t i32;
  int64_t i64; /* i64, and u64's bits */
  uint8_t u8;  /* u8, bool */
  uint16_t u16;
  uint32_t u32;
} Elem;

/* Element i of an integer dtype or bool, widened; u64 as its bit pattern (0 for a dtype
 * that does not exist). */
static int64_t load_int(const char *p, DType dt, int64_t i) {
  size_t n = ir_dtype_size(dt);
  Elem e = {.i64 = 0}; /* the widest member: every byte */
  memcpy(&e, p + (int64_t)n * i, n);
  switch (dt) {
  case DT_I8: return e.i8;
  case DT_I16: return e.i16;
  case DT_I32: return e.i32;
  case DT_U8: return e.u8;
  case DT_U16: return e.u16;
  case DT_U32: return e.u32;
  case DT_BOOL: return e.u8 != 0;
  default: return e.i64; /* i64, u64 */
  }
}

/* Store v, already in dt's range (u64: its bit pattern), into element i. */
static void store_int(char *p, DType dt, int64_t i, int64_t v) {
  size_t n = ir_dtype_size(dt);
  Elem e;
  switch (dt) {
  case DT_I8: e.i8 = (int8_t)v; break;
  case DT_I16: e.i16 = (int16_t)v; break;
  case DT_I32: e.i32 = (int32_t)v; break;
  case DT_U8: e.u8 = (uint8_t)v; break;
  case DT_U16: e.u16 = (uint16_t)v; break;
  case DT_U32: e.u32 = (uint32_t)v; break;
  case DT_BOOL: e.u8 = v != 0; break;
  default: e.i64 = v; break; /* i64, u64 */
  }
  memcpy(p + (int64_t)n * i, &e, n);
}


/* Element i as a double, any dtype (u64 as its unsigned value, rounded to nearest even). */
double rt_get_f(const void *data, DType dt, int64_t i) {
  const char *p = data;
  switch (dt) {
  case DT_F32: {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  case DT_F64: {
    double d;
    memcpy(&d, p + 8 * i, 8);
    return d;
  }
  case DT_F16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return rt_f16_to_f32(h);
  }
  case DT_BF16: {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return rt_bf16_to_f32(h);
  }
  case DT_U64: return (double)(uint64_t)load_int(p, dt, i);
  default: return (double)load_int(p, dt, i); /* the other integers and bool */
  }
}

/* Element i as an int64, any dtype (floats truncate and saturate, NaN gives 0; u64 is its
 * bit pattern). */
int64_t rt_get_i(const void *data, DType dt, int64_t i) {
  if (ir_dtype_is_float(dt))
    return sat(rt_get_f(data, dt, i), -9223372036854775808.0, 9223372036854775808.0, INT64_MIN,
               INT64_MAX);
  return load_int(data, dt, i);
}

/* Store v into element i, rounding to the dtype (see runtime.h). */
void rt_set_f(void *data, DType dt, int64_t i, double v) {
  char *p = data;
  switch (dt) {
  case DT_F32: {
    float f = (float)v;
    memcpy(p + 4 * i, &f, 4);
    break;
  }
  case DT_F64: memcpy(p + 8 * i, &v, 8); break;
  case DT_F16: {
    uint16_t h = rt_f32_to_f16(oddf(v));
    memcpy(p + 2 * i, &h, 2);
    break;
  }
  case DT_BF16: {
    uint16_t h = rt_f32_to_bf16(oddf(v));
    memcpy(p + 2 * i, &h, 2);
    break;
  }
  case DT_BOOL: p[i] = v != 0; break;
  case DT_U64: { /* [0, 2^64 - 1]; a double in (0, 2^64) converts by truncation */
    uint64_t u = isnan(v) || v <= 0 ? 0 : v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
    store_int(p, dt, i, (int64_t)u);
    break;
  }
  default: { /* the other integers: (double)hi is exact but for i64's 2^63 - 1, which
                rounds to 2^63, the first value past the range, where sat saturates */
    int64_t lo, hi;
    ir_dtype_range(dt, &lo, &hi);
    store_int(p, dt, i, sat(v, (double)lo, (double)hi, lo, hi));
    break;
  }
  }
}

/* Store v into element i: integers saturate (u64 takes v's bits), one rounding for
 * floats. */
void rt_set_i(void *data, DType dt, int64_t i, int64_t v) {
  char *p = data;
  switch (dt) {
  case DT_F32: {
    float f = (float)v;
    memcpy(p + 4 * i, &f, 4);
    break;
  }
  case DT_F64: {
    double d = (double)v;
    memcpy(p + 8 * i, &d, 8);
    break;
  }
  case DT_F16:
  case DT_BF16: rt_set_f(data, dt, i, oddd(v)); break;
  case DT_BOOL:
  case DT_U64: store_int(p, dt, i, v); break;
  default: store_int(p, dt, i, ir_dtype_saturate(dt, v)); break;
  }
}

/* Store the unsigned value v into element i: integers saturate (u64 exact), one rounding
 * for floats. */
void rt_set_u(void *data, DType dt, int64_t i, uint64_t v) {
  if (v <= INT64_MAX) {
    rt_set_i(data, dt, i, (int64_t)v);
    return;
  }
  char *p = data;
  switch (dt) {
  case DT_F32: {
    float f = (float)v;
    memcpy(p + 4 * i, &f, 4);
    break;
  }
  case DT_F64: {
    double d = (double)v;
    memcpy(p + 8 * i, &d, 8);
    break;
  }
  case DT_F16:
  case DT_BF16: rt_set_f(data, dt, i, oddu(v)); break;
  case DT_U64: store_int(p, dt, i, (int64_t)v); break;
  default: rt_set_i(data, dt, i, INT64_MAX); break; /* past every other integer's range */
  }
}

/* ---- random fill --------------------------------------------------------------------- */

/* splitmix64: a full-period generator whose output depends only on the state. */
static uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Deterministic fill: floats are multiples of 2^-(p-1) in [-1, 1) for a p-bit
 * significand, so each is exact in its dtype; signed integers in [-8, 8), unsigned ones
 * in [0, 16) (the same draws plus 8); bools 0/1. */
void rt_fill_random(Tensor *t, uint64_t seed) {
  static const int bits[DT_COUNT] = {[DT_F32] = 24, [DT_F16] = 11, [DT_BF16] = 8, [DT_F64] = 53};
  DType dt = t->dtype;
  bool fl = ir_dtype_is_float(dt), in = ir_dtype_is_int(dt);
  int p = bits[dt];
  int64_t low = ir_dtype_is_unsigned(dt) ? 0 : -8;
  uint64_t s = seed;
  for (int64_t i = 0; i < t->numel; i++) {
    uint64_t r = next(&s);
    if (fl)
      rt_set_f(t->data, dt, i, ldexp((double)(r >> (64 - p)), 1 - p) - 1.0);
    else if (in)
      rt_set_i(t->data, dt, i, (int64_t)(r >> 60) + low);
    else if (dt == DT_BOOL)
      ((uint8_t *)t->data)[i] = (uint8_t)(r >> 63);
  }
}
