/* fusion/dump.c — `dvm dump --stage fused`: the partition, one block per kernel with its
 * kind, dispatch, key, iteration domain, inputs, member ops with their graph lines, and
 * materialized outputs. */
#include <stdio.h>
#include <string.h>

#include "fusion.h"

#define put ir_put

static void put_shape(Buf *b, const Graph *g, uint32_t v) {
  char s[128];
  put(b, "%s[", ir_dtype_name((DType)ir_node(g, v)->dtype));
  for (int i = 0; i < ir_node(g, v)->rank; i++)
    put(b, "%s%s", i ? ", " : "", ir_dim_str(g, ir_shape(g, v)[i], s, sizeof s));
  put(b, "]");
}

static const char *name(const Graph *g, uint32_t v) {
  const char *s = ir_s(g, ir_node(g, v)->name);
  return *s ? s : "literal";
}

char *fu_dump(const Partition *p) {
  const Graph *g = p->g;
  Buf b = {0};
  char s[128];
  put(&b, "# graph %s: %u kernels in %u dispatches\n", ir_s(g, g->name), p->kernels.n,
      p->ndispatch);
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    const Kernel *k = &p->kernels.v[i];
    put(&b, "\nkernel %u  %s  dispatch %u  key ", i, fu_kind_name(k->kind), k->dispatch);
    for (int j = 0; j < 16; j++) put(&b, "%02x", k->key[j]);
    put(&b, "\n  domain ");
    put_shape(&b, g, k->domain);
    if (k->kind == KK_ROW) {
      put(&b, " reduced over axes [");
      for (int a = 0, first = 1; a < 32; a++)
        if (k->axes & (1u << a)) put(&b, "%s%d", first ? "" : ", ", a), first = 0;
      put(&b, "]");
    }
    put(&b, "\n  dims  ");
    for (uint32_t j = 0; j < k->ndims; j++)
      put(&b, "%sd%u=%s", j ? ", " : "", j, ir_dim_str(g, p->dims.v[k->dims + j], s, sizeof s));
    if (!k->ndims) put(&b, "(none: all dims constant)");
    put(&b, "\n  in    ");
    for (uint32_t j = 0; j < k->ninputs; j++) {
      uint32_t u = fu_inputs(p, k)[j];
      put(&b, "%s%s: ", j ? ", " : "", name(g, u));
      put_shape(&b, g, u);
    }
    put(&b, "\n");
    for (uint32_t j = 0; j < k->nmembers; j++) {
      uint32_t v = fu_members(p, k)[j];
      const Node *n = ir_node(g, v);
      bool view = ir_ops[n->op].kind == OPK_LAYOUT || ir_ops[n->op].kind == OPK_CONST;
      put(&b, "  line %-4u %-14s %-12s ", n->line, name(g, v), ir_ops[n->op].name);
      put_shape(&b, g, v);
      if (view) put(&b, "  (index map)");
      if (k->kind == KK_MIX && ir_ops[n->op].kind == OPK_NORM) put(&b, "  (prologue: computed while packing a)");
      put(&b, "\n");
    }
    put(&b, "  out   ");
    for (uint32_t j = 0; j < k->noutputs; j++) put(&b, "%s%s", j ? ", " : "", name(g, fu_outputs(p, k)[j]));
    put(&b, "\n");
  }
  return ir_buf_done(&b);
}
