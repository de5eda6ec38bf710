/* ir/verify.c — the invariants every later pass relies on, checked between passes.
 * A failure here is a bug in dvm, not bad input; it is reported (never ignored) with
 * the node it concerns. */
#include "ir.h"

dvm_status ir_verify(const Graph *g, Err *err) {
#define BUG(...) ir_err(err, DVM_ERR_RUNTIME, "internal: graph invariant broken: " __VA_ARGS__)
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op >= OP_COUNT) return BUG("node %u has op %u", v, n->op);
    if (n->dtype >= DT_COUNT) return BUG("node %u has dtype %u", v, n->dtype);
    if (n->rank > DVM_MAX_RANK) return BUG("node %u has rank %u", v, n->rank);
    if (n->shape + n->rank > g->shapes.n) return BUG("node %u shape out of range", v);
    for (uint32_t i = 0; i < n->nin; i++)
      if (ir_operand(g, v, i) >= v) return BUG("node %u uses value %u before it is defined", v,
                                               ir_operand(g, v, i));
    for (uint32_t i = 0; i < n->rank; i++)
      if (ir_shape(g, v)[i] >= g->dims.start.n) return BUG("node %u has a bad dim", v);
    if (n->op == OP_LITERAL && (n->rank != 0 || !ir_attr(g, v, AK_VALUE)))
      return BUG("literal %u is not a scalar with a value", v);
    if (ir_ops[n->op].arity >= 0 && n->nin != (uint32_t)ir_ops[n->op].arity)
      return BUG("node %u has %u operands", v, n->nin);
  }
  for (uint32_t i = 0; i < g->outputs.n; i++)
    if (g->outputs.v[i] >= g->nodes.n) return BUG("output %u is not a value", i);
  for (uint32_t s = 0; s < g->syms.n; s++)
    if (g->syms.v[s].parent >= g->syms.n) return BUG("symbol %u has a bad parent", s);
  return DVM_OK;
#undef BUG
}
