/* vm/shapes.c — the kernel shapes as programs: the passes of row kernels and their
 * folds, the stores, the mix kernel's product and prologue, and vm_encode, which picks the
 * shape (rows, cols, mix, gemm, extern) and lays out the programs of a VmCode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"

/* What a pass folds: the kernel layer's quantities (W_*), and the VM's x - s of its
 * one-pass layernorm (FOLDSH). */
enum { Q_VALUE = W_VALUE, Q_EXP_SHIFTED = W_EXP_SHIFTED, Q_SQ_CENTERED = W_SQ_CENTERED, Q_SQ = W_SQ, Q_SHIFTED = W_ARGMAX + 1 };

/* A pass folding a quantity of value number x (the last of program pr's values) into slot
 * `slot`: rows, by a fold instruction into the slot's accumulators; cols, by the driver
 * from the program's result. */
static void add_pass(Enc *e, VmFold f, const KnProg *pr, uint32_t x, int what, int m, VmPost post, int slot, int aux,
                     float eps) {
  enc_begin(e, pr);
  int v = enc_eval(e, x);
  VmPass ps = {.fold = (uint8_t)f, .post = (uint8_t)post, .eps = eps};
  ps.slot = (uint8_t)e->vr.v[slot].phys;
  ps.aux = aux >= 0 ? (uint8_t)e->vr.v[aux].phys : 0;
  if (e->c->mode == VMM_ROWS) {
    if (what == Q_EXP_SHIFTED && m == e->stash_member) { /* exp(x - max) kept for the output pass */
      v = enc_emit(e, VM_SUBEXPU, v, e->n1[m], 0);
      enc_store(e, VM_ST_F32, v, e->stash_reg, e->stash_buf, 1);
      enc_fold(e, VM_FOLD, slot, v, -1, VMF_SUM);
    } else if (what == Q_EXP_SHIFTED) {
      enc_fold(e, VM_FOLDEXP, slot, v, e->n1[m], 0);
    } else if (what == Q_SQ) {
      enc_fold(e, VM_FOLDSQ, slot, v, -1, 0);
    } else if (what == Q_SHIFTED) {
      enc_fold(e, VM_FOLDSH, slot, v, -1, 0);
    } else {
      enc_fold(e, VM_FOLD, slot, v, -1, f);
    }
    ps.prog = enc_end_prog(e, NULL, 0);
    ps.src = ps.slot;
    vec_push_from(e->pass, e->few->pass, ps);
    return;
  }
  if (what == Q_EXP_SHIFTED) {
    v = enc_emit(e, VM_SUBEXP, v, e->n1[m], 0);
    if (m == e->stash_member) enc_store(e, VM_ST_F32, v, e->stash_reg, e->stash_buf, 1); /* kept for the output pass */
  } else if (what == Q_SQ_CENTERED) {
    v = enc_emit(e, VM_SQDEV, v, e->n1[m], 0);
  } else if (what == Q_SQ) {
    v = enc_emit(e, VM_MUL, v, v, 0);
  }
  ps.prog = enc_end_prog(e, &v, 1);
  ps.src = (uint8_t)e->vr.v[v].phys;
  vec_push_from(e->pass, e->few->pass, ps);
}

static void passes(Enc *e) {
  for (uint32_t m = 0; m < e->kk->nmem; m++) {
    const KnIns *in = &e->kk->ins[m];
    uint32_t x = in->narg ? in->arg[0] : 0;
    const KnPass *ps = in->pass;
    float eps = (float)in->eps;
    int n2;
    switch (in->op) {
    case KO_FOLDED: {
      static const char *const names[] = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod"};
      if (ps[0].what == W_ARGMAX) { /* declined by the op table before (kk->vm_why) */
        enc_fail(e, "%s is not encoded (no fold of (value, index) pairs)", "argmax");
        break;
      }
      if (in->t != DT_F32) {
        enc_fail(e, "%s of integers is not encoded (folds are f32)", ps[0].post == KP_MEAN ? "reduce_mean" : names[ps[0].f]);
        break;
      }
      int slot = enc_fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, &in->prog[0], x, ps[0].what, (int)m, (VmPost)ps[0].post, slot, -1, 0);
      e->red[m] = slot;
      break;
    }
    case KO_SOFTMAX: case KO_LOG_SOFTMAX: /* n1: the max; n2: 1 / sum, or max + log sum */
      e->n1[m] = enc_fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, &in->prog[0], x, ps[0].what, (int)m, (VmPost)ps[0].post, e->n1[m], -1, 0);
      n2 = enc_fixed_reg(e);
      add_pass(e, (VmFold)ps[1].f, &in->prog[1], x, ps[1].what, (int)m, (VmPost)ps[1].post, n2, e->n1[m], 0);
      e->n2[m] = n2;
      break;
    case KO_LAYERNORM: /* n1: the mean; n2: 1 / sqrt(var + eps) */
      e->n1[m] = enc_fixed_reg(e);
      n2 = enc_fixed_reg(e);
      if (e->c->mode == VMM_ROWS) { /* one pass (FOLDSH): the native tier's ln_stats */
        add_pass(e, VMF_SUM, &in->prog[0], x, Q_SHIFTED, (int)m, VMP_LNSHIFT, e->n1[m], n2, eps);
      } else {
        add_pass(e, (VmFold)ps[0].f, &in->prog[0], x, ps[0].what, (int)m, (VmPost)ps[0].post, e->n1[m], -1, 0);
        add_pass(e, (VmFold)ps[1].f, &in->prog[1], x, ps[1].what, (int)m, (VmPost)ps[1].post, n2, -1, eps);
      }
      e->n2[m] = n2;
      break;
    case KO_RMSNORM: /* n2: 1 / sqrt(mean square + eps) */
      n2 = enc_fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, &in->prog[0], x, ps[0].what, (int)m, (VmPost)ps[0].post, n2, -1, eps);
      e->n2[m] = n2;
      break;
    default: break;
    }
  }
}

/* The stores of the full-shaped (full) or the other (!full) outputs: their program. */
static VmProg stores(Enc *e, bool full) {
  const KnKernel *kk = e->kk;
  enc_begin(e, &kk->store[!full]);
  enum { MAXOUT = 256 };
  int vals[MAXOUT];
  for (uint32_t o = 0; o < kk->nout && o < MAXOUT; o++) /* every value first: an */
    if (kk->val[kk->out[o]].full == full)             /* output may be the stash */
      vals[o] = enc_eval(e, kk->out[o]);
  for (uint32_t o = 0; o < kk->nout; o++) {
    uint32_t v = kk->out[o];
    if (kk->val[v].full != full) continue;
    int ctx = !full && kk->val[v].ctx, inner;
    int val = o < MAXOUT ? vals[o] : enc_eval(e, v);
    int s = enc_base_reg(e, kk->nin + o, v, ctx, &inner);
    DType t = (DType)kk->val[v].t;
    enc_store(e, enc_by_dtype(t, VM_ST_F32, VM_ST_I32, VM_ST_I64, VM_ST_BOOL), val, s, kk->nin + o, inner);
  }
  return enc_end_prog(e, NULL, 0);
}

/* The code, constants, passes, bases and dims e encoded, into one block that e->c keeps
 * (VmCode.arrays); each vector freed. */
static void pack_arrays(Enc *e, EncFew *few) {
  VmCode *c = e->c;
  size_t at[5], n = 0;
#define ROOM(i, x) (at[i] = n, n += ((size_t)e->x.n * sizeof *e->x.v + 15) & ~(size_t)15)
  ROOM(0, code), ROOM(1, pool), ROOM(2, pass), ROOM(3, base), ROOM(4, dimtab);
#undef ROOM
  char *b = c->arrays = malloc(n ? n : 1);
  if (!b) ir_oom();
#define PACK(i, x, dst)                                                       \
  (memcpy(b + at[i], e->x.v, (size_t)e->x.n * sizeof *e->x.v), c->dst = (void *)(b + at[i]), \
   c->n##dst = e->x.n, vec_free_from(e->x, few->x))
  PACK(0, code, code), PACK(1, pool, pool), PACK(2, pass, pass), PACK(3, base, base), PACK(4, dimtab, dimtab);
#undef PACK
}

/* A mix kernel with a normalization prologue runs the plain mix driver on a buffer the
 * runtime fills with the prologue's value: b must be a 2-D kernel input read as it is. */
static bool prologue_ok(const KnKernel *kk) {
  if (!kk->packed || !kk->pack.prologue) return true;
  const KnIns *in = &kk->ins[kk->product];
  if (in->ta || in->tb) return false;
  uint32_t b = in->arg[1];
  return kn_input(kk, b) >= 0 && kk->val[b].rank == 2;
}

/* A prologue the mix driver computes itself, block by block (pro_kind): its x an input
 * of a's shape, its gamma and beta inputs that hold one value per column (shape [K], or
 * ones before it). Others (a per-row gamma, a broadcast column) are computed by the
 * runtime before the call. */
static void prologue_rows(Enc *e, uint32_t a) {
  const KnKernel *kk = e->kk;
  const KnVal *an = &kk->val[a];
  const KnIns *in = &kk->ins[kn_member(kk, a)];
  uint32_t nops = (uint32_t)kn_op_arity((KnOp)in->op); /* x, gamma (and beta) */
  int ib[3] = {0, 0, 0};
  for (uint32_t i = 0; i < nops; i++) {
    uint32_t u = in->arg[i];
    const KnVal *un = &kk->val[u];
    if ((ib[i] = kn_input(kk, u)) < 0 || un->t != DT_F32) return;
    if (i == 0 && un->rank != an->rank) return;
    for (int d = 0; i == 0 && d < un->rank; d++)
      if (!kn_dim_eq(un->dim[d], an->dim[d])) return;
    for (int d = 0; i > 0 && d < un->rank; d++) {
      KnDim x = un->dim[d];
      if (d + 1 == un->rank ? !kn_dim_eq(x, an->dim[an->rank - 1]) : !kn_dim_is(x, 1)) return;
    }
  }
  VmCode *c = e->c;
  c->pro_kind = in->op == KO_LAYERNORM ? 1 : 2;
  c->pro_x = (uint32_t)ib[0], c->pro_g = (uint32_t)ib[1], c->pro_b = nops == 3 ? (uint32_t)ib[2] : 0;
  c->pro_eps = (float)in->eps;
}

VmCode *vm_encode(const KnKernel *kk, char *why, size_t n) {
  double t0 = ir_now_us();
  if (!kk->ok) return snprintf(why, n, "%s", kk->why), NULL; /* the native tier's coverage */
  if (kk->vm_why) return snprintf(why, n, "%s", kk->vm_why), NULL; /* the op table's vm column */
  if (kk->kind == KK_EXTERN) { /* a call through libffi */
    VmCode *c = vm_encode_extern(kk);
    c->encode_us = ir_now_us() - t0;
    return c;
  }
  if (kk->loop == KL_MULTI) return snprintf(why, n, "a reduction over the last axis and others is not encoded"), NULL;
  if (kk->nin + kk->nout > 254) return snprintf(why, n, "more than 254 buffers"), NULL;
  if (!prologue_ok(kk)) return snprintf(why, n, "a normalization prologue with a batched or transposed b is not encoded"), NULL;
  for (uint32_t i = 0; i < kk->nmem + kk->nin; i++) { /* tiles are 32-bit lanes */
    uint32_t v = i < kk->nmem ? kk->nin + i : i - kk->nmem; /* the members, then the inputs */
    DType t = (DType)kk->val[v].t;
    if (kn_widened(t)) return snprintf(why, n, "%s values are not encoded", ir_dtype_name(t)), NULL;
  }
  VmCode *c = calloc(1, sizeof *c);
  uint32_t nm = kk->nmem;
  size_t nmem = 5 * (size_t)nm + 2 * (size_t)kk->nin + 3 * (size_t)kk->most + 1;
  int memfew[256], *mem = nmem <= 256 ? memfew : malloc(nmem * sizeof *mem);
  EncFew few;
  if (!c || !mem) ir_oom();
  int *rd = mem + 5 * nm + 2 * kk->nin; /* the reads: vregs, values, alignments */
  Enc e = {.kk = kk, .c = c, .memo = mem, .inmemo = mem + 5 * nm, .reads = rd,
           .rd = {.v = (uint32_t *)(rd + kk->most), .ctx = (uint8_t *)(rd + 2 * kk->most)}, .red = mem + nm, .n1 = mem + 2 * nm,
           .n2 = mem + 3 * nm, .mm = -1, .ns = VS_FREE, .mask = -1, .stash_member = -1, .why = why, .nwhy = n,
           .few = &few};
#define FEW(x) (e.x.v = few.x, e.x.cap = sizeof few.x / sizeof *few.x)
  FEW(tmp), FEW(vr), FEW(code), FEW(pool), FEW(pass), FEW(base), FEW(dimtab);
#undef FEW
  for (uint32_t i = 0; i < 5 * nm; i++) mem[i] = -1;
  e.r = kk->r;
  for (int d = 0; d < e.r; d++) /* dimtab[0..r) is the domain, position by position */
    vec_push_from(e.dimtab, e.few->dimtab, ((VmDim){kk->dom[d].c, kk->dom[d].q}));
  c->r = (uint8_t)e.r, c->axes = kk->axes;
  c->ninputs = kk->nin, c->noutputs = kk->nout, c->ndims = kk->ndims;
  if (kk->kind == KK_MIX) {
    const KnIns *prod = &kk->ins[kk->product];
    uint32_t a = prod->arg[0], b = prod->arg[1];
    bool ta = prod->ta, tb = prod->tb;
    int kd = enc_dim_index(&e, prod->kdim);
    c->K = e.dimtab.v[kd];
    e.mm = enc_fixed_reg(&e);
    c->mm_reg = (uint8_t)e.vr.v[e.mm].phys;
    bool pro = kk->packed && kk->pack.prologue; /* a 2-D b read as it is (prologue_ok) */
    if (kk->loop == KL_GENERAL) {
      c->mode = VMM_GEMM;
      Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK];
      Ix mi = enc_ix_s(enc_sidx(e.r - 2)), ki = enc_ix_s((Sv){VS_K, false, 0});
      for (int pass = 0; pass < 2; pass++) {
        uint32_t x = pass ? b : a;
        const KnVal *xn = &kk->val[x];
        Ix *P = pass ? Pb : Pa;
        enc_begin(&e, NULL);
        KnLayout lay; /* batch dims right-aligned with the domain's, broadcast ones at 0 */
        kn_layout(kk, x, 0, &lay);
        for (int t = 0; t + 2 < xn->rank; t++)
          P[t] = lay.axis[t] < 0 ? enc_ix_s(enc_sconst(&e, 0)) : enc_ix_s(enc_sidx(lay.axis[t]));
        Ix col = {enc_sconst(&e, 0), 1, -1};
        if (!pass && xn->rank == 1) P[0] = ki; /* a vector a ([K] @ b: one row; kn_supported) */
        else if (!pass) P[xn->rank - 2] = ta ? ki : mi, P[xn->rank - 1] = ta ? mi : ki;
        else P[xn->rank - 2] = tb ? col : ki, P[xn->rank - 1] = tb ? ki : col;
        int val = enc_view_at(&e, x, P);
        VmProg pr = enc_end_prog(&e, &val, 1);
        if (!pass) c->prog_a = pr, c->a_reg = (uint8_t)e.vr.v[val].phys;
        else c->prog_b = pr, c->b_reg = (uint8_t)e.vr.v[val].phys;
        e.vr.v[val].fixed = true; /* keep it out of later programs' way */
        e.fixed_regs |= 1ull << e.vr.v[val].phys;
      }
    } else {
      c->mode = VMM_MIX;
      /* a prologue's a: computed by the driver (prologue_rows), else by the runtime into
         the buffer after the packed one */
      c->a_buf = pro ? kk->nin + kk->nout + 1 : (uint32_t)kn_input(kk, a), c->b_buf = (uint32_t)kn_input(kk, b);
      c->has_prologue = pro, c->prologue = pro ? kk->val[a].id : 0; /* the runtime's value */
      if (pro) prologue_rows(&e, a);
      c->packed = kk->packed && kk->pack.bpre >= 0;
    }
  } else {
    c->mode = kk->loop == KL_COLS ? VMM_COLS : VMM_ROWS;
    if (c->mode == VMM_ROWS && kk->stash >= 0) { /* a softmax keeps its exp row in an f32 output's row */
      int inner;
      e.stash_member = kk->stash, e.stash_buf = kk->nin + kk->stash_out;
      e.stash_reg = enc_base_reg(&e, e.stash_buf, kk->out[kk->stash_out], 0, &inner);
    }
    passes(&e);
  }
  c->full = stores(&e, true);
  c->reduced = stores(&e, false);
  for (uint32_t i = 0; i < e.pass.n; i++) /* rows: which slots are read as tiles, from their */
    for (uint32_t q = e.pass.v[i].prog.start; q < c->reduced.start && !e.pass.v[i].splat; q++) { /* pass */
      /* on up to the reduced outputs' stores, which run at one lane (the code's last program) */
      const VmIns *in = &e.code.v[q];
      int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
      for (int f = 0; f < NF; f++)
        if ((enc_kind((VmOp)in->op, f) == 't' || enc_kind((VmOp)in->op, f) == 'w') &&
            (fld[f] == e.pass.v[i].slot || (e.pass.v[i].post == VMP_LNSHIFT && fld[f] == e.pass.v[i].aux)))
          e.pass.v[i].splat = true;
    }
  if (mem != memfew) free(mem);
  vec_free_from(e.tmp, few.tmp);
  vec_free_from(e.vr, few.vr);
  pack_arrays(&e, &few);
  c->nsreg = (uint32_t)e.ns;
  if (c->ndimtab > 256) enc_fail(&e, "%s", "the kernel has more than 256 distinct dims");
  if (e.failed) {
    vm_free(c);
    return NULL;
  }
  c->encode_us = ir_now_us() - t0;
  return c;
}

void vm_free(VmCode *c) {
  if (!c) return;
  free(c->arrays);
  free(c->ext);
  free(c);
}
