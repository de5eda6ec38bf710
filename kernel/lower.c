/* kernel/lower.c — a fused Kernel lowered for the back ends (kernel.h): built once per
 * kernel by the pipeline (runtime/compile.c), checked by kn_verify (verify.c), and read by both the
 * bytecode encoder and the native emitter.
 *
 * Lowering decides, once, what each member computes: its instruction (kernel/ops.def)
 * with the result's and the first operand's dtypes, and the immediates a back end would
 * otherwise read from the graph's attributes (clip bounds, rounded or saturated as the
 * reference executor takes them). Coverage (kn_supported) and an extern kernel's call
 * plan are decided here too, so a back end asks the lowered kernel, not the graph; and so
 * is what each loop body evaluates, in order (its program, KnProg: one walk per body). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

static const struct {
  int arity;
  const char *name;
} kops[KO_COUNT] = {
#define KOP(id, arity, name) {arity, name},
#include "ops.def"
#undef KOP
};

int kn_op_arity(KnOp op) { return op < KO_COUNT ? kops[op].arity : 0; }
const char *kn_op_name(KnOp op) { return op < KO_COUNT ? kops[op].name : "?"; }

/* The instruction of an elementwise graph op; KO_COUNT if op is not one. */
static KnOp elementwise_op(Op op) {
  switch (op) {
  case OP_NEG: return KO_NEG;
  case OP_ABS: return KO_ABS;
  case OP_EXP: return KO_EXP;
  case OP_LOG: return KO_LOG;
  case OP_SQRT: return KO_SQRT;
  case OP_RSQRT: return KO_RSQRT;
  case OP_RECIPROCAL: return KO_RECIP;
  case OP_TANH: return KO_TANH;
  case OP_SIGMOID: return KO_SIGMOID;
  case OP_RELU: return KO_RELU;
  case OP_GELU: return KO_GELU;
  case OP_GELU_TANH: return KO_GELU_TANH;
  case OP_SILU: return KO_SILU;
  case OP_ERF: return KO_ERF;
  case OP_SIN: return KO_SIN;
  case OP_COS: return KO_COS;
  case OP_FLOOR: return KO_FLOOR;
  case OP_CEIL: return KO_CEIL;
  case OP_ROUND: return KO_ROUND;
  case OP_SIGN: return KO_SIGN;
  case OP_CLIP: return KO_CLIP;
  case OP_ADD: return KO_ADD;
  case OP_SUB: return KO_SUB;
  case OP_MUL: return KO_MUL;
  case OP_DIV: return KO_DIV;
  case OP_POW: return KO_POW;
  case OP_FMOD: return KO_FMOD;
  case OP_MAX: return KO_MAX;
  case OP_MIN: return KO_MIN;
  case OP_EQ: return KO_EQ;
  case OP_NE: return KO_NE;
  case OP_LT: return KO_LT;
  case OP_LE: return KO_LE;
  case OP_GT: return KO_GT;
  case OP_GE: return KO_GE;
  case OP_AND: return KO_AND;
  case OP_OR: return KO_OR;
  case OP_NOT: return KO_NOT;
  case OP_SELECT: return KO_SELECT;
  case OP_CAST: return KO_CAST;
  default: return KO_COUNT;
  }
}

/* x truncated toward zero and saturated into int64 (NaN is 0), as the reference. */
static int64_t sat_i64(double x) {
  return isnan(x) ? 0 : x >= 0x1p63 ? INT64_MAX : x < -0x1p63 ? INT64_MIN : (int64_t)x;
}

/* An integer clip bound as the reference takes it: an integer attribute, or a float
 * truncated (sat_i64), saturated into t's range either way. */
static int64_t int_bound(const Attr *a, DType t) {
  int64_t b = a->isint ? a->i : sat_i64(a->f);
  return ir_dtype_saturate(t, b);
}

/* The lowering of one kernel: the dims seen so far (most kernels read a handful of
 * distinct dims, many times over) and where the next constant goes. */
typedef struct Low {
  const Partition *p;
  const Kernel *k;
  KnKernel *kk;
  KnDim *dims;         /* the values' dims, rank per value */
  uint32_t nlit;       /* literal values so far */
  uint32_t *lit, cap;  /* past FEW_LITS of them: their graph ids -> numbers, open addressing
                          (cap a power of 2, UINT32_MAX empty; freed by lower) */
  uint32_t nseen;      /* the dims met so far (the first 16), and what they became */
  Dim seen[16];
  KnDim as[16];
} Low;

static KnDim dim(Low *l, Dim d) {
  for (uint32_t i = 0; i < l->nseen; i++)
    if (l->seen[i] == d) return l->as[i];
  KnDim x = kn_dim(l->p, l->k, d);
  if (l->nseen < 16) l->seen[l->nseen] = d, l->as[l->nseen++] = x;
  return x;
}

/* View member v's index map, into *w (zeroed). */
static void lower_view(Low *l, uint32_t v, KnView *w) {
  const Graph *g = l->p->g;
  const Node *n = ir_node(g, v);
  uint32_t x = n->nin ? ir_operand(g, v, 0) : v;
  const Node *xn = ir_node(g, x);
  int r = n->rank < DVM_MAX_RANK ? n->rank : DVM_MAX_RANK, xr = xn->rank < DVM_MAX_RANK ? xn->rank : DVM_MAX_RANK;
  w->n = (uint8_t)r;
  switch ((Op)n->op) {
  case OP_TRANSPOSE: {
    const Attr *a = ir_attr(g, v, AK_PERM);
    w->kind = KV_TRANSPOSE;
    for (int k = 0; k < r; k++) w->map[k] = (int8_t)(a && a->n ? ir_axis(g->lists.v[a->off + k], r) : r - 1 - k);
    break;
  }
  case OP_BROADCAST_TO: /* right-aligned; the operand's broadcast dims read index 0 */
    w->kind = KV_BROADCAST, w->n = (uint8_t)xr;
    for (int t = 0; t < xr; t++) {
      int d = t + r - xr;
      int64_t one;
      bool b = ir_dim_is_const(g, ir_shape(g, x)[t], &one) && one == 1 && ir_shape(g, x)[t] != ir_shape(g, v)[d];
      w->map[t] = (int8_t)(b ? -1 : d);
    }
    break;
  case OP_SLICE: {
    const Attr *ax = ir_attr(g, v, AK_AXES), *st = ir_attr(g, v, AK_STARTS), *sp = ir_attr(g, v, AK_STEPS);
    w->kind = KV_SLICE, w->n = (uint8_t)(st->n < DVM_MAX_RANK ? st->n : DVM_MAX_RANK);
    for (uint32_t i = 0; i < w->n; i++) {
      int a = ax ? ir_axis(g->lists.v[ax->off + i], r) : (int)i;
      w->saxis[i] = (uint8_t)a;
      w->step[i] = sp ? g->lists.v[sp->off + i] : 1;
      w->start[i] = dim(l, (Dim)g->clists.v[st->off + i]);
      w->size[i] = dim(l, ir_shape(g, x)[a]);
    }
    break;
  }
  case OP_CONCAT:
    w->kind = KV_CONCAT, w->axis = (uint8_t)ir_axis(ir_attr_int(g, v, AK_AXIS, 0), n->rank), w->n = (uint8_t)n->nin;
    break; /* csize: lower() */
  case OP_GATHER:
    w->kind = KV_GATHER, w->axis = (uint8_t)ir_axis(ir_attr_int(g, v, AK_AXIS, 0), xn->rank);
    w->size[0] = dim(l, ir_shape(g, x)[w->axis]);
    break;
  case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE:
    w->kind = KV_RESHAPE, w->n = (uint8_t)xr;
    for (int t = 0; t < xr; t++) w->size[t] = dim(l, ir_shape(g, x)[t]);
    break;
  case OP_FULL: w->kind = KV_FULL; break;
  default: w->kind = KV_ARANGE; break;
  }
}

/* Member v's instruction into *in, zeroed (its operands: lower()). */
static void lower_member(Low *l, uint32_t v, KnIns *in) {
  const Graph *g = l->p->g;
  const Node *nd = ir_node(g, v);
  Op op = (Op)nd->op;
  in->t = nd->dtype, in->a = nd->nin ? ir_node(g, ir_operand(g, v, 0))->dtype : nd->dtype, in->fill = -1;
  if (op == OP_MATMUL) {
    in->op = KO_PRODUCT;
    in->ta = ir_attr_int(g, v, AK_TRANSPOSE_A, 0) != 0, in->tb = ir_attr_int(g, v, AK_TRANSPOSE_B, 0) != 0;
    uint32_t a = ir_operand(g, v, 0);
    in->kdim = dim(l, ir_shape(g, a)[ir_node(g, a)->rank - (in->ta && ir_node(g, a)->rank >= 2 ? 2 : 1)]);
  }
  else if (kn_is_view(op)) in->op = KO_VIEW;
  else if (kn_is_reduction(op) || op == OP_ARGMAX) in->op = KO_FOLDED;
  else if (op == OP_SOFTMAX) in->op = KO_SOFTMAX;
  else if (op == OP_LOG_SOFTMAX) in->op = KO_LOG_SOFTMAX;
  else if (op == OP_LAYERNORM) in->op = KO_LAYERNORM;
  else if (op == OP_RMSNORM) in->op = KO_RMSNORM;
  else in->op = elementwise_op(op);
  in->np = (uint8_t)kn_passes(op, in->pass);
  if (op == OP_LAYERNORM || op == OP_RMSNORM) in->eps = ir_attr_float(g, v, AK_EPS, op == OP_LAYERNORM ? 1e-5 : 1e-6);
  if (in->op == KO_CLIP) {
    const Attr *lo = ir_attr(g, v, AK_LO), *hi = ir_attr(g, v, AK_HI);
    in->lo = lo != NULL, in->hi = hi != NULL;
    if (kn_is_int((DType)in->t)) {
      if (lo) in->ilo = int_bound(lo, (DType)in->t);
      if (hi) in->ihi = int_bound(hi, (DType)in->t);
    } else {
      in->flo = (float)ir_attr_float(g, v, AK_LO, 0);
      in->fhi = (float)ir_attr_float(g, v, AK_HI, 0);
    }
  }
}

KnConst kn_constant(const Graph *g, uint32_t v) {
  const Attr *a = ir_attr(g, v, AK_VALUE); /* a full's is optional: 0 */
  KnConst c = {.t = ir_node(g, v)->dtype};
  double x = !a ? 0 : a->isint ? (double)a->i : a->f;
  c.f = (float)x;
  if (c.t == DT_BOOL) c.i = a && a->isint ? a->i != 0 : x != 0;
  else c.i = a && a->isint ? a->i : sat_i64(x);
  if (c.t != DT_BOOL) c.i = ir_dtype_saturate((DType)c.t, c.i);
  return c;
}

/* What kernel k's lowered form holds after its struct, at most: an extern kernel's call,
 * or members, views, values, constants (literal operands and fills), concat sizes,
 * operands, value dims, outputs and program steps; its bytes, rounded for alignment. */
typedef struct Counts {
  uint32_t nm, nv, nc, ns, na, nd;
  size_t np; /* program steps */
} Counts;

static size_t counts(const Partition *p, const Kernel *k, Counts *c) {
  *c = (Counts){k->kind == KK_EXTERN ? 0 : k->nmembers, 0, 0, 0, 0, 0, 0};
  for (uint32_t i = 0; i < k->ninputs && c->nm; i++) c->nd += ir_node(p->g, fu_inputs(p, k)[i])->rank;
  KnPass ps[2];
  for (uint32_t m = 0; m < c->nm; m++) {
    uint32_t v = fu_members(p, k)[m];
    const Node *n = ir_node(p->g, v);
    /* a pass's program: the members before m once each, their operands' reads, its value */
    if (kn_passes((Op)n->op, ps)) c->np += (size_t)m + c->na + 1;
    c->nv += kn_is_view((Op)n->op);
    c->nc += n->op == OP_FULL;
    c->ns += n->op == OP_CONCAT ? n->nin : 0;
    c->na += n->nin;
    c->nd += n->rank;
    for (uint32_t i = 0; i < n->nin; i++) {
      const Node *u = ir_node(p->g, ir_operand(p->g, v, i));
      if (u->op == OP_LITERAL) c->nc++, c->nd += u->rank;
    }
  }
  uint32_t nval = c->nm ? k->ninputs + c->nm + c->nc : 0, nout = c->nm ? k->noutputs : 0;
  /* the stores' two programs (and a mix kernel's prologue): each member once, its
     operands' reads, each output's */
  if (c->nm) c->np += (k->kind == KK_MIX ? 3 : 2) * ((size_t)c->nm + c->na) + nout + 1;
  size_t b = sizeof(KnKernel) + (k->kind == KK_EXTERN ? sizeof(KnExt) : 0) + c->nm * sizeof(KnIns) + c->nv * sizeof(KnView) + c->nc * sizeof(KnConst) +
             nval * sizeof(KnVal) + (c->ns + c->nd) * sizeof(KnDim) + (c->na + nout) * sizeof(uint32_t) +
             c->np * sizeof(KnStep);
  return (b + 15) & ~(size_t)15;
}

/* Value u of the kernel as the value kk->val[at] (its dims from l->dims). */
static void add_value(Low *l, uint32_t at, uint32_t u) {
  const Graph *g = l->p->g;
  const Node *n = ir_node(g, u);
  KnKernel *kk = l->kk;
  KnVal *x = &kk->val[at];
  int rank = n->rank < DVM_MAX_RANK ? n->rank : DVM_MAX_RANK;
  *x = (KnVal){.id = u, .t = n->dtype, .rank = (uint8_t)rank, .out = -1, .dim = l->dims};
  const Dim *s = ir_shape(g, u), *dom = ir_shape(g, l->k->domain);
  x->full = rank == kk->r;
  for (int t = 0; t < rank && x->full; t++) x->full = s[t] == dom[t];
  x->ctx = kk->axes && rank == kk->rr && kk->rr < kk->r;
  if (x->full) memcpy(l->dims, kk->dom, (size_t)rank * sizeof(KnDim));
  else
    for (int t = 0; t < rank; t++) l->dims[t] = dim(l, s[t]);
  l->dims += rank;
}

enum { FEW_LITS = 32 };

/* The literal table at twice the room (nlit >= FEW_LITS literals: all put in again). */
static bool grow_lits(Low *l) {
  uint32_t cap = l->cap ? 2 * l->cap : 4 * FEW_LITS, base = l->kk->nin + l->kk->nmem;
  uint32_t *t = malloc(cap * sizeof *t);
  if (!t) return false;
  memset(t, 0xff, cap * sizeof *t);
  for (uint32_t j = 0; j < l->nlit; j++) {
    uint32_t h = (l->kk->val[base + j].id * 2654435761u) & (cap - 1);
    while (t[h] != UINT32_MAX) h = (h + 1) & (cap - 1);
    t[h] = base + j;
  }
  free(l->lit);
  l->lit = t, l->cap = cap;
  return true;
}

/* Operand u of a member as a value number: a member (members are in id order), a literal
 * (numbered as first read), or an input. */
static uint32_t number(Low *l, uint32_t u) {
  const Graph *g = l->p->g;
  const Kernel *k = l->k;
  KnKernel *kk = l->kk;
  int32_t m = fu_member_index(l->p, k, u);
  if (m >= 0) return kk->nin + (uint32_t)m;
  if (ir_node(g, u)->op == OP_LITERAL) {
    uint32_t base = kk->nin + kk->nmem, *slot = NULL;
    if (l->nlit < FEW_LITS) { /* a handful: a scan */
      for (uint32_t j = 0; j < l->nlit; j++)
        if (kk->val[base + j].id == u) return base + j;
    } else {
      if (2 * (l->nlit + 1) > l->cap && !grow_lits(l)) ir_oom();
      for (uint32_t h = (u * 2654435761u) & (l->cap - 1);; h = (h + 1) & (l->cap - 1)) {
        if (l->lit[h] == UINT32_MAX) {
          slot = &l->lit[h];
          break;
        }
        if (kk->val[l->lit[h]].id == u) return l->lit[h];
      }
      *slot = base + l->nlit;
    }
    add_value(l, base + l->nlit, u);
    kk->consts[l->nlit] = kn_constant(g, u);
    return base + l->nlit++;
  }
  for (uint32_t i = 0; i < k->ninputs; i++)
    if (fu_inputs(l->p, k)[i] == u) return i;
  return UINT32_MAX; /* lower() refuses the kernel */
}

/* The programs' walks (KnProg): per member the program that listed it (a stamp, so that
 * nothing is cleared between programs) and the stack of members whose operands are being
 * walked, each with its next operand. Shared by the kernels of kn_lower_all. */
typedef struct Walk {
  uint32_t *seen;
  uint32_t *stack;
  uint32_t stamp;
} Walk;

/* Append to s[n..] the walk from value u, read at the top of a program: returns the new n. */
static uint32_t walk(const KnKernel *kk, Walk *w, KnStep *s, uint32_t n, uint32_t u) {
  if (KN_LEAF(kk, u)) {
    s[n++] = (KnStep){u, 0};
    return n;
  }
  uint32_t top = 0, m = u - kk->nin;
  if (w->seen[m] == w->stamp) return n;
  w->seen[m] = w->stamp, w->stack[0] = m, w->stack[1] = 0, top = 1;
  while (top) {
    uint32_t *f = &w->stack[2 * (top - 1)];
    uint32_t x = kk->nin + f[0];
    uint8_t ctx = kk->val[x].ctx;
    if (f[1] == kn_walked(kk, f[0])) { /* its operands done: the member itself */
      s[n++] = (KnStep){x, ctx};
      top--;
      continue;
    }
    uint32_t a = kk->ins[f[0]].arg[f[1]++];
    if (KN_LEAF(kk, a)) {
      s[n++] = (KnStep){a, ctx};
    } else if (w->seen[a - kk->nin] != w->stamp) {
      w->seen[a - kk->nin] = w->stamp;
      w->stack[2 * top] = a - kk->nin, w->stack[2 * top + 1] = 0, top++;
    }
  }
  return n;
}

/* kk's programs, into s (room for Counts.np steps): each folding member's passes', the
 * stores' and a packed prologue's. */
static void programs(KnKernel *kk, Walk *w, KnStep *s) {
  for (uint32_t m = 0; m < kk->nmem; m++) {
    KnIns *in = &kk->ins[m];
    if (!in->np || !in->narg) continue;
    w->stamp++;
    uint32_t n = walk(kk, w, s, 0, in->arg[0]);
    for (int i = 0; i < in->np; i++) in->prog[i] = (KnProg){n, s};
    if (n > kk->most) kk->most = n;
    s += n;
  }
  for (int q = 0; q < 2; q++) {
    uint32_t n = 0;
    w->stamp++;
    for (uint32_t o = 0; o < kk->nout; o++)
      if (kk->val[kk->out[o]].full == !q) n = walk(kk, w, s, n, kk->out[o]);
    kk->store[q] = (KnProg){n, s};
    if (n > kk->most) kk->most = n;
    s += n;
  }
  if (kk->packed && kk->pack.prologue) {
    w->stamp++;
    kk->pro = (KnProg){walk(kk, w, s, 0, kk->pack.a), s};
    if (kk->pro.n > kk->most) kk->most = kk->pro.n;
  }
}

/* A copy of a reason a kernel is not covered (kn_lower_all_free frees it). */
/* A view's alignment is its readers' (add_value's rule, by rank, is right for computed
 * members): a view of the reduced rank read by full-shaped members lines up with the
 * domain's trailing axes (ctx 0: squeeze(w: [1, B]) in mul(v, x: [A, B]) before a
 * reduction over B), one read with reduced values with the kept axes (ctx 1). Readers
 * come after what they read: members in reverse order, each view decided before it
 * passes its alignment on to its own operands; a folding member reads its operands over
 * the row (ctx 0). A view read in both alignments, where they put it on different axes,
 * would need two index maps: false (the kernel runs on the reference path). */
static bool views_aligned(KnKernel *kk) {
  uint8_t few[256], *seen = kk->nmem <= sizeof few ? few : calloc(kk->nmem, 1);
  if (!seen) ir_oom();
  if (seen == few) memset(few, 0, kk->nmem);
  bool ok = true;
  for (uint32_t m = kk->nmem; m-- > 0 && ok;) {
    KnVal *x = &kk->val[kk->nin + m];
    const KnIns *in = &kk->ins[m];
    if (in->op == KO_VIEW && x->rank == kk->rr && seen[m]) {
      if (seen[m] != 3) x->ctx = seen[m] == 2;
      for (int t = 0; t < x->rank && seen[m] == 3; t++) /* read in both: only if they agree */
        ok = kn_domain_axis(kk->r, kk->axes, x->rank, t, 0) == kn_domain_axis(kk->r, kk->axes, x->rank, t, 1);
    }
    int reads = in->np ? 0 : x->ctx; /* a folding member reads its operands over the row */
    for (uint32_t i = 0; i < in->narg; i++) {
      int a = kn_member(kk, in->arg[i]);
      if (a >= 0) seen[a] |= (uint8_t)(1u << reads);
    }
  }
  if (seen != few) free(seen);
  return ok;
}

static const char *keep(const char *why) {
  char *s = strdup(why);
  if (!s) ir_oom();
  return s;
}

/* Lower kernel k into kk, zeroed, which has room for c. */
static void lower(KnKernel *kk, const Partition *p, const Kernel *k, const Counts *c, Walk *w) {
  kk->p = p, kk->k = k, kk->stash = -1, kk->product = -1, kk->full_out = -1, kk->kind = (uint8_t)k->kind;
  kk->key = k->key;
  kk->nin = k->ninputs, kk->nmem = k->nmembers, kk->nout = k->noutputs, kk->ndims = k->ndims;
  char why[256];
  if (k->kind == KK_EXTERN) {
    kk->loop = KL_CALL;
    kk->ext = (KnExt *)(kk + 1);
    if (!(kk->ok = kn_extern_plan(p, k, kk->ext, why, sizeof why))) kk->why = keep(why);
    return;
  }
  const Graph *g = p->g;
  /* the domain and the kernel shape (the extent of every kernel) */
  const Node *dn = ir_node(g, k->domain);
  kk->r = kk->rr = dn->rank < DVM_MAX_RANK ? dn->rank : DVM_MAX_RANK;
  if (k->kind == KK_ROW) {
    kk->axes = k->axes, kk->rr = kk->r - __builtin_popcount(k->axes);
    kk->col = kn_col_mode(g, k), kk->multi = kn_multi_mode(g, k);
  }
  Low l; /* the caches left unset: they are read up to nseen */
  l.p = p, l.k = k, l.kk = kk, l.dims = NULL, l.nlit = 0, l.lit = NULL, l.cap = 0, l.nseen = 0;
  for (int d = 0; d < kk->r; d++) kk->dom[d] = dim(&l, ir_shape(g, k->domain)[d]);
  KnPass ps[2];
  for (uint32_t m = 0; m < k->nmembers; m++) kk->states += kn_passes((Op)ir_node(g, fu_members(p, k)[m])->op, ps) > 0;
  kk->splits = kn_col_splits(p, k);
  if (!(kk->ok = kn_supported(p, k, why, sizeof why))) {
    kk->why = keep(why);
    return;
  }
  for (uint32_t m = 0; m < k->nmembers && !kk->vm_why; m++) {
    const Node *nd = ir_node(g, fu_members(p, k)[m]);
    const char *no = kn_op_cover((Op)nd->op, KN_TIER_VM);
    if (no) snprintf(why, sizeof why, "%s at line %u: %s", ir_ops[nd->op].name, nd->line, no), kk->vm_why = keep(why);
  }
  kk->ins = (KnIns *)(kk + 1);
  KnView *views = (KnView *)(kk->ins + c->nm);
  kk->consts = (KnConst *)(views + c->nv);
  kk->val = (KnVal *)(kk->consts + c->nc);
  l.dims = (KnDim *)(kk->val + kk->nin + kk->nmem + c->nc);
  KnDim *sizes = l.dims + c->nd;
  uint32_t *args = (uint32_t *)(sizes + c->ns);
  kk->out = args + c->na;
  KnStep *steps = (KnStep *)(kk->out + kk->nout);
  /* the values: inputs, members, then literals as the members read them */
  for (uint32_t i = 0; i < kk->nin; i++) add_value(&l, i, fu_inputs(p, k)[i]);
  for (uint32_t m = 0; m < kk->nmem; m++) add_value(&l, kk->nin + m, fu_members(p, k)[m]);
  for (uint32_t o = 0; o < kk->nout; o++) {
    uint32_t v = fu_outputs(p, k)[o];
    kk->out[o] = number(&l, v);
    if (kn_member(kk, kk->out[o]) >= 0) kk->val[kk->out[o]].out = (int32_t)o;
  }
  uint32_t nfill = 0, lost = 0; /* operands that are no value of the kernel (a bug) */
  for (uint32_t m = 0; m < c->nm; m++) {
    uint32_t v = fu_members(p, k)[m];
    const Node *nd = ir_node(g, v);
    KnIns *in = &kk->ins[m];
    lower_member(&l, v, in);
    if (in->op == KO_PRODUCT) kk->product = (int)m;
    if (in->op == KO_VIEW) {
      KnView *w = in->view = views++;
      lower_view(&l, v, w);
      if (w->kind == KV_CONCAT) { /* each operand's size along the axis */
        w->csize = sizes, sizes += w->n;
        for (uint32_t q = 0; q < w->n; q++) w->csize[q] = dim(&l, ir_shape(g, ir_operand(g, v, q))[w->axis]);
      }
    }
    in->narg = nd->nin, in->arg = args, args += nd->nin;
    for (uint32_t i = 0; i < nd->nin; i++) lost += (in->arg[i] = number(&l, ir_operand(g, v, i))) == UINT32_MAX;
    if (nd->op == OP_FULL) in->fill = (int32_t)(c->nc - 1 - nfill), kk->consts[in->fill] = kn_constant(g, v), nfill++;
  }
  kk->nval = kk->nin + kk->nmem + l.nlit;
  kk->nconsts = l.nlit + nfill;
  for (uint32_t o = 0; o < kk->nout; o++) lost += kn_member(kk, kk->out[o]) < 0;
  if (lost) { /* release builds do not verify (kn_verify): no back end may read past the values */
    kk->ok = false, kk->why = keep("internal: a lowered operand or output is not a value of its kernel");
    free(l.lit);
    return;
  }
  if (nfill && l.nlit + nfill < c->nc) /* the fills at the end of the room: after the literals */
    memmove(kk->consts + l.nlit, kk->consts + c->nc - nfill, nfill * sizeof *kk->consts);
  for (uint32_t m = 0; nfill && m < kk->nmem; m++)
    if (kk->ins[m].fill >= 0) kk->ins[m].fill -= (int32_t)(c->nc - l.nlit - nfill);
  kk->full_out = kn_full_output(p, k);
  kk->packed = k->kind == KK_MIX && kn_pack_form(p, k, &kk->pack);
  if (kk->packed) kk->pack.a = number(&l, kk->pack.a), kk->pack.b = number(&l, kk->pack.b);
  kk->loop = kk->col ? KL_COLS : kk->multi ? KL_MULTI : KL_ROWS;
  if (kk->product >= 0) { /* general unless b is a 2-D input and a an input or the prologue */
    const KnIns *in = &kk->ins[kk->product];
    uint32_t a = in->arg[0], b = in->arg[1];
    bool pro = kk->packed && kk->pack.prologue;
    bool general = in->ta || in->tb || kk->val[b].rank != 2 || kn_input(kk, b) < 0 || (kn_input(kk, a) < 0 && !pro);
    kk->loop = general ? KL_GENERAL : KL_STREAM;
  }
  int so = k->kind == KK_ROW && !kk->col ? kk->full_out : -1;
  for (uint32_t m = 0; so >= 0 && m < c->nm && kk->stash < 0; m++)
    if (kk->ins[m].op == KO_SOFTMAX) kk->stash = (int)m, kk->stash_out = (uint32_t)so;
  if (kk->axes && !views_aligned(kk)) {
    kk->ok = false, kk->why = keep("a view read both on the domain's axes and on the reduced shape's");
    free(l.lit);
    return;
  }
  programs(kk, w, steps);
  free(l.lit);
}

KnKernel **kn_lower_all(const Partition *p) {
  enum { FEW = 64 };
  struct Room {
    Counts c;
    size_t bytes;
  } few[FEW], *room;
  uint32_t n = p->kernels.n;
  if (!(room = n <= FEW ? few : malloc(n * sizeof *room))) ir_oom();
  size_t at = ((n + 1) * sizeof(KnKernel *) + 15) & ~(size_t)15, total = at;
  uint32_t most = 0; /* members of the largest kernel: the walks' room */
  for (uint32_t i = 0; i < n; i++) {
    total += room[i].bytes = counts(p, &p->kernels.v[i], &room[i].c);
    if (room[i].c.nm > most) most = room[i].c.nm;
  }
  KnKernel **low = calloc(1, total); /* every struct in it starts zeroed: one memset */
  uint32_t walk_few[3 * FEW];
  Walk w = {most <= FEW ? walk_few : malloc(3 * (size_t)most * sizeof *w.seen), NULL, 0};
  if (!low || !w.seen) ir_oom();
  memset(w.seen, 0, most * sizeof *w.seen);
  w.stack = w.seen + most;
  for (uint32_t i = 0; i < n; i++) {
    low[i] = (KnKernel *)((char *)low + at), at += room[i].bytes;
    lower(low[i], p, &p->kernels.v[i], &room[i].c, &w);
  }
  low[n] = NULL;
  if (w.seen != walk_few) free(w.seen);
  if (room != few) free(room);
  return low;
}

void kn_lower_all_free(KnKernel **low) {
  for (KnKernel **kk = low; kk && *kk; kk++) free((char *)(*kk)->why), free((char *)(*kk)->vm_why);
  free(low);
}

static void put_dim(Buf *b, const KnKernel *kk, KnDim d) {
  char s[96];
  if (d.q < 0) ir_put(b, "%lld", (long long)d.c);
  else ir_put(b, "%s", ir_dim_str(kk->p->g, kk->p->dims.v[kk->k->dims + (uint32_t)d.q], s, sizeof s));
}

static void put_dims(Buf *b, const KnKernel *kk, const KnDim *d, int n) {
  ir_put(b, "[");
  for (int i = 0; i < n; i++) {
    if (i) ir_put(b, ", ");
    put_dim(b, kk, d[i]);
  }
  ir_put(b, "]");
}

/* Value x as the dump names it: a literal by its value, an input read in alignment 1
 * with "@1". */
static void put_value(Buf *b, const KnKernel *kk, uint32_t x, int ctx) {
  const Graph *g = kk->p->g;
  const KnConst *kc = kn_member(kk, x) < 0 ? kn_const(kk, x) : NULL; /* a fill keeps its name */
  if (kc && !kn_is_flt((DType)kc->t)) ir_put(b, "%lld", (long long)kc->i);
  else if (kc) ir_put(b, "%.9g", (double)kc->f);
  else ir_put(b, "%s%s", ir_s(g, ir_node(g, kk->val[x].id)->name), ctx && kn_input(kk, x) >= 0 ? "@1" : "");
}

static void put_prog(Buf *b, const KnKernel *kk, const char *what, const KnProg *p) {
  ir_put(b, "    %s:", what);
  for (uint32_t e = 0; e < p->n; e++) {
    ir_put(b, e ? ", " : " ");
    put_value(b, kk, p->step[e].v, p->step[e].ctx);
  }
  ir_put(b, "\n");
}

/* The dump's head of a kernel: its loop over the domain, its inputs and its outputs. */
static void put_head(Buf *b, const KnKernel *kk) {
  static const char *const loops[] = {"rows", "columns", "multi", "stream", "general", "call"};
  const Graph *g = kk->p->g;
  ir_put(b, "  loop %s over ", loops[kk->loop]);
  put_dims(b, kk, kk->dom, kk->r);
  if (kk->axes) {
    ir_put(b, " folding axes");
    for (int d = 0; d < kk->r; d++)
      if (kk->axes >> d & 1) ir_put(b, " %d", d);
  }
  if (kk->packed) ir_put(b, "; b packed%s%s", kk->pack.bpre >= 0 ? " once" : " per call", kk->pack.prologue ? ", a prologue" : "");
  ir_put(b, "\n  in");
  for (uint32_t i = 0; i < kk->nin; i++) {
    const KnVal *x = &kk->val[i];
    ir_put(b, "%s %s: %s", i ? "," : "", ir_s(g, ir_node(g, x->id)->name), ir_dtype_name((DType)x->t));
    put_dims(b, kk, x->dim, x->rank);
  }
  ir_put(b, "\n  out");
  for (uint32_t o = 0; o < kk->nout; o++) ir_put(b, "%s %s", o ? "," : "", ir_s(g, ir_node(g, kk->val[kk->out[o]].id)->name));
  ir_put(b, "\n");
}

const char *kn_reads_take(const KnKernel *kk, KnReads *r, uint32_t m, void (*materialize)(void *, uint32_t),
                          void *arg) {
  const uint32_t *a = kk->ins[m].arg;
  uint32_t n = kn_walked(kk, m), leaves = 0;
  const char *bad = NULL;
  for (uint32_t i = 0; i < n; i++) leaves += KN_LEAF(kk, a[i]);
  if (leaves > r->n) {
    r->opq[0] = r->opq[1] = r->opq[2] = UINT32_MAX;
    return "internal: an operand read before its program evaluates it";
  }
  for (; r->ready < r->n - leaves; r->ready++) materialize(arg, r->ready);
  r->n -= leaves;
  if (r->ready > r->n) r->ready = r->n;
  for (uint32_t i = 0, q = r->n; i < n; i++) {
    if (!KN_LEAF(kk, a[i])) continue;
    if (r->v[q] != a[i]) bad = "internal: an operand read other than its program's entry";
    r->opq[i] = q++;
  }
  return bad;
}

char *kn_lower_dump(const KnKernel *kk) {
  const Kernel *k = kk->k;
  const Graph *g = kk->p->g;
  Buf b = {0};
  if (!kk->ok) {
    ir_put(&b, "  not lowered: %s\n", kk->why);
    return ir_buf_done(&b);
  }
  if (k->kind == KK_EXTERN) {
    ir_put(&b, "  call %s: %d arguments\n", kk->ext->e->name, kk->ext->e->nparams);
    return ir_buf_done(&b);
  }
  put_head(&b, kk);
  for (uint32_t m = 0; m < k->nmembers; m++) {
    uint32_t v = fu_members(kk->p, k)[m];
    const KnIns *in = &kk->ins[m];
    int n = kn_op_arity((KnOp)in->op);
    ir_put(&b, "  %s = %s %s", ir_s(g, ir_node(g, v)->name), kn_op_name((KnOp)in->op), ir_dtype_name((DType)in->t));
    if (in->a != in->t) ir_put(&b, " <- %s", ir_dtype_name((DType)in->a));
    bool whole = n == 0 && in->narg; /* read otherwise: show what it reads */
    if (whole) n = (int)in->narg, ir_put(&b, " [");
    const char *sep = whole ? "" : " ";
    for (int i = 0; i < n; i++) {
      ir_put(&b, "%s", i ? ", " : sep);
      put_value(&b, kk, in->arg[i], 0);
    }
    if (whole) ir_put(&b, "]");
    static const char *const folds[] = {"sum", "max", "min", "prod", "max_ord"};
    static const char *const whats[] = {"x", "exp(x - n1)", "(x - n1)^2", "x^2", "(x, index)"};
    static const char *const posts[] = {"", " -> it / count", " -> 1 / it", " -> n1 + log it", " -> rsqrt(it / count + eps)"};
    static const char *const dsts[] = {"value", "n1", "n2"};
    for (int i = 0; i < in->np; i++)
      ir_put(&b, "%s pass %d: %s of %s%s into %s", i ? ";" : " |", i, folds[in->pass[i].f], whats[in->pass[i].what],
             posts[in->pass[i].post], dsts[in->pass[i].dst]);
    if (in->op == KO_LAYERNORM || in->op == KO_RMSNORM) ir_put(&b, "; eps %.9g", in->eps);
    if (in->ta || in->tb) ir_put(&b, " transposed:%s%s", in->ta ? " a" : "", in->tb ? " b" : "");
    if (in->view) {
      static const char *const kinds[] = {"transpose", "broadcast", "slice", "concat", "gather", "reshape", "full", "arange"};
      const KnView *w = in->view;
      ir_put(&b, " | %s", kinds[w->kind]);
      if (w->kind == KV_TRANSPOSE || w->kind == KV_BROADCAST)
        for (int i = 0; i < w->n; i++) ir_put(&b, "%s%d", i ? " " : " map ", w->map[i]);
      if (w->kind == KV_SLICE)
        for (int i = 0; i < w->n; i++) ir_put(&b, " axis %d step %lld", w->saxis[i], (long long)w->step[i]);
      if (w->kind == KV_CONCAT || w->kind == KV_GATHER) ir_put(&b, " axis %d", w->axis);
    }
    if (in->op == KO_CLIP && kn_is_int((DType)in->t)) {
      if (in->lo) ir_put(&b, " lo=%lld", (long long)in->ilo);
      if (in->hi) ir_put(&b, " hi=%lld", (long long)in->ihi);
    } else if (in->op == KO_CLIP) {
      if (in->lo) ir_put(&b, " lo=%.9g", in->flo);
      if (in->hi) ir_put(&b, " hi=%.9g", in->fhi);
    }
    ir_put(&b, "\n");
    if (in->np) put_prog(&b, kk, in->np > 1 ? "passes evaluate" : "pass evaluates", &in->prog[0]);
  }
  put_prog(&b, kk, "full-shaped stores evaluate", &kk->store[0]);
  put_prog(&b, kk, "other stores evaluate", &kk->store[1]);
  if (kk->packed && kk->pack.prologue) put_prog(&b, kk, "prologue evaluates", &kk->pro);
  return ir_buf_done(&b);
}
