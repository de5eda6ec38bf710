/* ir/extern.c — the extern signature language and how a `call` node maps onto it.
 *
 * A signature is the C prototype of a registered function, result first (docs/extern.md):
 *
 *     signature := result '<-' params
 *     result    := 'void' | scalar
 *     params    := 'void' | param {',' param}          (nothing at all is also no params)
 *     param     := type [NAME]                         (a name is a comment)
 *     type      := scalar | dtype '*' | 'void' '*'
 *     scalar    := 'i32' | 'i64' | 'f32' | 'f64'
 *     dtype     := 'f32' | 'f16' | 'bf16' | 'i32' | 'i64' | 'bool'
 *
 * e.g. "void <- f32* x, f32* y, f32* out, i64 n". A call node gives its arguments in one
 * sequence — its operands in order, then its output when the result is void, then the
 * entries of its dims=[...] attribute — and parameter i takes item i: a pointer takes a
 * tensor's data (of its dtype; void* any), a scalar takes a one-element operand by value
 * or a dim. A scalar result is the output's one element.
 *
 * Nothing here knows libffi or LLVM: runtime/ffi.c registers functions and calls them,
 * the tiers read the ExtArg mapping. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

static const char *const scalar_names[] = {"void", "i32", "i64", "f32", "f64"};

const char *ir_ext_type_name(ExtParam p) {
  static const char *const ptr[] = {"f32*", "f16*", "bf16*", "i32*", "i64*", "bool*"};
  if (p.type == ET_PTR) return p.dtype >= 0 && p.dtype < DT_COUNT ? ptr[p.dtype] : "void*";
  return p.type < ET_PTR ? scalar_names[p.type] : "?";
}

typedef struct Lex {
  const char *s, *p;
  Extern *e;
  Err *err;
} Lex;

static void blank(Lex *l) {
  while (*l->p && isspace((unsigned char)*l->p)) l->p++;
}

__attribute__((format(printf, 2, 3))) static dvm_status bad(Lex *l, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ir_err(l->err, DVM_ERR_SYNTAX, "extern '%s': signature \"%s\": %s (at column %d)", l->e->name,
                l->s, msg, (int)(l->p - l->s) + 1);
}

/* A word [A-Za-z_][A-Za-z0-9_]* at p; its length (0 if none). */
static size_t word(Lex *l) {
  blank(l);
  const char *q = l->p;
  if (!isalpha((unsigned char)*q) && *q != '_') return 0;
  while (isalnum((unsigned char)*q) || *q == '_') q++;
  return (size_t)(q - l->p);
}

/* The character at the cursor for a message (ir_shown_byte), or "the end". */
static const char *shown(const Lex *l, char *buf, size_t n) {
  return *l->p ? ir_shown_byte((unsigned char)*l->p, buf, n) : "the end";
}

static bool is(const Lex *l, size_t n, const char *w) { return n == strlen(w) && !strncmp(l->p, w, n); }

/* One type: fills *t; `result` refuses pointers. */
static dvm_status type(Lex *l, ExtParam *t, bool result) {
  size_t n = word(l);
  char b[16];
  if (!n) return bad(l, "expected a type, found %s", shown(l, b, sizeof b));
  const char *at = l->p;
  int scalar = -1, dt = -1;
  for (int i = 0; i < 5; i++)
    if (is(l, n, scalar_names[i])) scalar = i;
  if (scalar < 0) dt = ir_dtype_parse(l->p, n);
  if (scalar < 0 && dt < 0) return bad(l, "unknown type '%.*s' (types: void i32 i64 f32 f64, and pointers "
                                          "to any tensor dtype or void*)", (int)n, l->p);
  l->p += n;
  blank(l);
  if (*l->p == '*') {
    l->p++;
    if (result) {
      l->p = at;
      return bad(l, "a result is void or a scalar; the output tensor is a pointer parameter after the operands");
    }
    t->type = ET_PTR;
    t->dtype = (int8_t)(scalar == ET_VOID ? -1 : dt >= 0 ? dt : scalar == ET_F32 ? DT_F32 : scalar == ET_F64 ? DT_F64
                                                                     : scalar == ET_I32 ? DT_I32 : DT_I64);
    return DVM_OK;
  }
  if (scalar < 0) {
    l->p = at;
    return bad(l, "'%.*s' is a tensor dtype, not a scalar type: write '%.*s*' for its data, or use i32 "
                  "i64 f32 f64", (int)n, at, (int)n, at);
  }
  if (scalar == ET_VOID && !result) {
    l->p = at;
    return bad(l, "a parameter cannot be void (write 'void*' for a pointer of any dtype)");
  }
  t->type = (uint8_t)scalar;
  t->dtype = -1;
  return DVM_OK;
}

dvm_status ir_extern_parse(const char *sig, Extern *e, Err *err) {
  Lex l = {sig, sig, e, err};
  ExtParam r;
  char b[16];
  if (type(&l, &r, true)) return err->code;
  e->ret = r.type;
  e->nparams = 0;
  blank(&l);
  if (strncmp(l.p, "<-", 2)) return bad(&l, "expected '<-' after the result type");
  l.p += 2;
  blank(&l);
  size_t n = word(&l);
  if (!*l.p) return DVM_OK; /* no parameters */
  if (is(&l, n, "void")) { /* "void" alone: no parameters; "void*" is a pointer */
    const char *q = l.p + n;
    while (isspace((unsigned char)*q)) q++;
    if (!*q) return DVM_OK;
  }
  for (;;) {
    if (e->nparams == EXT_MAX_PARAMS) return bad(&l, "more than %d parameters", EXT_MAX_PARAMS);
    if (type(&l, &e->param[e->nparams], false)) return err->code;
    e->nparams++;
    size_t m = word(&l);
    l.p += m; /* a parameter name: documentation only */
    blank(&l);
    if (!*l.p) return DVM_OK;
    if (*l.p != ',') return bad(&l, "expected ',' or the end after a parameter, found %s", shown(&l, b, sizeof b));
    l.p++;
  }
}

bool ir_is_one_element(const Graph *g, uint32_t v) {
  const Node *n = ir_node(g, v);
  for (int d = 0; d < n->rank; d++) {
    int64_t c;
    if (!ir_dim_is_const(g, ir_shape(g, v)[d], &c) || c != 1) return false;
  }
  return true;
}

/* The signature written back from its parsed form ("void <- f32*, i64"), for messages. */
static void sig_text(const Extern *e, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "%s <-", scalar_names[e->ret]);
  for (int i = 0; i < e->nparams && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s %s", i ? "," : "", ir_ext_type_name(e->param[i]));
}

__attribute__((format(printf, 6, 7))) static dvm_status call_err(const Graph *g, uint32_t v, const Extern *e,
                                                                 dvm_status code, Err *err, const char *fmt, ...) {
  char msg[640], sig[EXT_SIG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sig_text(e, sig, sizeof sig);
  const Node *n = ir_node(g, v);
  return ir_errl(err, code, g->file, n->line, "%s = call: fn %s (%s): %s", ir_s(g, n->name), e->name, sig, msg);
}

/* "operand 2 ('x', i32[N])" or "operand 2 (a literal)" */
static void operand_text(const Graph *g, uint32_t u, uint32_t j, char *buf, size_t n) {
  const Node *x = ir_node(g, u);
  if (x->op == OP_LITERAL) {
    snprintf(buf, n, "operand %u (a literal)", j + 1);
    return;
  }
  size_t k = (size_t)snprintf(buf, n, "operand %u ('%s', %s[", j + 1, ir_s(g, x->name), ir_dtype_name((DType)x->dtype));
  for (int d = 0; d < x->rank && k < n; d++) {
    char ds[128];
    k += (size_t)snprintf(buf + k, n - k, "%s%s", d ? ", " : "", ir_dim_str(g, ir_shape(g, u)[d], ds, sizeof ds));
  }
  if (k < n) snprintf(buf + k, n - k, "])");
}

dvm_status ir_extern_args(const Graph *g, uint32_t v, const Extern *e, ExtArg *args, Err *err) {
  const Node *n = ir_node(g, v);
  const Attr *da = ir_attr(g, v, AK_DIMS);
  uint32_t ndims = da ? da->n : 0, out = e->ret == ET_VOID ? 1 : 0;
  uint32_t items = n->nin + out + ndims;
  if (items != e->nparams)
    return call_err(g, v, e, DVM_ERR_GRAPH, err,
                    "the function takes %d parameter%s but the call gives %u: %u operand%s%s, %u dim%s", e->nparams,
                    e->nparams == 1 ? "" : "s", items, n->nin, n->nin == 1 ? "" : "s",
                    out ? ", the output" : "", ndims, ndims == 1 ? "" : "s");
  char what[320];
  for (uint32_t i = 0; i < items; i++) {
    ExtParam p = e->param[i];
    const char *tn = ir_ext_type_name(p);
    if (i < n->nin) {
      uint32_t u = ir_operand(g, v, i);
      DType dt = (DType)ir_node(g, u)->dtype;
      operand_text(g, u, i, what, sizeof what);
      args[i] = (ExtArg){ES_OPERAND, i};
      if (p.type == ET_PTR) {
        if (ir_node(g, u)->op == OP_LITERAL)
          return call_err(g, v, e, DVM_ERR_GRAPH, err, "parameter %u (%s) takes a tensor but %s is a literal: "
                          "a literal goes to a scalar parameter", i + 1, tn, what);
        if (p.dtype >= 0 && p.dtype != (int)dt)
          return call_err(g, v, e, DVM_ERR_DTYPE, err, "parameter %u (%s) does not take %s", i + 1, tn, what);
      } else {
        if (dt != DT_F32 && dt != DT_I32 && dt != DT_I64 && dt != DT_BOOL)
          return call_err(g, v, e, DVM_ERR_DTYPE, err, "parameter %u (%s) takes a value of dtype f32, i32, i64 "
                          "or bool, not %s", i + 1, tn, what);
        if (!ir_is_one_element(g, u))
          return call_err(g, v, e, DVM_ERR_SHAPE, err, "parameter %u (%s) takes %s by value: it must hold one "
                          "element", i + 1, tn, what);
      }
    } else if (i < n->nin + out) {
      args[i] = (ExtArg){ES_OUTPUT, 0};
      if (p.type != ET_PTR || (p.dtype >= 0 && p.dtype != n->dtype))
        return call_err(g, v, e, DVM_ERR_DTYPE, err, "parameter %u (%s) receives the output, a %s tensor: it "
                        "must be %s* or void*", i + 1, tn, ir_dtype_name((DType)n->dtype),
                        ir_dtype_name((DType)n->dtype));
    } else {
      uint32_t k = i - n->nin - out;
      args[i] = (ExtArg){ES_DIM, k};
      if (p.type != ET_I32 && p.type != ET_I64)
        return call_err(g, v, e, DVM_ERR_DTYPE, err, "parameter %u (%s) receives dims[%u]: it must be i32 or i64",
                        i + 1, tn, k);
    }
  }
  if (e->ret != ET_VOID) {
    DType dt = (DType)n->dtype;
    bool ok = dt == DT_F32 ? e->ret == ET_F32 || e->ret == ET_F64 : dt == DT_I32 ? e->ret == ET_I32
                                                                  : dt == DT_I64 && e->ret == ET_I64;
    if (!ok)
      return call_err(g, v, e, DVM_ERR_DTYPE, err, "a %s result cannot be the call's %s output (f32 and f64 "
                      "results go to f32, i32 to i32, i64 to i64)", scalar_names[e->ret], ir_dtype_name(dt));
    if (!ir_is_one_element(g, v))
      return call_err(g, v, e, DVM_ERR_SHAPE, err, "a scalar result is the output's one element: give the "
                      "call shape=[] (or all ones)");
  }
  return DVM_OK;
}

/* float -> integer: truncate toward zero, saturate at the int64 range, NaN -> 0 */
static int64_t f2i(double x) {
  if (isnan(x)) return 0;
  if (x >= 9223372036854775808.0) return INT64_MAX;
  if (x < -9223372036854775808.0) return INT64_MIN;
  return (int64_t)x;
}

void ir_extern_scalar(ExtType t, bool from_float, double f, int64_t i, void *out) {
  switch (t) {
  case ET_F32: {
    float x = from_float ? (float)f : (float)i;
    memcpy(out, &x, sizeof x);
    break;
  }
  case ET_F64: {
    double x = from_float ? f : (double)i;
    memcpy(out, &x, sizeof x);
    break;
  }
  case ET_I32: {
    int64_t w = from_float ? f2i(f) : i;
    if (from_float) w = w > INT32_MAX ? INT32_MAX : w < INT32_MIN ? INT32_MIN : w; /* saturate */
    int32_t x = (int32_t)(uint32_t)(uint64_t)w;                                     /* wrap */
    memcpy(out, &x, sizeof x);
    break;
  }
  case ET_I64: {
    int64_t x = from_float ? f2i(f) : i;
    memcpy(out, &x, sizeof x);
    break;
  }
  default: break;
  }
}
