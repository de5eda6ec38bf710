/* tests/unit/test_lower.c — the lowered-kernel verifier catches what it promises.
 *
 * Every kernel of a few graphs (a softmax row kernel with its passes, a mix kernel with a
 * prologue, views, literals, a full) lowers to a form kn_verify accepts. Then each lowered
 * kernel is damaged one way at a time, as a bug in the lowering would damage it, and
 * kn_verify must report an internal error naming what is wrong: a program that reads a
 * member before evaluating it, a member listed twice, an operand number past the values,
 * an instruction whose dtype is not its value's, an output that is not a member, a value
 * standing for another graph value, an operand that is not the node's. After each damage
 * the kernel is restored and verifies again (the test damages a copy of the one field). */
#include <stdio.h>
#include <string.h>

#include "kernel/kernel.h"

#include "check.h"

static const char *const graphs[] = {
    "graph rows\ninput x: f32[N, 64]\ninput b: f32[64]\n"
    "a = add(x, b)\ns = softmax(a, axis=1)\nm = mul(s, 2.0)\noutput m\n",
    "graph mix\ninput x: f32[N, 64]\ninput g: f32[64]\ninput h: f32[64]\nparam w: f32[64, 32]\n"
    "n = layernorm(x, g, h, axis=1)\ny = matmul(n, w)\nr = relu(y)\noutput r\n",
    "graph views\ninput x: f32[N, 8]\ninput y: f32[8, N]\n"
    "t = transpose(y)\nz = full(shape=[N, 8], value=3.0)\ns = add(x, t)\nu = mul(s, z)\n"
    "c = reduce_sum(u, axes=[1])\noutput u, c\n",
};

/* Does kn_verify fail on kk with an internal error mentioning `what` ("": any)? */
static bool rejects(const KnKernel *kk, const char *what) {
  Err err = {0};
  dvm_status s = kn_verify(kk, &err);
  if (s == DVM_OK) return false;
  if (s != DVM_ERR_RUNTIME || !strstr(err.msg, "internal:") || !strstr(err.msg, what)) {
    printf("  unexpected message: %s\n", err.msg);
    return false;
  }
  return true;
}

static bool accepts(const KnKernel *kk) {
  Err err = {0};
  if (kn_verify(kk, &err) == DVM_OK) return true;
  printf("  rejected: %s\n", err.msg);
  return false;
}

/* A program of kk with at least two entries whose last one is a member (not a leaf). */
static KnProg *member_prog(KnKernel *kk) {
  KnProg *cand[2 + 2 * 64];
  int n = 0;
  cand[n++] = &kk->store[0], cand[n++] = &kk->store[1];
  for (uint32_t m = 0; m < kk->nmem && m < 64; m++)
    for (int i = 0; i < kk->ins[m].np; i++) cand[n++] = &kk->ins[m].prog[i];
  for (int i = 0; i < n; i++) {
    const KnProg *p = cand[i];
    if (p->n >= 2 && !KN_LEAF(kk, p->step[p->n - 1].v) && p->step[0].v != p->step[p->n - 1].v) return cand[i];
  }
  return NULL;
}

static void damage(KnKernel *kk, const char *name) {
  /* a program whose last entry (a member) comes first: it reads what it has not evaluated,
     or another member's operands are taken from the wrong reads */
  KnProg *p = member_prog(kk);
  if (p) {
    KnStep s[256];
    uint32_t n = p->n < 256 ? p->n : 256;
    memcpy(s, p->step, n * sizeof *s);
    KnStep last = s[n - 1];
    memmove(s + 1, s, (n - 1) * sizeof *s);
    s[0] = last;
    KnProg keep = *p;
    p->step = s;
    CHECK(rejects(kk, "program"), "%s: a member moved before its operands", name);
    /* the same member listed twice */
    memcpy(s, keep.step, n * sizeof *s);
    KnStep twice[257];
    memcpy(twice, s, n * sizeof *s);
    twice[n] = s[n - 1];
    p->step = twice, p->n = n + 1;
    CHECK(rejects(kk, "program"), "%s: a member listed twice", name);
    *p = keep;
  }
  for (uint32_t m = 0; m < kk->nmem; m++) {
    KnIns *in = &kk->ins[m];
    if (in->narg) { /* an operand past the kernel's values */
      uint32_t a = in->arg[0];
      in->arg[0] = kk->nval + 3;
      CHECK(rejects(kk, "operand"), "%s: member %u reads value %u of %u", name, m, in->arg[0], kk->nval);
      in->arg[0] = a;
    }
    uint8_t t = in->t; /* a result dtype that is not the value's */
    in->t = t == DT_F32 ? DT_I32 : DT_F32;
    CHECK(rejects(kk, "dtype"), "%s: member %u's dtype changed", name, m);
    in->t = t;
  }
  if (kk->nout) { /* an output that is an input */
    uint32_t o = kk->out[0];
    kk->out[0] = 0;
    CHECK(rejects(kk, "output"), "%s: output 0 is value 0, an input", name);
    kk->out[0] = o;
  }
  if (kk->nin >= 1 && kk->nval > kk->nin) { /* an input standing for a member's graph value */
    uint32_t id = kk->val[0].id;
    kk->val[0].id = kk->val[kk->nin].id;
    CHECK(rejects(kk, "not the kernel's"), "%s: value 0 names another graph value", name);
    kk->val[0].id = id;
  }
  for (uint32_t m = 0; m < kk->nmem; m++) { /* an operand swapped for another value of the same dtype */
    KnIns *in = &kk->ins[m];
    if (in->narg < 2 || in->arg[0] == in->arg[1] || kk->val[in->arg[0]].t != kk->val[in->arg[1]].t) continue;
    uint32_t a = in->arg[0];
    in->arg[0] = in->arg[1];
    CHECK(rejects(kk, ""), "%s: member %u's first operand replaced by its second", name, m);
    in->arg[0] = a;
    break;
  }
  CHECK(accepts(kk), "%s: restored", name);
}

int main(void) {
  for (size_t i = 0; i < sizeof graphs / sizeof *graphs; i++) {
    Err err = {0};
    Graph *g = ir_parse(graphs[i], strlen(graphs[i]), "t.dvm", &err);
    CHECK(g != NULL, "graph %zu parses: %s", i, err.msg);
    if (!g) continue;
    CHECK(ir_finish(g, &err) == DVM_OK, "graph %zu finishes: %s", i, err.msg);
    Partition *p = fu_partition(g, &err);
    CHECK(p != NULL, "graph %zu partitions: %s", i, err.msg);
    if (!p) {
      ir_graph_free(g);
      continue;
    }
    KnKernel **low = kn_lower_all(p);
    int covered = 0;
    for (uint32_t k = 0; low[k]; k++) {
      CHECK(accepts(low[k]), "graph %zu kernel %u verifies as lowered", i, k);
      if (!low[k]->ok || low[k]->kind == KK_EXTERN) continue;
      covered++;
      char name[32];
      snprintf(name, sizeof name, "graph %zu kernel %u", i, k);
      damage(low[k], name);
    }
    CHECK(covered > 0, "graph %zu has a covered kernel", i);
    kn_lower_all_free(low);
    fu_free(p);
    ir_graph_free(g);
  }
  return CHECK_SUMMARY();
}
