/* fusion/key.c — a Kernel's canonical form and its 128-bit XXH3 key.
 *
 * The canonical form is a sequence of 64-bit words that says everything code generation
 * depends on and nothing else: the kernel kind and reduced axes; for each input its
 * dtype, rank and dims and whether it is a param (native mix kernels read a param
 * weight packed once per model); for each member its op, dtype, rank, dims, operands (as local
 * numbers: inputs 0.., then members in order) and its attributes resolved to what they
 * mean (defaults filled in, negative axes normalized, floats by their bits); which
 * members are outputs. A dim is either a constant (its value) or a symbolic parameter,
 * numbered by first appearance: the kernel's `dims`, whose runtime values the kernel ABI
 * passes. So keys do not change with symbol values, value names or graph position, and
 * do change with an op, a dtype, a constant dim, a broadcast or an attribute.
 *
 * The key hashes the canonical form with a seed made of dvm's version, so a new dvm
 * never reuses an old cache entry. (CPU features and the LLVM version join the key in
 * jit/, where they are known.) */
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "fusion.h"

enum { TAG_CONST = 1, TAG_SYM = 2, TAG_MEMBER = 3, TAG_INPUT = 4, TAG_LIT = 5 };

typedef struct Writer {
  uint8_t *out;
  size_t cap, n;
  Partition *p; /* with `k`: symbolic dims are appended to p->dims */
  Kernel *k;
  const Partition *cp;
  const Kernel *ck;
} Writer;

static void word(Writer *w, uint64_t x) {
  if (w->out && w->n + 8 <= w->cap) memcpy(w->out + w->n, &x, 8);
  w->n += 8;
}

static uint64_t fbits(double f) {
  uint64_t b;
  if (f == 0) f = 0; /* -0.0 and 0.0 mean the same in every attribute */
  memcpy(&b, &f, 8);
  return b;
}

/* A dim: constant or the number of its symbolic parameter. */
static void dim(Writer *w, Dim d) {
  const Graph *g = w->cp->g;
  int64_t c;
  if (ir_dim_is_const(g, d, &c)) {
    word(w, TAG_CONST);
    word(w, (uint64_t)c);
    return;
  }
  for (uint32_t i = 0; i < w->ck->ndims; i++) /* indexed: dims.v is NULL while empty */
    if (w->cp->dims.v[w->ck->dims + i] == d) {
      word(w, TAG_SYM);
      word(w, i);
      return;
    }
  /* first appearance: number it (only while computing the key, when all are numbered) */
  if (w->p) {
    vec_push(w->p->dims, d);
    w->k->ndims++;
  }
  word(w, TAG_SYM);
  word(w, w->k ? w->k->ndims - 1 : UINT64_MAX);
}

static void shape(Writer *w, uint32_t v) {
  const Node *n = ir_node(w->cp->g, v);
  word(w, n->dtype);
  word(w, n->rank);
  for (int i = 0; i < n->rank; i++) dim(w, ir_shape(w->cp->g, v)[i]);
}

/* Local number of value u inside the kernel. */
static void ref(Writer *w, uint32_t u) {
  const Graph *g = w->cp->g;
  const Kernel *k = w->ck;
  if (ir_node(g, u)->op == OP_LITERAL) {
    const Attr *a = ir_attr(g, u, AK_VALUE);
    word(w, TAG_LIT);
    word(w, ir_node(g, u)->dtype);
    word(w, a->isint ? (uint64_t)a->i : fbits(a->f));
    return;
  }
  int32_t m = fu_member_index(w->cp, k, u);
  if (m >= 0) {
    word(w, TAG_MEMBER);
    word(w, (uint64_t)m);
    return;
  }
  for (uint32_t i = 0; i < k->ninputs; i++)
    if (fu_inputs(w->cp, k)[i] == u) {
      word(w, TAG_INPUT);
      word(w, i);
      return;
    }
  word(w, 0); /* unreachable for a well-formed partition */
}

static void axis(Writer *w, uint32_t v, AttrKey key, int64_t dflt, int rank) {
  word(w, (uint64_t)ir_axis(ir_attr_int(w->cp->g, v, key, dflt), rank));
}

/* Attributes by meaning, defaults filled in. */
static void attrs(Writer *w, uint32_t v) {
  const Graph *g = w->cp->g;
  const Node *n = ir_node(g, v);
  Op op = (Op)n->op;
  int r0 = n->nin ? ir_node(g, ir_operand(g, v, 0))->rank : 0;
  const Attr *a;
  switch (op) {
  case OP_CLIP:
    for (int i = 0; i < 2; i++) {
      a = ir_attr(g, v, i ? AK_HI : AK_LO);
      word(w, a != NULL);
      word(w, a ? fbits(ir_attr_float(g, v, i ? AK_HI : AK_LO, 0)) : 0);
      word(w, a && a->isint ? (uint64_t)a->i : 0); /* an integer bound exactly (past 2^53 too) */
    }
    break;
  case OP_REDUCE_SUM: case OP_REDUCE_MEAN: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
  case OP_REDUCE_PROD: case OP_SQUEEZE: case OP_UNSQUEEZE: {
    /* as a bitmask over the axes they refer to */
    int rank = op == OP_UNSQUEEZE ? n->rank : r0;
    uint64_t m = 0;
    a = ir_attr(g, v, AK_AXES);
    if (a)
      for (uint32_t i = 0; i < a->n; i++) m |= 1ull << ir_axis(g->lists.v[a->off + i], rank);
    else if (op != OP_SQUEEZE)
      m = rank ? (1ull << rank) - 1 : 0;
    word(w, a != NULL || op != OP_SQUEEZE ? m : UINT64_MAX);
    word(w, (uint64_t)ir_attr_int(g, v, AK_KEEPDIMS, 0));
    break;
  }
  case OP_ARGMAX:
  case OP_GATHER: axis(w, v, AK_AXIS, 0, r0), word(w, (uint64_t)ir_attr_int(g, v, AK_KEEPDIMS, 0)); break;
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
  case OP_CONCAT: axis(w, v, AK_AXIS, -1, r0); break;
  case OP_LAYERNORM: axis(w, v, AK_AXIS, -1, r0), word(w, fbits(ir_attr_float(g, v, AK_EPS, 1e-5))); break;
  case OP_RMSNORM: word(w, fbits(ir_attr_float(g, v, AK_EPS, 1e-6))); break;
  case OP_TRANSPOSE:
    a = ir_attr(g, v, AK_PERM);
    for (int i = 0; i < r0; i++) word(w, a ? (uint64_t)ir_axis(g->lists.v[a->off + i], r0) : (uint64_t)(r0 - 1 - i));
    break;
  case OP_SLICE: {
    const Attr *ax = ir_attr(g, v, AK_AXES), *st = ir_attr(g, v, AK_STARTS),
               *en = ir_attr(g, v, AK_ENDS), *sp = ir_attr(g, v, AK_STEPS);
    for (uint32_t i = 0; i < st->n; i++) {
      word(w, (uint64_t)(ax ? ir_axis(g->lists.v[ax->off + i], r0) : (int)i));
      dim(w, (Dim)g->clists.v[st->off + i]);
      dim(w, (Dim)g->clists.v[en->off + i]);
      word(w, (uint64_t)(sp ? g->lists.v[sp->off + i] : 1));
    }
    break;
  }
  case OP_RESHAPE:
  case OP_BROADCAST_TO: break; /* the result shape says it all */
  case OP_ARANGE: dim(w, ir_attr(g, v, AK_N)->canon); break;
  case OP_MATMUL:
    word(w, (uint64_t)ir_attr_int(g, v, AK_TRANSPOSE_A, 0));
    word(w, (uint64_t)ir_attr_int(g, v, AK_TRANSPOSE_B, 0));
    break;
  case OP_FULL: {
    a = ir_attr(g, v, AK_VALUE);
    word(w, fbits(ir_attr_float(g, v, AK_VALUE, 0)));
    word(w, a && a->isint ? (uint64_t)a->i : 0);
    break;
  }
  case OP_CALL: { /* the function: its name, and once resolved its signature and address
                     (native code embeds the address: another function must not reuse it) */
    const char *fn = ir_s(g, ir_attr(g, v, AK_FN)->off);
    word(w, XXH3_64bits(fn, strlen(fn)));
    word(w, g->ext && g->ext[v] ? g->ext[v]->hash : 0);
    a = ir_attr(g, v, AK_DIMS);
    word(w, a ? a->n : 0);
    for (uint32_t i = 0; a && i < a->n; i++) dim(w, (Dim)g->clists.v[a->off + i]);
    break;
  }
  default: break; /* elementwise ops, arange: op, dtype and shape say it all */
  }
}

static void form(Writer *w) {
  const Kernel *k = w->ck;
  const Graph *g = w->cp->g;
  word(w, k->kind);
  word(w, k->axes);
  word(w, k->ninputs);
  word(w, k->nmembers);
  for (uint32_t i = 0; i < k->ninputs; i++) { /* a param's layout may be packed once per model */
    shape(w, fu_inputs(w->cp, k)[i]);
    word(w, ir_node(w->cp->g, fu_inputs(w->cp, k)[i])->op == OP_PARAM);
  }
  for (uint32_t i = 0; i < k->nmembers; i++) {
    uint32_t v = fu_members(w->cp, k)[i];
    const Node *n = ir_node(g, v);
    word(w, n->op);
    shape(w, v);
    word(w, n->nin);
    for (uint32_t j = 0; j < n->nin; j++) ref(w, ir_operand(g, v, j));
    attrs(w, v);
  }
  word(w, k->noutputs);
  for (uint32_t i = 0; i < k->noutputs; i++) ref(w, fu_outputs(w->cp, k)[i]);
  /* the domain, so two kernels that differ only in it never share a key */
  shape(w, k->domain);
}

void fu_key(Partition *p, Kernel *k) {
  k->dims = p->dims.n;
  k->ndims = 0;
  Writer w = {.p = p, .k = k, .cp = p, .ck = k};
  form(&w); /* numbers the symbolic dims */
  uint8_t stack[4096], *buf = stack;
  size_t n = fu_canonical(p, k, NULL, 0);
  if (n > sizeof stack && !(buf = malloc(n))) ir_oom();
  fu_canonical(p, k, buf, n);
  uint64_t seed = ((uint64_t)DVM_VERSION_MAJOR << 32) | DVM_VERSION_MINOR;
  XXH128_hash_t h = XXH3_128bits_withSeed(buf, n, seed);
  memcpy(k->key, &h.high64, 8);
  memcpy(k->key + 8, &h.low64, 8);
  if (buf != stack) free(buf);
}

size_t fu_canonical(const Partition *p, const Kernel *k, uint8_t *out, size_t cap) {
  Writer w = {.out = out, .cap = cap, .cp = p, .ck = k};
  form(&w);
  return w.n;
}
