/* tests/unit/test_npy.c — .npy I/O, dtype conversion and element stores. It is one file,
 * longer than most, because its tables of values per dtype (thirteen dtypes, each at its
 * range's ends, in files and through the store functions) are the checks themselves, and
 * they share one small harness.
 *
 * Checks: every dtype round-trips through rt_npy_write / rt_npy_read byte for byte
 * (rank 0, zero-sized dims, rank 8) with a 64-byte-aligned version 1.0 header; the
 * reader's header dialects (versions 2.0/3.0, key order, quotes, spacing); f16 and bf16
 * conversions against bit patterns derived by hand from the IEEE definitions; integer
 * stores that truncate and saturate, for every integer width; f64 kept exactly and u64
 * carried as its bits (values >= 2^63 included); each dtype at the ends of its range
 * through a file with NumPy's descr; and that broken files are refused with the right
 * status and a message naming the problem, and that no truncation or byte mutation of
 * a valid file crashes the reader. Scratch files go to $TMPDIR (or /tmp).
 * The last line printed is "N passed, M failed"; the exit status is nonzero on failure. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../runtime/runtime.h"

typedef struct Suite {
  int passed, failed;
  char dir[512]; /* scratch directory */
} Suite;

#define CHECK(s, cond, ...)                                                                    \
  do {                                                                                         \
    if (cond) {                                                                                \
      (s)->passed++;                                                                           \
    } else {                                                                                   \
      (s)->failed++;                                                                           \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
      printf(__VA_ARGS__);                                                                     \
      printf("\n");                                                                            \
    }                                                                                          \
  } while (0)

/* A scratch path unique to this process. */
static const char *scratch(Suite *s, const char *tag, char *buf, size_t n) {
  snprintf(buf, n, "%s/dvm_test_npy.%ld.%s.npy", s->dir, (long)getpid(), tag);
  return buf;
}

/* Write raw bytes to path. */
static void putfile(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n) {
    perror(path);
    exit(2);
  }
  fclose(f);
}

/* Read a whole file (malloc'd); *n gets its size. */
static unsigned char *getfile(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)len + 1);
  *n = fread(p, 1, (size_t)len, f);
  fclose(f);
  return p;
}

/* Build a .npy image: prelude of `version` (1, 2 or 3), header text as given (no padding
 * added), then n data bytes. Returns its length in out (malloc'd). */
static size_t image(int version, const char *hdr, const void *data, size_t n,
                    unsigned char **out) {
  size_t hl = strlen(hdr), pre = version == 1 ? 10 : 12;
  unsigned char *p = malloc(pre + hl + n + 1);
  memcpy(p, "\x93NUMPY", 6);
  p[6] = (unsigned char)version;
  p[7] = 0;
  for (size_t i = 0; i < pre - 8; i++) p[8 + i] = (unsigned char)(hl >> (8 * i));
  memcpy(p + pre, hdr, hl);
  if (n) memcpy(p + pre + hl, data, n);
  *out = p;
  return pre + hl + n;
}

/* Write an image to path. */
static void putimage(const char *path, int version, const char *hdr, const void *data,
                     size_t n) {
  unsigned char *p;
  size_t len = image(version, hdr, data, n, &p);
  putfile(path, p, len);
  free(p);
}

/* ---- round trips ------------------------------------------------------------------- */

static void roundtrip(Suite *s) {
  static const int64_t shapes[][9] = {
      /* rank, dims... */
      {0}, {1, 3}, {1, 0}, {2, 2, 3}, {3, 2, 0, 4}, {2, 1, 1}, {8, 1, 2, 1, 3, 1, 2, 1, 2},
  };
  char path[600];
  scratch(s, "rt", path, sizeof path);
  for (int dt = 0; dt < DT_COUNT; dt++) {
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
      int rank = (int)shapes[k][0];
      const int64_t *shape = shapes[k] + 1;
      Tensor *a = NULL, *b = NULL;
      Err err = {0};
      CHECK(s, rt_tensor_new(dt, rank, shape, &a, &err) == DVM_OK, "%s", err.msg);
      if (!a) continue;
      rt_fill_random(a, 42 + k);
      size_t bytes = (size_t)a->numel * ir_dtype_size(dt);
      CHECK(s, rt_npy_write(path, a, &err) == DVM_OK, "%s", err.msg);
      CHECK(s, rt_npy_read(path, &b, &err) == DVM_OK, "%s", err.msg);
      if (b) {
        CHECK(s, b->dtype == a->dtype && b->rank == a->rank && b->numel == a->numel,
              "%s rank %d", ir_dtype_name(dt), rank);
        CHECK(s, memcmp(a->shape, b->shape, sizeof a->shape) == 0, "%s rank %d",
              ir_dtype_name(dt), rank);
        CHECK(s, bytes == 0 || memcmp(a->data, b->data, bytes) == 0, "%s rank %d data",
              ir_dtype_name(dt), rank);
      }
      /* the layout of the written file: version 1.0, data at a multiple of 64 */
      size_t n = 0;
      unsigned char *f = getfile(path, &n);
      size_t hl = f && n >= 10 ? (size_t)(f[8] | f[9] << 8) : 0;
      CHECK(s, f && n >= 10 && memcmp(f, "\x93NUMPY\x01\x00", 8) == 0, "prelude");
      CHECK(s, (10 + hl) % 64 == 0 && 10 + hl + bytes == n, "header %zu, file %zu", hl, n);
      CHECK(s, hl > 0 && 10 + hl <= n && f[9 + hl] == '\n', "header ends with a newline");
      if (dt == DT_BF16 && f && 10 + hl <= n) {
        f[9 + hl] = 0;
        CHECK(s, strstr((char *)f + 10, "'descr': '<V2'") != NULL, "%s", (char *)f + 10);
      }
      free(f);
      rt_tensor_free(a);
      rt_tensor_free(b);
    }
  }
  unlink(path);
}

/* Header dialects other writers produce. */
static void dialects(Suite *s) {
  static const struct {
    int version;
    const char *hdr;
    DType dt;
    int rank;
    int64_t d0;
    size_t bytes;
  } cases[] = {
      {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }\n", DT_I32, 1, 5, 20},
      {1, "{\"shape\": (5,), \"fortran_order\": False, \"descr\": \"<i4\"}", DT_I32, 1, 5, 20},
      {2, "{ 'fortran_order' :False,'shape':( 5 , ),'descr':'<i4' }    \n", DT_I32, 1, 5, 20},
      {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (5L,)}\n", DT_I32, 1, 5, 20},
      {1, "{'descr': '|V2', 'fortran_order': False, 'shape': (10,), }\n", DT_BF16, 1, 10, 20},
      {1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4, 5), }\n", DT_F16, 2, 4, 40},
      {1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2, 5)}\n", DT_BOOL, 3, 2, 20},
      {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }\n", DT_I64, 0, 0, 8},
      {1, "{'descr': '|i1', 'fortran_order': False, 'shape': (7,), }\n", DT_I8, 1, 7, 7},
      {1, "{'descr': '<i1', 'fortran_order': False, 'shape': (7,), }\n", DT_I8, 1, 7, 7},
      {1, "{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }\n", DT_U8, 1, 7, 7},
      {1, "{'descr': '<u1', 'fortran_order': False, 'shape': (7,), }\n", DT_U8, 1, 7, 7},
      {2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n", DT_F64, 2, 2, 32},
      {1, "{'shape': (3,), 'descr': '<u8', 'fortran_order': False}\n", DT_U64, 1, 3, 24},
  };
  char path[600], data[40];
  scratch(s, "dialect", path, sizeof path);
  for (int i = 0; i < 40; i++) data[i] = (char)(i % 2);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    putimage(path, cases[k].version, cases[k].hdr, data, cases[k].bytes);
    Tensor *t = NULL;
    Err err = {0};
    dvm_status st = rt_npy_read(path, &t, &err);
    CHECK(s, st == DVM_OK, "case %zu: %s", k, err.msg);
    if (t) {
      CHECK(s,
            t->dtype == cases[k].dt && t->rank == cases[k].rank &&
                (t->rank == 0 || t->shape[0] == cases[k].d0),
            "case %zu", k);
      rt_tensor_free(t);
    }
  }
  /* a bool file with bytes other than 0/1 reads as 0/1 */
  unsigned char b[4] = {0, 1, 2, 255};
  putimage(path, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }\n", b, 4);
  Tensor *t = NULL;
  Err err = {0};
  CHECK(s, rt_npy_read(path, &t, &err) == DVM_OK, "%s", err.msg);
  if (t) {
    const unsigned char *p = t->data;
    CHECK(s, p[0] == 0 && p[1] == 1 && p[2] == 1 && p[3] == 1, "bools normalized");
    rt_tensor_free(t);
  }
  unlink(path);
}

/* Write t to path and read it back; checks the header names descr. NULL on failure. */
static Tensor *through_file(Suite *s, const char *path, const Tensor *t, const char *descr) {
  Tensor *b = NULL;
  Err err = {0};
  CHECK(s, rt_npy_write(path, t, &err) == DVM_OK, "%s", err.msg);
  CHECK(s, rt_npy_read(path, &b, &err) == DVM_OK, "%s", err.msg);
  size_t n = 0;
  unsigned char *f = getfile(path, &n);
  char want[32];
  snprintf(want, sizeof want, "'descr': '%s'", descr);
  if (f && n > 10) {
    f[n - 1] = 0; /* the header is text; stop at the file's end */
    CHECK(s, strstr((char *)f + 10, want) != NULL, "%s: header %.80s", descr, (char *)f + 10);
  }
  free(f);
  if (b)
    CHECK(s, b->dtype == t->dtype && b->numel == t->numel, "%s: dtype %d, %lld elements", descr,
          (int)b->dtype, (long long)b->numel);
  return b;
}

/* Each dtype added after bool, at the ends of its range, through a file and back with
 * NumPy's descr: the bytes come back unchanged and read as the values stored. */
static void extremes(Suite *s) {
  static const struct {
    DType dt;
    const char *descr;
    int64_t v[5]; /* as rt_get_i reads them: a u64 element as its bits */
  } ints[] = {
      {DT_I8, "|i1", {INT8_MIN, INT8_MAX, -1, 0, 1}},
      {DT_I16, "<i2", {INT16_MIN, INT16_MAX, -1, 0, 256}},
      {DT_U8, "|u1", {0, UINT8_MAX, 1, 127, 128}},
      {DT_U16, "<u2", {0, UINT16_MAX, 1, 255, 32768}},
      {DT_U32, "<u4", {0, UINT32_MAX, 1, 0x7fffffff, 0x80000000}},
      /* 0, 2^64 - 1, 2^63, 2^63 - 1, 2^63 + 1 */
      {DT_U64, "<u8", {0, -1, INT64_MIN, INT64_MAX, INT64_MIN + 1}},
      {DT_I64, "<i8", {INT64_MIN, INT64_MAX, -1, 0, 1}},
      {DT_I32, "<i4", {INT32_MIN, INT32_MAX, -1, 0, 1}},
  };
  char path[600];
  scratch(s, "ext", path, sizeof path);
  int64_t five[1] = {5};
  Err err = {0};
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
    DType dt = ints[k].dt;
    Tensor *a = NULL, *b = NULL;
    if (rt_tensor_new(dt, 1, five, &a, &err)) {
      CHECK(s, 0, "%s", err.msg);
      continue;
    }
    for (int i = 0; i < 5; i++) rt_set_i(a->data, dt, i, ints[k].v[i]);
    for (int i = 0; i < 5; i++)
      CHECK(s, rt_get_i(a->data, dt, i) == ints[k].v[i], "%s[%d] stored %lld, reads %lld",
            ints[k].descr, i, (long long)ints[k].v[i], (long long)rt_get_i(a->data, dt, i));
    if ((b = through_file(s, path, a, ints[k].descr))) {
      CHECK(s, memcmp(a->data, b->data, 5 * ir_dtype_size(dt)) == 0, "%s: bytes", ints[k].descr);
      for (int i = 0; i < 5; i++)
        CHECK(s, rt_get_i(b->data, dt, i) == ints[k].v[i], "%s[%d] read back %lld", ints[k].descr, i,
              (long long)rt_get_i(b->data, dt, i));
    }
    if (dt == DT_U64 && b) { /* the values, not only the bits */
      const uint64_t *u = b->data;
      CHECK(s, u[1] == UINT64_MAX && u[2] == 0x8000000000000000u && u[4] == 0x8000000000000001u,
            "u64 values %llx %llx %llx", (unsigned long long)u[1], (unsigned long long)u[2],
            (unsigned long long)u[4]);
      CHECK(s, rt_get_f(b->data, dt, 1) == 18446744073709551615.0 && rt_get_f(b->data, dt, 2) == 0x1p63,
            "u64 as doubles %a %a", rt_get_f(b->data, dt, 1), rt_get_f(b->data, dt, 2));
    }
    rt_tensor_free(a);
    rt_tensor_free(b);
  }

  /* f64: the extremes, subnormals, signed zero, infinities and a NaN's payload */
  static const uint64_t f64[] = {
      0x7fefffffffffffffu, /* DBL_MAX */
      0xffefffffffffffffu, /* -DBL_MAX */
      0x0000000000000001u, /* the smallest subnormal */
      0x0010000000000000u, /* DBL_MIN */
      0x8000000000000000u, /* -0.0 */
      0x7ff0000000000000u, /* inf */
      0xfff0000000000000u, /* -inf */
      0x7ff8000000000123u, /* a quiet NaN with a payload */
      0x3fb999999999999au, /* 0.1: not an f32 */
      0x4340000000000001u, /* 2^54 + 2: not an f32, past every integer's exactness */
  };
  enum { NF = sizeof f64 / sizeof f64[0] };
  int64_t nf[1] = {NF};
  Tensor *a = NULL, *b = NULL;
  if (rt_tensor_new(DT_F64, 1, nf, &a, &err)) {
    CHECK(s, 0, "%s", err.msg);
    return;
  }
  for (int i = 0; i < NF; i++) {
    double d;
    memcpy(&d, &f64[i], 8);
    rt_set_f(a->data, DT_F64, i, d);
    double back = rt_get_f(a->data, DT_F64, i);
    uint64_t bits;
    memcpy(&bits, &back, 8);
    CHECK(s, bits == f64[i], "f64 0x%016llx stored and read as 0x%016llx", (unsigned long long)f64[i],
          (unsigned long long)bits);
  }
  if ((b = through_file(s, path, a, "<f8")))
    CHECK(s, memcmp(a->data, b->data, sizeof f64) == 0 && memcmp(b->data, f64, sizeof f64) == 0, "f64 bytes");
  rt_tensor_free(a);
  rt_tensor_free(b);
  unlink(path);
}

/* ---- conversions ------------------------------------------------------------------- */

static float fbits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint16_t store16(DType dt, double v) {
  uint16_t h;
  rt_set_f(&h, dt, 0, v);
  return h;
}

static void halves(Suite *s) {
  /* binary16: sign 1, exponent 5 (bias 15), fraction 10 */
  static const struct {
    double v;
    uint16_t h;
  } f16[] = {
      {1.0, 0x3c00},       /* 0 01111 0000000000 */
      {-2.5, 0xc100},      /* 1 10000 0100000000: 1.25 * 2^1 */
      {65504.0, 0x7bff},   /* (2 - 2^-10) * 2^15, the largest finite */
      {0x1p-24, 0x0001},   /* the smallest subnormal */
      {0x1p-14, 0x0400},   /* the smallest normal */
      {0x3ffp-24, 0x03ff}, /* the largest subnormal */
      {-0.0, 0x8000},
      {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},
      {1.0 + 0x1p-11, 0x3c00},           /* halfway between 0x3c00 and 0x3c01: even is 0x3c00 */
      {1.0 + 3 * 0x1p-11, 0x3c02},       /* halfway between 0x3c01 and 0x3c02: even is 0x3c02 */
      {1.0 + 0x1p-11 + 0x1p-40, 0x3c01}, /* just above halfway (lost in f32): rounds up */
      {65520.0, 0x7c00},                 /* halfway between 65504 and 2^16: even is infinity */
      {65519.0, 0x7bff},
      {0x1p-25, 0x0000}, /* halfway between 0 and 2^-24: even is 0 */
      {0x3p-26, 0x0001}, /* 1.5 * 2^-25 rounds up */
      {0x3p-25, 0x0002}, /* 1.5 * 2^-24: halfway, even is 2 */
      {1e10, 0x7c00},
  };
  for (size_t k = 0; k < sizeof f16 / sizeof f16[0]; k++) {
    uint16_t h = store16(DT_F16, f16[k].v);
    CHECK(s, h == f16[k].h, "f16(%a) = 0x%04x, want 0x%04x", f16[k].v, h, f16[k].h);
    if (fabs(f16[k].v) <= 65504 && f16[k].v == rt_f16_to_f32(f16[k].h))
      CHECK(s, rt_f32_to_f16((float)f16[k].v) == f16[k].h, "f32 path %a", f16[k].v);
  }
  CHECK(s, rt_f16_to_f32(0x0001) == 0x1p-24f, "0x0001");
  CHECK(s, rt_f16_to_f32(0x03ff) == 0x3ffp-24f, "0x03ff");
  CHECK(s, rt_f16_to_f32(0x7bff) == 65504.0f, "0x7bff");
  CHECK(s, rt_f16_to_f32(0xc100) == -2.5f, "0xc100");
  CHECK(s, rt_f16_to_f32(0x3555) == 0x1.554p-2f, "0x3555");
  CHECK(s, isinf(rt_f16_to_f32(0x7c00)) && rt_f16_to_f32(0xfc00) < 0, "inf");
  CHECK(s, isnan(rt_f16_to_f32(0x7e00)) && isnan(rt_f16_to_f32(0x7c01)), "nan in");
  uint16_t n = store16(DT_F16, NAN);
  CHECK(s, (n & 0x7c00) == 0x7c00 && (n & 0x3ff), "nan out 0x%04x", n);
  n = rt_f32_to_f16(fbits(0x7f800001)); /* a NaN whose payload is below f16's fraction */
  CHECK(s, (n & 0x7c00) == 0x7c00 && (n & 0x3ff), "low-payload nan 0x%04x", n);
  for (uint32_t h = 0; h < 0x10000; h++) { /* every half survives f32 and back */
    float f = rt_f16_to_f32((uint16_t)h);
    if (!isnan(f) && rt_f32_to_f16(f) != h) {
      CHECK(s, 0, "half 0x%04x does not round-trip", h);
      break;
    }
  }

  /* bfloat16: the top half of an f32: sign 1, exponent 8 (bias 127), fraction 7 */
  static const struct {
    double v;
    uint16_t h;
  } bf[] = {
      {1.0, 0x3f80},
      {-2.5, 0xc020},
      {65504.0, 0x4780},  /* (2 - 2^-10) * 2^15 rounds to 2^16 */
      {0x1p-133, 0x0001}, /* the smallest subnormal */
      {INFINITY, 0x7f80},
      {-0.0, 0x8000},
      {1.0 + 0x1p-8, 0x3f80},           /* halfway: even is 0x3f80 */
      {1.0 + 3 * 0x1p-8, 0x3f82},       /* halfway: even is 0x3f82 */
      {1.0 + 0x1p-8 + 0x1p-30, 0x3f81}, /* above halfway (lost in f32): rounds up */
      {0x1.fep127, 0x7f7f},             /* the largest finite */
      {FLT_MAX, 0x7f80},                /* above the last halfway: infinity */
  };
  for (size_t k = 0; k < sizeof bf / sizeof bf[0]; k++) {
    uint16_t h = store16(DT_BF16, bf[k].v);
    CHECK(s, h == bf[k].h, "bf16(%a) = 0x%04x, want 0x%04x", bf[k].v, h, bf[k].h);
  }
  CHECK(s, rt_bf16_to_f32(0xc020) == -2.5f && rt_bf16_to_f32(0x0001) == 0x1p-133f, "bf16 in");
  n = store16(DT_BF16, NAN);
  CHECK(s, (n & 0x7f80) == 0x7f80 && (n & 0x7f), "bf16 nan 0x%04x", n);
  n = rt_f32_to_bf16(fbits(0x7f800001));
  CHECK(s, (n & 0x7f80) == 0x7f80 && (n & 0x7f), "bf16 low-payload nan 0x%04x", n);

  /* integers to half floats round once: 2^24 + 2^16 + 1 is above the bf16 halfway point
   * 2^24 + 2^16, though f32 rounds it to exactly that */
  uint16_t h;
  rt_set_i(&h, DT_BF16, 0, (1 << 24) + (1 << 16) + 1);
  CHECK(s, h == 0x4b81, "bf16(2^24+2^16+1) = 0x%04x, want 0x4b81", h);
  rt_set_i(&h, DT_F16, 0, 2049); /* halfway between 2048 and 2050: even is 2048 */
  CHECK(s, h == 0x6800, "f16(2049) = 0x%04x", h);
  rt_set_i(&h, DT_F16, 0, INT64_MAX);
  CHECK(s, h == 0x7c00, "f16(INT64_MAX) = 0x%04x", h);
  float f;
  rt_set_i(&f, DT_F32, 0, (1 << 24) + 1);
  CHECK(s, f == 16777216.0f, "f32(2^24+1)");
}

/* ---- integer stores ---------------------------------------------------------------- */

static void integers(Suite *s) {
  static const struct {
    double v;
    int64_t i32, i64, b;
  } cases[] = {
      {3.9, 3, 3, 1},
      {-3.9, -3, -3, 1},
      {-0.5, 0, 0, 1},
      {-0.0, 0, 0, 0},
      {0.0, 0, 0, 0},
      {2147483647.5, INT32_MAX, 2147483647, 1},
      {3e9, INT32_MAX, 3000000000, 1},
      {-3e9, INT32_MIN, -3000000000, 1},
      {-2147483648.9, INT32_MIN, -2147483648, 1},
      {1e19, INT32_MAX, INT64_MAX, 1},
      {-1e19, INT32_MIN, INT64_MIN, 1},
      {0x1p63, INT32_MAX, INT64_MAX, 1},
      {-0x1p63, INT32_MIN, INT64_MIN, 1},
      {0x1.fffffffffffffp62, INT32_MAX, 0x7ffffffffffffc00, 1},
      {INFINITY, INT32_MAX, INT64_MAX, 1},
      {-INFINITY, INT32_MIN, INT64_MIN, 1},
      {NAN, 0, 0, 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int32_t a;
    int64_t b;
    uint8_t c;
    rt_set_f(&a, DT_I32, 0, cases[k].v);
    rt_set_f(&b, DT_I64, 0, cases[k].v);
    rt_set_f(&c, DT_BOOL, 0, cases[k].v);
    CHECK(s, a == cases[k].i32, "i32(%g) = %d", cases[k].v, a);
    CHECK(s, b == cases[k].i64, "i64(%g) = %lld", cases[k].v, (long long)b);
    CHECK(s, c == cases[k].b, "bool(%g) = %d", cases[k].v, c);
  }
  int32_t a;
  rt_set_i(&a, DT_I32, 0, (int64_t)1 << 40);
  CHECK(s, a == INT32_MAX, "i32 from i64 saturates");
  rt_set_i(&a, DT_I32, 0, -((int64_t)1 << 40));
  CHECK(s, a == INT32_MIN, "i32 from i64 saturates");
  float f = 3.7f;
  CHECK(s, rt_get_i(&f, DT_F32, 0) == 3, "get_i truncates");
  uint16_t h = 0x7e00;
  CHECK(s, rt_get_i(&h, DT_F16, 0) == 0, "get_i NaN");
  int64_t big = INT64_MIN;
  CHECK(s, rt_get_i(&big, DT_I64, 0) == INT64_MIN, "get_i exact");
  dvm_tensor *pt; /* the public element accessors convert the same way */
  int64_t one = 1;
  float pf = -2.9f;
  CHECK(s, dvm_tensor_wrap(DVM_F32, 1, &one, &pf, &pt) == DVM_OK, "%s", dvm_last_error());
  CHECK(s, dvm_tensor_get_i64(pt, 0) == -2, "dvm_tensor_get_i64 truncates");
  dvm_tensor_set_i64(pt, 0, 5);
  CHECK(s, pf == 5.0f && dvm_tensor_get_f64(pt, 0) == 5.0, "dvm_tensor_set_i64");
  dvm_tensor_destroy(pt);

  /* random fill: in range, deterministic */
  int64_t shape[1] = {1000};
  for (int dt = 0; dt < DT_COUNT; dt++) {
    Tensor *x, *y;
    Err err;
    if (rt_tensor_new(dt, 1, shape, &x, &err) || rt_tensor_new(dt, 1, shape, &y, &err)) {
      CHECK(s, 0, "%s", err.msg);
      return;
    }
    rt_fill_random(x, 7);
    rt_fill_random(y, 7);
    size_t bytes = 1000 * ir_dtype_size(dt);
    CHECK(s, memcmp(x->data, y->data, bytes) == 0, "%s: same seed, same values",
          ir_dtype_name(dt));
    double lo = 1e9, hi = -1e9;
    for (int i = 0; i < 1000; i++) {
      double v = rt_get_f(x->data, dt, i);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    if (ir_dtype_is_float(dt))
      CHECK(s, lo >= -1 && hi < 1 && lo < -0.9 && hi > 0.9, "%s", ir_dtype_name(dt));
    else if (dt == DT_BOOL)
      CHECK(s, lo == 0 && hi == 1, "bool");
    else if (ir_dtype_is_unsigned(dt))
      CHECK(s, lo == 0 && hi == 15, "%s [%g, %g]", ir_dtype_name(dt), lo, hi);
    else
      CHECK(s, lo == -8 && hi == 7, "%s [%g, %g]", ir_dtype_name(dt), lo, hi);
    rt_fill_random(y, 8);
    CHECK(s, memcmp(x->data, y->data, bytes) != 0, "different seeds");
    rt_tensor_free(x);
    rt_tensor_free(y);
  }
  /* known first values pin the generator across machines */
  Tensor *t;
  Err err;
  int64_t four[1] = {4};
  if (!rt_tensor_new(DT_I64, 1, four, &t, &err)) {
    rt_fill_random(t, 0);
    const int64_t *v = t->data;
    /* splitmix64(0) outputs 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f,
     * 0xf88bb8a8724c81ec: the top 4 bits minus 8 */
    CHECK(s, v[0] == 6 && v[1] == -2 && v[2] == -8 && v[3] == 7, "%lld %lld %lld %lld",
          (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3]);
    rt_tensor_free(t);
  }
}

/* ---- the integer widths and f64 ------------------------------------------------------ */

/* Stores of doubles to i8 i16 u8 u16 u32 truncate and saturate (NaN 0), as i32's do;
 * stores of int64s saturate; f64 keeps what a double holds. */
static void widths(Suite *s) {
  static const struct {
    double v;
    int64_t i8, i16, u8, u16, u32;
  } cases[] = {
      {3.9, 3, 3, 3, 3, 3},
      {-3.9, -3, -3, 0, 0, 0},
      {-0.5, 0, 0, 0, 0, 0},
      {-0.0, 0, 0, 0, 0, 0},
      {127.9, 127, 127, 127, 127, 127},
      {128.0, 127, 128, 128, 128, 128},
      {-128.9, -128, -128, 0, 0, 0},
      {-129.0, -128, -129, 0, 0, 0},
      {255.99, 127, 255, 255, 255, 255},
      {256.0, 127, 256, 255, 256, 256},
      {32767.5, 127, 32767, 255, 32767, 32767},
      {-32768.5, -128, -32768, 0, 0, 0},
      {-32769.0, -128, -32768, 0, 0, 0},
      {65535.9, 127, 32767, 255, 65535, 65535},
      {65536.0, 127, 32767, 255, 65535, 65536},
      {4294967295.5, 127, 32767, 255, 65535, 4294967295},
      {4294967296.0, 127, 32767, 255, 65535, 4294967295},
      {1e300, 127, 32767, 255, 65535, 4294967295},
      {-1e300, -128, -32768, 0, 0, 0},
      {INFINITY, 127, 32767, 255, 65535, 4294967295},
      {-INFINITY, -128, -32768, 0, 0, 0},
      {NAN, 0, 0, 0, 0, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int8_t a;
    int16_t b;
    uint8_t c;
    uint16_t d;
    uint32_t e;
    rt_set_f(&a, DT_I8, 0, cases[k].v);
    rt_set_f(&b, DT_I16, 0, cases[k].v);
    rt_set_f(&c, DT_U8, 0, cases[k].v);
    rt_set_f(&d, DT_U16, 0, cases[k].v);
    rt_set_f(&e, DT_U32, 0, cases[k].v);
    CHECK(s, a == cases[k].i8, "i8(%g) = %d", cases[k].v, a);
    CHECK(s, b == cases[k].i16, "i16(%g) = %d", cases[k].v, b);
    CHECK(s, c == cases[k].u8, "u8(%g) = %d", cases[k].v, c);
    CHECK(s, d == cases[k].u16, "u16(%g) = %d", cases[k].v, d);
    CHECK(s, e == cases[k].u32, "u32(%g) = %u", cases[k].v, e);
    /* and they read back as those values */
    CHECK(s, rt_get_i(&a, DT_I8, 0) == a && rt_get_f(&a, DT_I8, 0) == a, "i8 reads");
    CHECK(s, rt_get_i(&b, DT_I16, 0) == b && rt_get_f(&b, DT_I16, 0) == b, "i16 reads");
    CHECK(s, rt_get_i(&c, DT_U8, 0) == c && rt_get_f(&c, DT_U8, 0) == c, "u8 reads");
    CHECK(s, rt_get_i(&d, DT_U16, 0) == d && rt_get_f(&d, DT_U16, 0) == d, "u16 reads");
    CHECK(s, rt_get_i(&e, DT_U32, 0) == e && rt_get_f(&e, DT_U32, 0) == e, "u32 reads");
  }

  /* int64 stores saturate */
  static const struct {
    DType dt;
    int64_t v, want;
  } sat[] = {
      {DT_I8, -200, INT8_MIN},       {DT_I8, 200, INT8_MAX},          {DT_I8, INT64_MIN, INT8_MIN},
      {DT_I8, -128, -128},           {DT_I16, 40000, INT16_MAX},      {DT_I16, -40000, INT16_MIN},
      {DT_U8, -5, 0},                {DT_U8, 300, UINT8_MAX},         {DT_U8, 255, 255},
      {DT_U16, -1, 0},               {DT_U16, 70000, UINT16_MAX},     {DT_U32, -1, 0},
      {DT_U32, INT64_MAX, UINT32_MAX}, {DT_U32, 4294967295, UINT32_MAX}, {DT_U32, 4294967296, UINT32_MAX},
      {DT_I32, (int64_t)1 << 40, INT32_MAX},
  };
  for (size_t k = 0; k < sizeof sat / sizeof sat[0]; k++) {
    uint64_t buf = 0;
    rt_set_i(&buf, sat[k].dt, 0, sat[k].v);
    CHECK(s, rt_get_i(&buf, sat[k].dt, 0) == sat[k].want, "%s(%lld) = %lld, want %lld",
          ir_dtype_name(sat[k].dt), (long long)sat[k].v, (long long)rt_get_i(&buf, sat[k].dt, 0),
          (long long)sat[k].want);
  }
  int8_t i8 = -1;
  CHECK(s, rt_get_f(&i8, DT_I8, 0) == -1.0 && rt_get_i(&i8, DT_I8, 0) == -1, "i8 -1 sign-extends");
  uint16_t u16 = 0xffff;
  CHECK(s, rt_get_i(&u16, DT_U16, 0) == 65535, "u16 0xffff zero-extends");
  uint32_t u32 = 0xffffffffu;
  CHECK(s, rt_get_i(&u32, DT_U32, 0) == 4294967295 && rt_get_f(&u32, DT_U32, 0) == 4294967295.0,
        "u32 max");

  /* f64: exact from doubles, one rounding from int64s, and reads that saturate */
  double d;
  rt_set_f(&d, DT_F64, 0, 0.1);
  CHECK(s, d == 0.1, "f64 keeps 0.1 (%a)", d);
  rt_set_i(&d, DT_F64, 0, ((int64_t)1 << 53) + 1);
  CHECK(s, d == 0x1p53, "f64(2^53 + 1) ties to even: %a", d);
  rt_set_i(&d, DT_F64, 0, ((int64_t)1 << 53) + 3);
  CHECK(s, d == 0x1p53 + 4, "f64(2^53 + 3) ties to even: %a", d);
  rt_set_i(&d, DT_F64, 0, INT64_MAX);
  CHECK(s, d == 0x1p63, "f64(INT64_MAX) = %a", d);
  d = -2.7;
  CHECK(s, rt_get_i(&d, DT_F64, 0) == -2, "f64 get_i truncates");
  d = 1e300;
  CHECK(s, rt_get_i(&d, DT_F64, 0) == INT64_MAX, "f64 get_i saturates");
  d = NAN;
  CHECK(s, rt_get_i(&d, DT_F64, 0) == 0, "f64 get_i NaN");
  float f;
  rt_set_f(&f, DT_F32, 0, 0x1.000001p0); /* 1 + 2^-24: halfway, even is 1 */
  CHECK(s, f == 1.0f, "f32 from f64 rounds to nearest even: %a", (double)f);
}

/* u64: carried in an int64 as its bits by rt_get_i / rt_set_i; its value for rt_get_f,
 * rt_set_f and rt_set_u. */
static void unsigned64(Suite *s) {
  uint64_t u = UINT64_MAX;
  CHECK(s, rt_get_f(&u, DT_U64, 0) == 18446744073709551615.0, "rt_get_f(u64 max) = %.17g",
        rt_get_f(&u, DT_U64, 0));
  CHECK(s, rt_get_f(&u, DT_U64, 0) == 0x1p64, "u64 max rounds to 2^64");
  CHECK(s, rt_get_i(&u, DT_U64, 0) == -1, "rt_get_i(u64 max) is its bits: -1");
  u = 0x8000000000000000u;
  CHECK(s, rt_get_i(&u, DT_U64, 0) == INT64_MIN && rt_get_f(&u, DT_U64, 0) == 0x1p63, "u64 2^63");
  u = 0x8000000000000401u; /* 2^63 + 2^10 + 1: above the tie, rounds up to 2^63 + 2^11 */
  CHECK(s, rt_get_f(&u, DT_U64, 0) == 0x1p63 + 0x1p11, "u64 to double rounds to nearest: %a",
        rt_get_f(&u, DT_U64, 0));
  rt_set_i(&u, DT_U64, 0, -1);
  CHECK(s, u == UINT64_MAX, "rt_set_i(u64, -1) stores the bits: 0x%llx", (unsigned long long)u);
  rt_set_i(&u, DT_U64, 0, INT64_MIN);
  CHECK(s, u == 0x8000000000000000u, "rt_set_i(u64, INT64_MIN) = 2^63");
  rt_set_i(&u, DT_U64, 0, 12345);
  CHECK(s, u == 12345, "rt_set_i(u64, 12345)");

  static const struct {
    double v;
    uint64_t want;
  } fs[] = {
      {3.9, 3},
      {-3.9, 0},
      {-0.0, 0},
      {-1e300, 0},
      {-INFINITY, 0},
      {NAN, 0},
      {4294967296.5, 4294967296},
      {0x1p63, 0x8000000000000000u},
      {0x1.0000000000001p63, 0x8000000000000800u},
      {1.8e19, 18000000000000000000u},
      {0x1.fffffffffffffp63, 0xfffffffffffff800u}, /* the largest double below 2^64 */
      {0x1p64, UINT64_MAX},
      {1e30, UINT64_MAX},
      {INFINITY, UINT64_MAX},
  };
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
    rt_set_f(&u, DT_U64, 0, fs[k].v);
    CHECK(s, u == fs[k].want, "u64(%a) = %llu, want %llu", fs[k].v, (unsigned long long)u,
          (unsigned long long)fs[k].want);
  }

  /* rt_set_u: an unsigned value to any dtype, one rounding */
  uint64_t big = 0x8000008000000001u; /* 2^63 + 2^39 + 1: a double has 2^63 + 2^39, a tie for f32 */
  float f;
  rt_set_u(&f, DT_F32, 0, big);
  CHECK(s, f == 0x1p63f + 0x1p40f, "f32(2^63 + 2^39 + 1) rounds up once: %a", (double)f);
  uint16_t h;
  rt_set_u(&h, DT_BF16, 0, 0x8080000000000001u); /* 2^63 + 2^55 + 1 */
  CHECK(s, h == 0x5f01, "bf16(2^63 + 2^55 + 1) = 0x%04x, want 0x5f01", h);
  rt_set_u(&h, DT_F16, 0, big);
  CHECK(s, h == 0x7c00, "f16(2^63 + ...) = 0x%04x, want infinity", h);
  double d;
  rt_set_u(&d, DT_F64, 0, UINT64_MAX);
  CHECK(s, d == 0x1p64, "f64(2^64 - 1) = %a", d);
  rt_set_u(&u, DT_U64, 0, UINT64_MAX);
  CHECK(s, u == UINT64_MAX, "rt_set_u(u64) exact");
  int32_t i32;
  rt_set_u(&i32, DT_I32, 0, big);
  CHECK(s, i32 == INT32_MAX, "i32 from u64 2^63 + ... saturates");
  int64_t i64;
  rt_set_u(&i64, DT_I64, 0, big);
  CHECK(s, i64 == INT64_MAX, "i64 from u64 2^63 + ... saturates");
  uint8_t u8;
  rt_set_u(&u8, DT_U8, 0, big);
  CHECK(s, u8 == UINT8_MAX, "u8 saturates");
  rt_set_u(&u8, DT_BOOL, 0, big);
  CHECK(s, u8 == 1, "bool");
  rt_set_u(&u8, DT_U8, 0, 200);
  CHECK(s, u8 == 200, "u8 200");

  /* the public accessors convert the same way */
  dvm_tensor *t;
  int64_t one = 1;
  u = UINT64_MAX;
  CHECK(s, dvm_tensor_wrap(DVM_U64, 1, &one, &u, &t) == DVM_OK, "%s", dvm_last_error());
  CHECK(s, dvm_tensor_get_f64(t, 0) == 18446744073709551615.0 && dvm_tensor_get_i64(t, 0) == -1,
        "public u64 reads");
  dvm_tensor_set_i64(t, 0, INT64_MIN);
  CHECK(s, u == 0x8000000000000000u, "public u64 store");
  dvm_tensor_destroy(t);
}

/* ---- tensors ------------------------------------------------------------------------ */

static void tensors(Suite *s) {
  Tensor *t = NULL;
  Err err = {0};
  int64_t neg[2] = {2, -1}, huge[3] = {INT64_MAX / 2, 3, 1},
          zero[3] = {INT64_MAX, INT64_MAX, 0};
  int64_t bytesonly[2] = {INT64_MAX / 3, 1};
  CHECK(s,
        rt_tensor_new(DT_F32, 2, neg, &t, &err) == DVM_ERR_SHAPE &&
            strstr(err.msg, "f32[2, -1]"),
        "%s", err.msg);
  CHECK(s,
        rt_tensor_new(DT_F32, 3, huge, &t, &err) == DVM_ERR_OVERFLOW &&
            strstr(err.msg, "overflow"),
        "%s", err.msg);
  CHECK(s,
        rt_tensor_new(DT_F32, 2, bytesonly, &t, &err) == DVM_ERR_OVERFLOW &&
            strstr(err.msg, "f32[3074457345618258602, 1]"),
        "%s", err.msg);
  CHECK(s, rt_tensor_new(DT_F32, 9, huge, &t, &err) != DVM_OK, "rank 9");
  CHECK(s, rt_tensor_new(DT_F32, -1, huge, &t, &err) != DVM_OK, "rank -1");
  CHECK(s, rt_tensor_new(DT_F32, 3, zero, &t, &err) == DVM_ERR_OVERFLOW, "NumPy's rule");
  CHECK(s,
        rt_numel(2, neg) == -1 && rt_numel(3, huge) == -1 &&
            rt_numel(2, bytesonly) == INT64_MAX / 3 && rt_numel(0, NULL) == 1,
        "rt_numel");
  int64_t z[2] = {0, 5};
  CHECK(s, rt_tensor_new(DT_I64, 2, z, &t, &err) == DVM_OK && t && t->data && t->numel == 0,
        "zero-sized");
  rt_tensor_free(t);

  dvm_tensor *p = NULL;
  int64_t shp[2] = {2, 3};
  CHECK(s,
        dvm_tensor_create(DVM_BF16, 2, shp, &p) == DVM_OK && dvm_tensor_numel(p) == 6 &&
            dvm_tensor_rank(p) == 2 && dvm_tensor_shape(p)[1] == 3 &&
            dvm_tensor_dtype(p) == DVM_BF16 && *dvm_last_error() == 0,
        "create");
  dvm_tensor_destroy(p);
  CHECK(s,
        dvm_tensor_create(DVM_F32, 2, neg, &p) == DVM_ERR_SHAPE &&
            strstr(dvm_last_error(), "-1"),
        "last error: %s", dvm_last_error());
  float buf[6];
  CHECK(s, dvm_tensor_wrap(DVM_F32, 2, shp, buf, &p) == DVM_OK && dvm_tensor_data(p) == buf,
        "wrap");
  dvm_tensor_destroy(p);
  CHECK(s, dvm_tensor_wrap(DVM_F32, 2, shp, NULL, &p) == DVM_ERR_USAGE, "wrap NULL");
  CHECK(s,
        !strcmp(dvm_dtype_name(DVM_BF16), "bf16") && dvm_dtype_name(DVM_DTYPE_COUNT) == NULL &&
            dvm_dtype_size(DVM_I64) == 8 && dvm_dtype_size(DVM_BOOL) == 1,
        "dtype names");
  char path[600];
  scratch(s, "api", path, sizeof path);
  CHECK(s, dvm_tensor_create(DVM_I32, 2, shp, &p) == DVM_OK, "create");
  dvm_tensor_fill_random(p, 3);
  dvm_tensor *q = NULL;
  CHECK(s,
        dvm_tensor_save_npy(path, p) == DVM_OK && dvm_tensor_load_npy(path, &q) == DVM_OK &&
            memcmp(dvm_tensor_data(p), dvm_tensor_data(q), 24) == 0,
        "%s", dvm_last_error());
  dvm_tensor_destroy(p);
  dvm_tensor_destroy(q);
  unlink(path);
}

/* ---- broken files ------------------------------------------------------------------ */

#define H(descr, fortran, shape)                                                               \
  "{'descr': '" descr "', 'fortran_order': " fortran ", 'shape': " shape ", }\n"

static void broken(Suite *s) {
  static const struct {
    const char *name;
    int version;
    const char *hdr;
    size_t data; /* bytes of data after the header */
    long cut;    /* if > 0: keep only this many bytes of the image */
    dvm_status code;
    const char *word; /* the message must contain this */
  } cases[] = {
      {"fortran", 1, H("<f4", "True", "(2, 3)"), 24, 0, DVM_ERR_DATA, "Fortran"},
      {"big-endian", 1, H(">f4", "False", "(2, 3)"), 24, 0, DVM_ERR_DATA, "endian"},
      {"c8", 1, H("<c8", "False", "(3,)"), 24, 0, DVM_ERR_DATA, "'<c8'"},
      {"c8 lists", 1, H("<c8", "False", "(3,)"), 24, 0, DVM_ERR_DATA, "'<V2' bf16"},
      {"c8 lists u64", 1, H("<c8", "False", "(3,)"), 24, 0, DVM_ERR_DATA, "'<u8' u64"},
      {"U1", 1, H("<U1", "False", "(3,)"), 12, 0, DVM_ERR_DATA, "unsupported"},
      {"u2 without order", 1, H("|u2", "False", "(3,)"), 6, 0, DVM_ERR_DATA, "unsupported"},
      {"f16 (long double)", 1, H("<f16", "False", "(1,)"), 16, 0, DVM_ERR_DATA, "'<f16'"},
      {"big-endian u8", 1, H(">u8", "False", "(3,)"), 24, 0, DVM_ERR_DATA, "endian"},
      {"big-endian f8", 1, H(">f8", "False", "(3,)"), 24, 0, DVM_ERR_DATA, "endian"},
      {"structured", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", 8,
       0, DVM_ERR_DATA, "structured"},
      {"data short", 1, H("<f4", "False", "(2, 3)"), 23, 0, DVM_ERR_DATA, "truncated"},
      {"data count", 1, H("<f4", "False", "(2, 3)"), 23, 0, DVM_ERR_DATA,
       "expected 24 bytes, found 23"},
      {"trailing", 1, H("<f4", "False", "(2, 3)"), 25, 0, DVM_ERR_DATA, "trailing"},
      {"header short", 1, H("<f4", "False", "(2, 3)"), 0, 40, DVM_ERR_DATA, "truncated"},
      {"prelude short", 1, H("<f4", "False", "(2, 3)"), 0, 9, DVM_ERR_DATA, "truncated"},
      {"v2 prelude short", 2, H("<f4", "False", "(2, 3)"), 0, 11, DVM_ERR_DATA, "truncated"},
      {"overflow shape", 1, H("<f4", "False", "(4611686018427387904, 4)"), 0, 0,
       DVM_ERR_OVERFLOW, "(4611686018427387904, 4)"},
      {"overflow", 1, H("<f4", "False", "(4611686018427387904, 4)"), 0, 0, DVM_ERR_OVERFLOW,
       "overflow"},
      {"bytes overflow", 1, H("<i8", "False", "(2305843009213693952,)"), 0, 0, DVM_ERR_OVERFLOW,
       "overflow"},
      {"dim overflow", 1, H("<f4", "False", "(99999999999999999999,)"), 0, 0, DVM_ERR_OVERFLOW,
       "overflow"},
      {"rank 9", 1, H("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, 0, DVM_ERR_DATA,
       "more than 8"},
      {"negative", 1, H("<f4", "False", "(-1,)"), 0, 0, DVM_ERR_DATA, "negative"},
      {"missing", 1, "{'descr': '<f4', 'shape': (2,)}", 8, 0, DVM_ERR_DATA, "fortran_order"},
      {"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8,
       0, DVM_ERR_DATA, "'x'"},
      {"repeated key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False}", 8, 0,
       DVM_ERR_DATA, "repeated"},
      {"garbage", 1, "hello", 0, 0, DVM_ERR_DATA, "malformed"},
      {"after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8, 0,
       DVM_ERR_DATA, "after"},
      {"unterminated", 1, "{'descr': '<f4", 0, 0, DVM_ERR_DATA, "unterminated"},
      {"open tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 0, 0,
       DVM_ERR_DATA, "malformed"},
      {"fortran word", 1, H("<f4", "Truest", "(2,)"), 8, 0, DVM_ERR_DATA, "True or False"},
      {"version", 4, H("<f4", "False", "(2,)"), 8, 0, DVM_ERR_DATA, "version 4.0"},
  };
  char path[600];
  scratch(s, "bad", path, sizeof path);
  unsigned char zeros[64] = {0};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    unsigned char *p;
    size_t len = image(cases[k].version, cases[k].hdr, zeros, cases[k].data, &p);
    if (cases[k].version == 4) p[6] = 4;
    putfile(path, p, cases[k].cut > 0 ? (size_t)cases[k].cut : len);
    free(p);
    Tensor *t = NULL;
    Err err = {0};
    dvm_status st = rt_npy_read(path, &t, &err);
    CHECK(s, st == cases[k].code && t == NULL, "%s: status %d (%s)", cases[k].name, st,
          err.msg);
    CHECK(s, strstr(err.msg, cases[k].word) && strstr(err.msg, path), "%s: message \"%s\"",
          cases[k].name, err.msg);
    rt_tensor_free(t);
  }

  /* hand-made preludes */
  Tensor *t = NULL;
  Err err = {0};
  putfile(path, "\x93NUMPX\x01\x00\x10\x00{}", 12);
  CHECK(s, rt_npy_read(path, &t, &err) == DVM_ERR_DATA && strstr(err.msg, "magic"), "%s",
        err.msg);
  putfile(path, "", 0);
  CHECK(s, rt_npy_read(path, &t, &err) == DVM_ERR_DATA && strstr(err.msg, "magic"), "%s",
        err.msg);
  unsigned char big[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0x20, 0}; /* 2 MiB */
  putfile(path, big, 12);
  CHECK(s, rt_npy_read(path, &t, &err) == DVM_ERR_DATA && strstr(err.msg, "1 MiB"), "%s",
        err.msg);
  unlink(path);
  CHECK(s, rt_npy_read(path, &t, &err) == DVM_ERR_IO && strstr(err.msg, path), "%s", err.msg);
  CHECK(s, rt_npy_read(s->dir, &t, &err) == DVM_ERR_IO, "directory: %s", err.msg);
  CHECK(s, dvm_tensor_load_npy(path, &t) == DVM_ERR_IO && strstr(dvm_last_error(), path),
        "public: %s", dvm_last_error());
  CHECK(s, t == NULL, "no tensor on failure");

  /* writes that cannot happen leave nothing behind */
  char nodir[700];
  snprintf(nodir, sizeof nodir, "%s/no-such-dir-%ld/x.npy", s->dir, (long)getpid());
  int64_t one[1] = {1};
  if (!rt_tensor_new(DT_F32, 1, one, &t, &err)) {
    CHECK(s, rt_npy_write(nodir, t, &err) == DVM_ERR_IO && strstr(err.msg, nodir), "%s",
          err.msg);
    CHECK(s, rt_npy_write(s->dir, t, &err) == DVM_ERR_IO, "over a directory: %s", err.msg);
    rt_tensor_free(t);
  }
}

/* Every truncation and many byte mutations of a valid file fail cleanly or read. */
static void robust(Suite *s) {
  char path[600];
  scratch(s, "fuzz", path, sizeof path);
  unsigned char data[24];
  for (int i = 0; i < 24; i++) data[i] = (unsigned char)i;
  unsigned char *img;
  size_t len = image(1, H("<f4", "False", "(2, 3)"), data, sizeof data, &img);
  int bad = 0;
  for (size_t cut = 0; cut < len; cut++) {
    putfile(path, img, cut);
    Tensor *t = NULL;
    Err err = {0};
    if (rt_npy_read(path, &t, &err) == DVM_OK || t || !err.msg[0]) bad++;
  }
  CHECK(s, bad == 0, "%d truncations were accepted", bad);
  uint64_t r = 12345;
  int ok = 0, refused = 0;
  for (int it = 0; it < 3000; it++) {
    unsigned char m[256];
    memcpy(m, img, len);
    for (int j = 0; j < 1 + it % 3; j++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      m[(r >> 33) % len] = (unsigned char)(r >> 20);
    }
    putfile(path, m, len);
    Tensor *t = NULL;
    Err err = {0};
    dvm_status st = rt_npy_read(path, &t, &err);
    if (st == DVM_OK && t)
      ok++;
    else if (st != DVM_OK && !t && err.msg[0])
      refused++;
    rt_tensor_free(t);
  }
  CHECK(s, ok + refused == 3000, "%d ok, %d refused", ok, refused);
  free(img);
  unlink(path);
}

int main(void) {
  Suite s = {0};
  const char *tmp = getenv("TMPDIR");
  snprintf(s.dir, sizeof s.dir, "%s", tmp && *tmp ? tmp : "/tmp");
  roundtrip(&s);
  dialects(&s);
  extremes(&s);
  halves(&s);
  integers(&s);
  widths(&s);
  unsigned64(&s);
  tensors(&s);
  broken(&s);
  robust(&s);
  printf("%d passed, %d failed\n", s.passed, s.failed);
  return s.failed != 0;
}
