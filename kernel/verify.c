/* kernel/verify.c — the lowered kernel's verifier (kn_verify, kernel.h): its own
 * invariants, which the back ends rely on, then its agreement with the kernel in the graph.
 * It derives the lowering a second time, so the pipeline runs it in checked builds and
 * for dumps (docs/design.md, the pipeline). */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

/* Does member m's instruction make sense in kk: its op, its operands' count and dtypes,
 * its passes? NULL if so, else what is wrong. */
static const char *check(const KnKernel *kk, uint32_t m) {
  const KnIns *in = &kk->ins[m];
  DType t = (DType)in->t, a = (DType)in->a;
  if (in->op >= KO_COUNT) return "no instruction";
  if (t != kk->val[kk->nin + m].t) return "result dtype is not the value's";
  if ((uint32_t)kn_op_arity((KnOp)in->op) > in->narg) return "more operands than it has";
  for (uint32_t i = 0; i < in->narg; i++)
    if (in->arg[i] >= kk->nval) return "an operand the kernel has not";
  if (a != (in->narg ? kk->val[in->arg[0]].t : t)) return "first operand dtype is not the value's";
  if ((in->fill >= 0) != (in->op == KO_VIEW && in->view && in->view->kind == KV_FULL))
    return "a fill without its constant, or a constant elsewhere";
  if (in->fill >= (int32_t)kk->nconsts) return "a fill past the constants";
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

/* Does value number x of kk stand for graph value u, with its dtype and shape? */
static bool same_value(const KnKernel *kk, uint32_t x, uint32_t u) {
  const Graph *g = kk->p->g;
  if (x >= kk->nval) return false;
  const KnVal *v = &kk->val[x];
  const Node *n = ir_node(g, u);
  if (v->id != u || v->t != n->dtype || v->rank != n->rank) return false;
  for (int t = 0; t < v->rank; t++) {
    int64_t c;
    bool isc = ir_dim_is_const(g, ir_shape(g, u)[t], &c);
    KnDim d = v->dim[t];
    if (isc ? d.q >= 0 || d.c != c : d.q < 0 || (uint32_t)d.q >= kk->ndims ||
                                      kk->p->dims.v[kk->k->dims + (uint32_t)d.q] != ir_shape(g, u)[t])
      return false;
  }
  return true;
}

/* Does program p evaluate what it reads before it reads it? at: per value, the program
 * that evaluated it (stamp); below: members from here on fold after the program; last:
 * the value it must end with (UINT32_MAX: any). NULL if so, else what is wrong. */
static const char *check_prog(const KnKernel *kk, const KnProg *p, uint32_t *at, uint32_t *reads, uint32_t stamp,
                              uint32_t below, uint32_t last) {
  uint32_t sp = 0; /* the leaf reads no member has taken yet */
  for (uint32_t e = 0; e < p->n; e++) {
    KnStep s = p->step[e];
    if (s.v >= kk->nval || s.ctx > 1) return "reads a value the kernel has not";
    int m = kn_member(kk, s.v);
    if (m >= 0 && kk->ins[m].op == KO_FOLDED && (uint32_t)m >= below) return "reads a reduction not folded yet";
    if (KN_LEAF(kk, s.v)) {
      reads[sp++] = s.v, at[s.v] = stamp;
      continue;
    }
    if (at[s.v] == stamp) return "lists a member twice";
    if (s.ctx != kk->val[s.v].ctx) return "reads a member out of its alignment";
    const uint32_t *arg = kk->ins[m].arg;
    for (uint32_t i = kn_walked(kk, (uint32_t)m); i-- > 0;) /* its leaf reads on top, the last last */
      if (KN_LEAF(kk, arg[i]) ? !sp || reads[--sp] != arg[i] : at[arg[i]] != stamp)
        return "reads an operand before it is evaluated";
    at[s.v] = stamp;
  }
  if (last != UINT32_MAX && (!p->n || p->step[p->n - 1].v != last)) return "does not end with what it folds";
  return NULL;
}

/* kk's programs checked (check_prog), the stores' evaluating every output. */
static const char *check_progs(const KnKernel *kk) {
  enum { FEW = 256 };
  uint32_t few[FEW], n = kk->nval + kk->most + 1, stamp = 0;
  uint32_t *at = n <= FEW ? few : malloc(n * sizeof *at), *reads = at + kk->nval;
  if (!at) ir_oom();
  memset(at, 0, kk->nval * sizeof *at);
  const char *bad = NULL;
  for (uint32_t m = 0; m < kk->nmem && !bad; m++) {
    const KnIns *in = &kk->ins[m];
    for (int i = 0; i < in->np && !bad; i++)
      if (!in->narg) bad = "folds nothing";
      else if (!i || in->prog[i].step != in->prog[0].step || in->prog[i].n != in->prog[0].n) /* not shared */
        bad = check_prog(kk, &in->prog[i], at, reads, ++stamp, m, in->arg[0]);
  }
  for (int q = 0; q < 2 && !bad; q++) {
    bad = check_prog(kk, &kk->store[q], at, reads, ++stamp, kk->nmem, UINT32_MAX);
    for (uint32_t o = 0; o < kk->nout && !bad; o++)
      if (kk->val[kk->out[o]].full == !q && at[kk->out[o]] != stamp) bad = "does not evaluate an output it stores";
  }
  if (!bad && kk->packed && kk->pack.prologue) bad = check_prog(kk, &kk->pro, at, reads, ++stamp, kk->nmem, kk->pack.a);
  if (at != few) free(at);
  return bad;
}

/* kk's own invariants (kn_verify). */
static dvm_status verify_form(const KnKernel *kk, Err *err) {
  const char *bad;
  if (!kk->ok || kk->kind == KK_EXTERN) return DVM_OK;
  if (!kk->ins) return ir_err(err, DVM_ERR_RUNTIME, "internal: a covered kernel without instructions");
  if (kk->nval < kk->nin + kk->nmem || kk->nconsts < kk->nval - kk->nin - kk->nmem)
    return ir_err(err, DVM_ERR_RUNTIME, "internal: a lowered kernel whose counts do not add up");
  if ((kk->kind == KK_MIX) != (kk->product >= 0) || (kk->product >= 0 && kk->ins[kk->product].op != KO_PRODUCT))
    return ir_err(err, DVM_ERR_RUNTIME, "internal: a mix kernel without its product, or a product elsewhere");
  for (uint32_t o = 0; o < kk->nout; o++)
    if (kn_member(kk, kk->out[o]) < 0 || kk->val[kk->out[o]].out != (int32_t)o)
      return ir_err(err, DVM_ERR_RUNTIME, "internal: lowered output %u is not a member stored there", o);
  if (kk->stash >= 0) { /* an f32 row of the domain's shape: the exp values fit */
    if ((uint32_t)kk->stash >= kk->nmem || kk->ins[kk->stash].op != KO_SOFTMAX || kk->stash_out >= kk->nout)
      return ir_err(err, DVM_ERR_RUNTIME, "internal: a softmax's exp row kept past the kernel's members or outputs");
    const KnVal *o = &kk->val[kk->out[kk->stash_out]];
    if (o->t != DT_F32 || !o->full)
      return ir_err(err, DVM_ERR_RUNTIME, "internal: a softmax's exp row kept in an output it does not fit");
  }
  for (uint32_t m = 0; m < kk->nmem; m++)
    if ((bad = check(kk, m)))
      return ir_err(err, DVM_ERR_RUNTIME, "internal: lowered member %u (%s of %s): %s", m,
                    kn_op_name((KnOp)kk->ins[m].op), ir_dtype_name((DType)kk->ins[m].t), bad);
  if ((bad = check_progs(kk))) return ir_err(err, DVM_ERR_RUNTIME, "internal: a lowered program %s", bad);
  return DVM_OK;
}

/* kk against its kernel in the graph (kn_verify), once verify_form passed. */
static dvm_status verify_graph(const KnKernel *kk, Err *err) {
  const Kernel *k = kk->k;
  const Graph *g = kk->p->g;
  if (!kk->ok || k->kind == KK_EXTERN) return DVM_OK;
  if (kk->nin != k->ninputs || kk->nmem != k->nmembers || kk->nout != k->noutputs || kk->kind != k->kind)
    return ir_err(err, DVM_ERR_RUNTIME, "internal: a lowered kernel whose counts are not its kernel's");
  /* every value once against its graph value; operands and outputs by their numbers */
  for (uint32_t x = 0; x < kk->nval; x++) {
    uint32_t u = x < kk->nin ? fu_inputs(kk->p, k)[x] : x < kk->nin + kk->nmem ? fu_members(kk->p, k)[x - kk->nin] : kk->val[x].id;
    if (!same_value(kk, x, u) || (x >= kk->nin + kk->nmem && ir_node(g, u)->op != OP_LITERAL))
      return ir_err(err, DVM_ERR_RUNTIME, "internal: lowered value %u is not the kernel's", x);
  }
  for (uint32_t o = 0; o < kk->nout; o++)
    if (kk->val[kk->out[o]].id != fu_outputs(kk->p, k)[o])
      return ir_err(err, DVM_ERR_RUNTIME, "internal: lowered output %u is not the kernel's", o);
  for (uint32_t m = 0; m < k->nmembers; m++) {
    uint32_t v = fu_members(kk->p, k)[m];
    const KnIns *in = &kk->ins[m];
    const char *bad = NULL;
    if (in->narg != ir_node(g, v)->nin) bad = "its operands are not the node's";
    for (uint32_t i = 0; !bad && i < in->narg; i++)
      if (kk->val[in->arg[i]].id != ir_operand(g, v, i)) bad = "an operand is not the node's";
    if (!bad && (in->fill >= 0) != (ir_node(g, v)->op == OP_FULL)) bad = "a fill where the node is not a full";
    if (bad)
      return ir_errl(err, DVM_ERR_RUNTIME, g->file, ir_node(g, v)->line,
                     "internal: lowered %s (%s of %s): %s", ir_s(g, ir_node(g, v)->name),
                     kn_op_name((KnOp)in->op), ir_dtype_name((DType)in->t), bad);
  }
  return DVM_OK;
}

dvm_status kn_verify(const KnKernel *kk, Err *err) {
  return verify_form(kk, err) ? err->code : verify_graph(kk, err);
}
