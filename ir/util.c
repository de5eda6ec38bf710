/* ir/util.c — small shared pieces of the ir layer: growable arrays, error reporting,
 * dtype names, the op and attribute tables expanded from ops.def / attrs.def, and the
 * stack checks and thread starts that the runtime and the jit share. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir.h"

const OpInfo ir_ops[OP_COUNT] = {
#define A(k) (1u << AK_##k)
#define OP(id, name, arity, kind, flags, attrs) {name, arity, kind, flags, attrs},
#include "ops.def"
#undef OP
#undef A
};

const AttrInfo ir_attrs[AK_COUNT] = {
#define AK(id, name, kind) {name, kind},
#include "attrs.def"
#undef AK
};

static const char *const dtype_names[DT_COUNT] = {"f32", "f16", "bf16", "i32", "i64", "bool",
                                                    "f64", "i8",  "i16",  "u8",  "u16", "u32", "u64"};
static const size_t dtype_sizes[DT_COUNT] = {4, 2, 2, 4, 8, 1, 8, 1, 2, 1, 2, 4, 8};

bool ir_grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 8;
  while (c < need) c *= 2;
  if (c > UINT32_MAX) return false;
  void *q = realloc(*p, c * elem);
  if (!q) return false;
  *p = q;
  *cap = (uint32_t)c;
  return true;
}

bool ir_grow_from(void **p, uint32_t *cap, uint32_t need, size_t elem, const void *few) {
  if (*p != few) return ir_grow(p, cap, need, elem);
  void *heap = NULL;
  uint32_t c = 0;
  if (!ir_grow(&heap, &c, need > 2 * *cap ? need : 2 * *cap, elem)) return false;
  memcpy(heap, few, (size_t)*cap * elem);
  *p = heap, *cap = c;
  return true;
}

_Noreturn void ir_oom(void) {
  fprintf(stderr, "dvm: out of memory\n");
  abort();
}

dvm_status ir_err(Err *err, dvm_status code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

dvm_status ir_errl(Err *err, dvm_status code, const char *file, uint32_t line, const char *fmt,
                   ...) {
  if (err) {
    size_t k = 0;
    if (line > 0) {
      int w = snprintf(err->msg, sizeof err->msg, "%s:%u: ", file ? file : "<graph>", line);
      k = w > 0 && (size_t)w < sizeof err->msg ? (size_t)w : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + k, sizeof err->msg - k, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

/* The stack's low end is read once per thread: for the main thread glibc reads
 * /proc/self/maps to find it, which a run must not pay each time. */
__attribute__((noinline)) size_t ir_stack_left(void) {
  static _Thread_local char *lo;
  static _Thread_local int known; /* 0 not read yet, 1 in lo, -1 unreadable */
  if (!known) {
    pthread_attr_t a;
    void *base;
    size_t size;
    known = -1;
    if (!pthread_getattr_np(pthread_self(), &a)) {
      if (!pthread_attr_getstack(&a, &base, &size)) lo = base, known = 1;
      pthread_attr_destroy(&a);
    }
  }
  char *sp = __builtin_frame_address(0);
  return known < 0 ? SIZE_MAX : sp > lo ? (size_t)(sp - lo) : 0;
}

double ir_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int ir_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, size_t min_stack) {
  pthread_attr_t a;
  size_t size = 0;
  if (pthread_attr_init(&a)) return -1;
  if (pthread_attr_getstacksize(&a, &size) || size < min_stack)
    pthread_attr_setstacksize(&a, min_stack);
  int e = pthread_create(t, &a, fn, arg);
  pthread_attr_destroy(&a);
  return e;
}

const char *ir_shown_byte(unsigned char ch, char *buf, size_t n) {
  if (isprint(ch)) snprintf(buf, n, "'%c'", ch);
  else snprintf(buf, n, "byte 0x%02X", ch);
  return buf;
}

const char *ir_dtype_name(DType dt) { return (unsigned)dt < DT_COUNT ? dtype_names[dt] : "?"; }

int ir_dtype_parse(const char *s, size_t n) {
  for (int i = 0; i < DT_COUNT; i++)
    if (strlen(dtype_names[i]) == n && memcmp(dtype_names[i], s, n) == 0) return i;
  return -1;
}

size_t ir_dtype_size(DType dt) { return (unsigned)dt < DT_COUNT ? dtype_sizes[dt] : 0; }
bool ir_dtype_is_float(DType dt) { return dt == DT_F32 || dt == DT_F16 || dt == DT_BF16 || dt == DT_F64; }
bool ir_dtype_is_int(DType dt) { return ir_dtype_bits(dt) > 0; }
bool ir_dtype_is_unsigned(DType dt) { return dt == DT_U8 || dt == DT_U16 || dt == DT_U32 || dt == DT_U64; }

int64_t ir_dtype_wrap(DType dt, uint64_t x) {
  switch (dt) {
  case DT_BOOL: return x != 0;
  case DT_I8: return (int8_t)(uint8_t)x;
  case DT_I16: return (int16_t)(uint16_t)x;
  case DT_I32: return (int32_t)(uint32_t)x;
  case DT_U8: return (int64_t)(x & 0xff);
  case DT_U16: return (int64_t)(x & 0xffff);
  case DT_U32: return (int64_t)(x & 0xffffffffu);
  default: return (int64_t)x;
  }
}

void ir_dtype_range(DType dt, int64_t *lo, int64_t *hi) {
  int b = ir_dtype_bits(dt);
  if (b == 64 || b == 0) *lo = ir_dtype_is_unsigned(dt) ? 0 : INT64_MIN, *hi = INT64_MAX;
  else if (ir_dtype_is_unsigned(dt)) *lo = 0, *hi = ((int64_t)1 << b) - 1;
  else *lo = -((int64_t)1 << (b - 1)), *hi = ((int64_t)1 << (b - 1)) - 1;
}

int64_t ir_dtype_saturate(DType dt, int64_t x) {
  if (dt == DT_BOOL) return x != 0;
  if (!ir_dtype_bits(dt)) return x;
  int64_t lo, hi;
  ir_dtype_range(dt, &lo, &hi);
  return x > hi ? hi : x < lo ? lo : x;
}

int ir_dtype_bits(DType dt) {
  switch (dt) {
  case DT_I8: case DT_U8: return 8;
  case DT_I16: case DT_U16: return 16;
  case DT_I32: case DT_U32: return 32;
  case DT_I64: case DT_U64: return 64;
  default: return 0;
  }
}

/* The names' lengths, from the tables' string literals: a lookup compares the length and
 * the first byte before the name (the lazy front end looks an op up per op it records). */
static const uint8_t op_len[OP_COUNT] = {
#define OP(id, name, arity, kind, flags, attrs) sizeof(name) - 1,
#include "ops.def"
#undef OP
};
static const uint8_t attr_len[AK_COUNT] = {
#define AK(id, name, kind) sizeof(name) - 1,
#include "attrs.def"
#undef AK
};

int ir_op_lookup(const char *s, size_t n) {
  for (int i = 0; i < OP_COUNT; i++)
    if (op_len[i] == n && n && ir_ops[i].name[0] == s[0] && memcmp(ir_ops[i].name, s, n) == 0) return i;
  return -1;
}

int ir_attr_lookup(const char *s, size_t n) {
  for (int i = 0; i < AK_COUNT; i++)
    if (attr_len[i] == n && n && ir_attrs[i].name[0] == s[0] && memcmp(ir_attrs[i].name, s, n) == 0) return i;
  return -1;
}
