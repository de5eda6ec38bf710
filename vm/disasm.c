/* vm/disasm.c — VmCode as text (`dvm dump --stage bytecode`): the mnemonics and operand
 * kinds of vm/ops.def, one line per instruction, each program under its pass. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "enc.h"

static const char *const op_names[VM_NOPS] = {
#define VMOP(id, fmt) #id,
#include "ops.def"
#undef VMOP
};

static const char *const fold_names[] = {"sum", "max", "min", "prod", "maxord"};

static void dis_prog(Buf *b, const VmCode *c, const char *name, VmProg pr) {
  if (!pr.n) return;
  ir_put(b, "  %s:\n", name);
  for (uint32_t i = pr.start; i < pr.start + pr.n; i++) {
    const VmIns *in = &c->code[i];
    const char *f = enc_op_fmt[in->op];
    ir_put(b, "    %-9s", op_names[in->op]);
    int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
    const char *sep = " ";
    for (int k = 0; k < NF; k++) {
      switch (enc_kind((VmOp)in->op, k)) {
      case 't': case 'w': case 'u': case 'f':
        if ((k == 3 && fld[k] < 0) || (k > 3 && fld[k] == 0xff)) ir_put(b, "%s-", sep);
        else ir_put(b, "%s%s%d%s", sep, f[k < 4 ? k : 3] == 'w' ? "w" : "r", fld[k],
                    enc_kind((VmOp)in->op, k) == 'u' ? "[0]" : enc_kind((VmOp)in->op, k) == 'f' ? "[acc]" : "");
        break;
      case 's': ir_put(b, "%ss%d", sep, fld[k]); break;
      case 'n': ir_put(b, "%sbuf%d", sep, fld[k]); break;
      case 'i':
        if (in->op == VM_FOLD) ir_put(b, "%s%s", sep, fold_names[fld[k] < 5 ? fld[k] : 0]);
        else ir_put(b, "%s#%d", sep, fld[k]);
        break;
      case 'k': {
        int64_t v = c->pool[fld[k]];
        float fv;
        uint32_t bits = (uint32_t)v;
        memcpy(&fv, &bits, 4);
        if (in->op == VM_K_F32 || in->op == VM_MAXK || in->op == VM_MINK) ir_put(b, "%s%.9g", sep, (double)fv);
        else ir_put(b, "%s%lld", sep, (long long)v);
        break;
      }
      default: continue;
      }
      sep = ", ";
    }
    ir_put(b, "\n");
  }
}

char *vm_disasm(const VmCode *c) {
  if (c->mode == VMM_EXTERN) return vm_disasm_extern(c);
  static const char *const modes[] = {"rows", "cols", "mix", "gemm"};
  static const char *const posts[] = {"", " / L", " -> 1/x", " -> aux + log x", " -> 1/sqrt(x/L + eps)",
                                       " -> mean; aux = 1/sqrt(var + eps)"};
  Buf b = {0};
  ir_put(&b, "  mode %s, %u instructions, %u tile registers, %u scalar registers, encoded in %.2f us\n",
         modes[c->mode], c->ncode, c->nreg, c->nsreg, c->encode_us);
  for (uint32_t i = 0; i < c->nbase; i++) {
    const VmBase *bs = &c->base[i];
    ir_put(&b, "  s%d = offset of buf%u at the position (axes", bs->reg, bs->buf);
    for (int t = 0; t < bs->rank; t++) ir_put(&b, " %d", bs->axis[t]);
    ir_put(&b, ")\n");
  }
  for (uint32_t i = 0; i < c->npass; i++) {
    const VmPass *ps = &c->pass[i];
    char name[96];
    if (c->mode == VMM_ROWS)
      snprintf(name, sizeof name, "pass %u%s: r%d = fold %s%s", i, ps->prog.whole ? " (whole row)" : "", ps->slot,
               fold_names[ps->fold], posts[ps->post]);
    else
      snprintf(name, sizeof name, "pass %u: r%d = fold %s of r%d%s", i, ps->slot, fold_names[ps->fold], ps->src, posts[ps->post]);
    dis_prog(&b, c, name, ps->prog);
  }
  if (c->mode == VMM_MIX && c->pro_kind == 1)
    ir_put(&b, "  r%d = layernorm(buf%u, buf%u, buf%u, eps=%g) @ buf%u (tile; per row block)\n", c->mm_reg, c->pro_x,
           c->pro_g, c->pro_b, (double)c->pro_eps, c->b_buf);
  else if (c->mode == VMM_MIX && c->pro_kind == 2)
    ir_put(&b, "  r%d = rmsnorm(buf%u, buf%u, eps=%g) @ buf%u (tile; per row block)\n", c->mm_reg, c->pro_x, c->pro_g,
           (double)c->pro_eps, c->b_buf);
  else if (c->mode == VMM_MIX) ir_put(&b, "  r%d = buf%u @ buf%u (tile)\n", c->mm_reg, c->a_buf, c->b_buf);
  if (c->mode == VMM_GEMM) {
    dis_prog(&b, c, "a at k", c->prog_a);
    dis_prog(&b, c, "b at k", c->prog_b);
    ir_put(&b, "  r%d = sum over k of r%d * r%d\n", c->mm_reg, c->a_reg, c->b_reg);
  }
  dis_prog(&b, c, c->full.whole ? "full outputs (whole row)" : "full outputs", c->full);
  if (c->reduced.n > 1) dis_prog(&b, c, "reduced outputs", c->reduced);
  return ir_buf_done(&b);
}
