/* kernel/extern.c — an extern kernel (one `call` node, docs/extern.md) as a call plan:
 * for each C parameter of the registered function, where its value comes from in
 * kernel-ABI terms (a buffer's data, a scalar loaded from a buffer, a constant, a dim
 * parameter). The native tier (jit/extern.c) emits the call from it, the bytecode tier
 * (vm/extern.c) makes it through libffi. An extern kernel's outer extent is 1: the call
 * is never split across threads. */
#include <stdio.h>
#include <string.h>

#include "kernel.h"

static int input_of(const Partition *p, const Kernel *k, uint32_t u) {
  for (uint32_t i = 0; i < k->ninputs; i++)
    if (fu_inputs(p, k)[i] == u) return (int)i;
  return -1;
}

/* A literal operand's value as the reference executor holds it (kn_constant), in the
 * parameter's C type. */
static void literal(const Graph *g, uint32_t u, ExtType t, int64_t *bits) {
  KnConst c = kn_constant(g, u);
  if (kn_is_flt((DType)c.t)) ir_extern_scalar(t, true, c.f, 0, bits);
  else ir_extern_scalar(t, false, 0, c.i, bits);
}

bool kn_extern_plan(const Partition *p, const Kernel *k, KnExt *x, char *why, size_t n) {
  const Graph *g = p->g;
  uint32_t v = k->domain;
  if (k->kind != KK_EXTERN || ir_node(g, v)->op != OP_CALL)
    return snprintf(why, n, "internal: not an extern kernel"), false;
  const Extern *e = g->ext ? g->ext[v] : NULL;
  if (!e)
    return snprintf(why, n, "fn %s is not resolved (functions are found when a model is compiled)",
                    ir_s(g, ir_attr(g, v, AK_FN)->off)),
           false;
  ExtArg a[EXT_MAX_PARAMS];
  Err err;
  if (ir_extern_args(g, v, e, a, &err)) return snprintf(why, n, "%s", err.msg), false;
  if (k->noutputs != 1 || fu_outputs(p, k)[0] != v)
    return snprintf(why, n, "internal: an extern kernel has its call as its one output"), false;
  memset(x, 0, sizeof *x);
  x->e = e;
  x->out = k->ninputs;
  x->odt = ir_node(g, v)->dtype;
  const Attr *dims = ir_attr(g, v, AK_DIMS);
  for (int i = 0; i < e->nparams; i++) {
    ExtType t = (ExtType)e->param[i].type;
    KnExtArg *xa = &x->arg[i];
    if (a[i].src == ES_OUTPUT) {
      *xa = (KnExtArg){.kind = KX_BUF, .buf = x->out};
    } else if (a[i].src == ES_OPERAND) {
      uint32_t u = ir_operand(g, v, a[i].index);
      if (ir_node(g, u)->op == OP_LITERAL) { /* a scalar parameter (ir_extern_args) */
        xa->kind = KX_CONST;
        literal(g, u, t, &xa->bits);
        continue;
      }
      int b = input_of(p, k, u);
      if (b < 0) return snprintf(why, n, "internal: operand %u is not a kernel input", a[i].index + 1), false;
      *xa = (KnExtArg){.kind = t == ET_PTR ? KX_BUF : KX_LOAD, .dtype = ir_node(g, u)->dtype, .buf = (uint32_t)b};
    } else {
      Dim d = (Dim)g->clists.v[dims->off + a[i].index];
      int64_t c;
      if (ir_dim_is_const(g, d, &c)) {
        if (t == ET_I32 && (c < INT32_MIN || c > INT32_MAX))
          return snprintf(why, n, "dims[%u] = %lld does not fit parameter %d (i32)", a[i].index, (long long)c, i + 1),
                 false;
        xa->kind = KX_CONST;
        ir_extern_scalar(t, false, 0, c, &xa->bits);
        continue;
      }
      xa->kind = KX_DIM;
      xa->q = UINT32_MAX;
      for (uint32_t q = 0; q < k->ndims; q++)
        if (p->dims.v[k->dims + q] == d) xa->q = q;
      if (xa->q == UINT32_MAX) return snprintf(why, n, "internal: dims[%u] is not a kernel dim", a[i].index), false;
    }
  }
  return true;
}
