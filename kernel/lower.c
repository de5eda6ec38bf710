/* kernel/lower.c — a fused Kernel lowered for the back ends (kernel.h): built once per
 * kernel by the pipeline (runtime/compile.c), checked by kn_verify, and read by both the
 * bytecode encoder and the native emitter.
 *
 * Lowering decides, once, what each member computes: its instruction (kernel/ops.def)
 * with the result's and the first operand's dtypes, and the immediates a back end would
 * otherwise read from the graph's attributes (clip bounds, rounded or saturated as the
 * reference executor takes them). Coverage (kn_supported) and an extern kernel's call
 * plan are decided here too, so a back end asks the lowered kernel, not the graph. */
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
  if (t == DT_I32) b = b > INT32_MAX ? INT32_MAX : b < INT32_MIN ? INT32_MIN : b;
  return b;
}

/* View member v's index map, into *w. */
static void lower_view(const Graph *g, uint32_t v, KnView *w) {
  const Node *n = ir_node(g, v);
  memset(w, 0, sizeof *w);
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
      w->start[i] = (Dim)g->clists.v[st->off + i];
      w->size[i] = ir_shape(g, x)[a];
    }
    break;
  }
  case OP_CONCAT:
    w->kind = KV_CONCAT, w->axis = (uint8_t)ir_axis(ir_attr_int(g, v, AK_AXIS, 0), n->rank), w->n = (uint8_t)n->nin;
    break; /* csize: lower() */
  case OP_GATHER:
    w->kind = KV_GATHER, w->axis = (uint8_t)ir_axis(ir_attr_int(g, v, AK_AXIS, 0), xn->rank);
    w->size[0] = ir_shape(g, x)[w->axis];
    break;
  case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE:
    w->kind = KV_RESHAPE, w->n = (uint8_t)xr;
    for (int t = 0; t < xr; t++) w->size[t] = ir_shape(g, x)[t];
    break;
  case OP_FULL: w->kind = KV_FULL; break;
  default: w->kind = KV_ARANGE; break;
  }

}

/* Member v's instruction. */
static KnIns lower_member(const Graph *g, uint32_t v) {
  const Node *nd = ir_node(g, v);
  Op op = (Op)nd->op;
  KnIns in = {.t = nd->dtype, .a = nd->nin ? ir_node(g, ir_operand(g, v, 0))->dtype : nd->dtype};
  if (op == OP_MATMUL) {
    in.op = KO_PRODUCT;
    in.ta = ir_attr_int(g, v, AK_TRANSPOSE_A, 0) != 0, in.tb = ir_attr_int(g, v, AK_TRANSPOSE_B, 0) != 0;
    uint32_t a = ir_operand(g, v, 0);
    in.kdim = ir_shape(g, a)[ir_node(g, a)->rank - (in.ta && ir_node(g, a)->rank >= 2 ? 2 : 1)];
  }
  else if (kn_is_view(op)) in.op = KO_VIEW;
  else if (kn_is_reduction(op) || op == OP_ARGMAX) in.op = KO_FOLDED;
  else if (op == OP_SOFTMAX) in.op = KO_SOFTMAX;
  else if (op == OP_LOG_SOFTMAX) in.op = KO_LOG_SOFTMAX;
  else if (op == OP_LAYERNORM) in.op = KO_LAYERNORM;
  else if (op == OP_RMSNORM) in.op = KO_RMSNORM;
  else in.op = elementwise_op(op);
  in.np = (uint8_t)kn_passes(op, in.pass);
  if (op == OP_LAYERNORM || op == OP_RMSNORM) in.eps = ir_attr_float(g, v, AK_EPS, op == OP_LAYERNORM ? 1e-5 : 1e-6);
  if (in.op == KO_CLIP) {
    const Attr *lo = ir_attr(g, v, AK_LO), *hi = ir_attr(g, v, AK_HI);
    in.lo = lo != NULL, in.hi = hi != NULL;
    if (kn_is_int((DType)in.t)) {
      if (lo) in.ilo = int_bound(lo, (DType)in.t);
      if (hi) in.ihi = int_bound(hi, (DType)in.t);
    } else {
      in.flo = (float)ir_attr_float(g, v, AK_LO, 0);
      in.fhi = (float)ir_attr_float(g, v, AK_HI, 0);
    }
  }
  return in;
}

/* Value v's constant (a literal or a full: its AK_VALUE) as the reference takes it. */
static KnConst constant(const Graph *g, uint32_t v) {
  const Attr *a = ir_attr(g, v, AK_VALUE); /* a full's is optional: 0 */
  KnConst c = {.v = v, .t = ir_node(g, v)->dtype};
  double x = !a ? 0 : a->isint ? (double)a->i : a->f;
  c.f = (float)x;
  if (c.t == DT_BOOL) c.i = x != 0;
  else c.i = a && a->isint ? a->i : sat_i64(x);
  return c;
}

static void add_const(KnKernel *kk, const Graph *g, uint32_t v) {
  if (!kn_const(kk, v)) kk->consts[kk->nconsts++] = constant(g, v); /* room: counts() made it */
}

const KnConst *kn_const(const KnKernel *kk, uint32_t v) {
  for (uint32_t i = 0; i < kk->nconsts; i++)
    if (kk->consts[i].v == v) return &kk->consts[i];
  return NULL;
}

/* What kernel k's lowered form holds after its struct: members, views, constants (at
 * most: literal operands and fills) and concat sizes; its bytes, rounded for alignment. */
typedef struct Counts {
  uint32_t nm, nv, nc, ns;
} Counts;

static size_t counts(const Partition *p, const Kernel *k, Counts *c) {
  *c = (Counts){k->kind == KK_EXTERN ? 0 : k->nmembers, 0, 0, 0};
  for (uint32_t m = 0; m < c->nm; m++) {
    uint32_t v = fu_members(p, k)[m];
    const Node *n = ir_node(p->g, v);
    c->nv += kn_is_view((Op)n->op);
    c->nc += n->op == OP_FULL;
    c->ns += n->op == OP_CONCAT ? n->nin : 0;
    for (uint32_t i = 0; i < n->nin; i++) c->nc += ir_node(p->g, ir_operand(p->g, v, i))->op == OP_LITERAL;
  }
  size_t b = sizeof(KnKernel) + c->nm * sizeof(KnIns) + c->nv * sizeof(KnView) + c->nc * sizeof(KnConst) +
             c->ns * sizeof(Dim);
  return (b + 15) & ~(size_t)15;
}

/* Lower kernel k into kk, which has room for c. */
static void lower(KnKernel *kk, const Partition *p, const Kernel *k, const Counts *c) {
  memset(kk, 0, offsetof(KnKernel, why)); /* the strings and the call plan are set as used */
  kk->why[0] = kk->vm_why[0] = '\0';
  kk->p = p, kk->k = k, kk->stash = -1, kk->product = -1, kk->full_out = -1;
  memset(&kk->ext, 0, sizeof kk->ext);
  if (k->kind == KK_EXTERN) {
    kk->ok = kn_extern_plan(p, k, &kk->ext, kk->why, sizeof kk->why);
    return;
  }
  if (!(kk->ok = kn_supported(p, k, kk->why, sizeof kk->why))) return;
  for (uint32_t m = 0; m < k->nmembers && !kk->vm_why[0]; m++) {
    const Node *nd = ir_node(p->g, fu_members(p, k)[m]);
    const char *no = kn_op_cover((Op)nd->op, KN_TIER_VM);
    if (no) snprintf(kk->vm_why, sizeof kk->vm_why, "%s at line %u: %s", ir_ops[nd->op].name, nd->line, no);
  }
  kk->ins = (KnIns *)(kk + 1);
  KnView *views = (KnView *)(kk->ins + c->nm);
  kk->consts = (KnConst *)(views + c->nv);
  Dim *sizes = (Dim *)(kk->consts + c->nc);
  for (uint32_t m = 0; m < c->nm; m++) {
    uint32_t v = fu_members(p, k)[m];
    kk->ins[m] = lower_member(p->g, v);
    if (kk->ins[m].op == KO_PRODUCT) kk->product = (int)m;
    if (kk->ins[m].op == KO_VIEW) {
      KnView *w = kk->ins[m].view = views++;
      lower_view(p->g, v, w);
      if (w->kind == KV_CONCAT) { /* each operand's size along the axis */
        w->csize = sizes, sizes += w->n;
        for (uint32_t q = 0; q < w->n; q++) w->csize[q] = ir_shape(p->g, ir_operand(p->g, v, q))[w->axis];
      }
    }
    if (ir_node(p->g, v)->op == OP_FULL) add_const(kk, p->g, v);
    for (uint32_t i = 0; i < ir_node(p->g, v)->nin; i++)
      if (ir_node(p->g, ir_operand(p->g, v, i))->op == OP_LITERAL) add_const(kk, p->g, ir_operand(p->g, v, i));
  }
  kk->full_out = kn_full_output(p, k);
  kk->packed = k->kind == KK_MIX && kn_pack_form(p, k, &kk->pack);
  int so = k->kind == KK_ROW && !kn_col_mode(p->g, k) ? kk->full_out : -1;
  for (uint32_t m = 0; so >= 0 && m < c->nm && kk->stash < 0; m++)
    if (kk->ins[m].op == KO_SOFTMAX) kk->stash = (int)m, kk->stash_out = (uint32_t)so;
}

KnKernel **kn_lower_all(const Partition *p) {
  uint32_t n = p->kernels.n;
  size_t at = ((n + 1) * sizeof(KnKernel *) + 15) & ~(size_t)15, total = at;
  for (uint32_t i = 0; i < n; i++) {
    Counts c;
    total += counts(p, &p->kernels.v[i], &c);
  }
  KnKernel **low = malloc(total);
  if (!low) ir_oom();
  for (uint32_t i = 0; i < n; i++) {
    Counts c;
    size_t b = counts(p, &p->kernels.v[i], &c);
    low[i] = (KnKernel *)((char *)low + at), at += b;
    lower(low[i], p, &p->kernels.v[i], &c);
  }
  low[n] = NULL;
  return low;
}

void kn_lower_all_free(KnKernel **low) { free(low); }

/* Does instruction in make sense for member v? NULL if so, else what is wrong. */
static const char *check(const Graph *g, uint32_t v, const KnIns *in) {
  const Node *nd = ir_node(g, v);
  DType t = (DType)in->t, a = (DType)in->a;
  if (in->op >= KO_COUNT) return "no instruction";
  if (t != nd->dtype) return "result dtype is not the value's";
  if ((uint32_t)kn_op_arity((KnOp)in->op) > nd->nin) return "more operands than the node has";
  switch (in->op) {
  case KO_PRODUCT: return t == DT_F32 ? NULL : "a product that is not f32";
  case KO_VIEW: return in->view ? NULL : "a view without its index map";
  case KO_FOLDED: return in->np == 1 ? NULL : "a reduction without its one pass";
  case KO_SOFTMAX: case KO_LOG_SOFTMAX: case KO_LAYERNORM: case KO_RMSNORM:
    if (!in->np || in->pass[in->np - 1].dst != KD_N2) return "a normalization whose passes leave no n2";
    return kn_is_flt(t) ? NULL : "a normalization of integers";
  case KO_EQ: case KO_NE: case KO_LT: case KO_LE: case KO_GT: case KO_GE:
    return t == DT_BOOL && kn_stored(a) ? NULL : "a compare whose result is not bool";
  case KO_AND: case KO_OR: case KO_NOT: return t == DT_BOOL && a == DT_BOOL ? NULL : "bool logic on non-bools";
  case KO_SELECT: return a == DT_BOOL && kn_stored(t) ? NULL : "a select whose condition is not bool";
  case KO_CAST: return kn_stored(t) && kn_stored(a) ? NULL : "a cast of an unstored dtype";
  case KO_NEG: case KO_ABS: case KO_RELU: case KO_SIGN: case KO_ADD: case KO_SUB: case KO_MUL: case KO_MAX:
  case KO_MIN: case KO_CLIP:
    if (kn_is_int(t)) return a == t ? NULL : "integer arithmetic on mixed dtypes";
    /* fall through */
  default: return kn_is_flt(t) && a == t ? NULL : "float arithmetic on mixed or non-float dtypes";
  }
}

dvm_status kn_verify(const KnKernel *kk, Err *err) {
  const Kernel *k = kk->k;
  const Graph *g = kk->p->g;
  if (!kk->ok || k->kind == KK_EXTERN) return DVM_OK;
  if (!kk->ins) return ir_err(err, DVM_ERR_RUNTIME, "internal: a covered kernel without instructions");
  if ((k->kind == KK_MIX) != (kk->product >= 0) || (kk->product >= 0 && kk->ins[kk->product].op != KO_PRODUCT))
    return ir_err(err, DVM_ERR_RUNTIME, "internal: a mix kernel without its product, or a product elsewhere");
  if (kk->stash >= 0) { /* an f32 row of the domain's shape: the exp values fit */
    if ((uint32_t)kk->stash >= k->nmembers || kk->ins[kk->stash].op != KO_SOFTMAX || kk->stash_out >= k->noutputs)
      return ir_err(err, DVM_ERR_RUNTIME, "internal: a softmax's exp row kept past the kernel's members or outputs");
    uint32_t o = fu_outputs(kk->p, k)[kk->stash_out];
    const Node *on = ir_node(g, o), *dn = ir_node(g, k->domain);
    if (on->dtype != DT_F32 || on->rank != dn->rank || memcmp(ir_shape(g, o), ir_shape(g, k->domain), dn->rank * sizeof(Dim)))
      return ir_err(err, DVM_ERR_RUNTIME, "internal: a softmax's exp row kept in an output it does not fit");
  }
  for (uint32_t m = 0; m < k->nmembers; m++) {
    uint32_t v = fu_members(kk->p, k)[m];
    const char *bad = check(g, v, &kk->ins[m]);
    if (bad)
      return ir_errl(err, DVM_ERR_RUNTIME, g->file, ir_node(g, v)->line,
                     "internal: lowered %s (%s of %s): %s", ir_s(g, ir_node(g, v)->name),
                     kn_op_name((KnOp)kk->ins[m].op), ir_dtype_name((DType)kk->ins[m].t), bad);
  }
  return DVM_OK;
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
    ir_put(&b, "  call %s: %d arguments\n", kk->ext.e->name, kk->ext.e->nparams);
    return ir_buf_done(&b);
  }
  for (uint32_t m = 0; m < k->nmembers; m++) {
    uint32_t v = fu_members(kk->p, k)[m];
    const KnIns *in = &kk->ins[m];
    int n = kn_op_arity((KnOp)in->op);
    ir_put(&b, "  %s = %s %s", ir_s(g, ir_node(g, v)->name), kn_op_name((KnOp)in->op), ir_dtype_name((DType)in->t));
    if (in->a != in->t) ir_put(&b, " <- %s", ir_dtype_name((DType)in->a));
    bool whole = n == 0 && ir_node(g, v)->nin; /* read otherwise: show what it reads */
    if (whole) n = (int)ir_node(g, v)->nin, ir_put(&b, " [");
    const char *sep = whole ? "" : " ";
    for (int i = 0; i < n; i++) {
      uint32_t u = ir_operand(g, v, (uint32_t)i);
      const Node *un = ir_node(g, u);
      const KnConst *kc = un->op == OP_LITERAL ? kn_const(kk, u) : NULL; /* a fill keeps its name */
      if (kc && !kn_is_flt((DType)kc->t)) {
        ir_put(&b, "%s%lld", i ? ", " : sep, (long long)kc->i);
      } else if (kc) {
        ir_put(&b, "%s%.9g", i ? ", " : sep, (double)kc->f);
      } else {
        ir_put(&b, "%s%s", i ? ", " : sep, ir_s(g, un->name));
      }
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
  }
  return ir_buf_done(&b);
}
