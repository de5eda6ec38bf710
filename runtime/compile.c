/* runtime/compile.c — the pipeline: one function that takes a graph from a front end to
 * the kernels a model runs, read top to bottom, the same for every caller (a model's
 * compile, `dvm dump`, and any front end to come).
 *
 *   finish     shape and dtype inference, symbol deduction, then the graph's
 *              invariants (ir_finish, ir_verify)                    dump: ir, deduce
 *   externs    every call node's function from the context's registry, checked
 *              against the node (a dump leaves unresolved calls to say so per kernel);
 *              the reference tier stops here and runs the graph op by op
 *   partition  fusion into kernels with shape-generic keys          dump: fused
 *   liveness   the last kernel that reads each value (the plans' arenas)
 *   lower      every kernel lowered for the back ends (kn_lower_all), then
 *              checked (kn_verify: in checked builds and dumps)      dump: lowered
 *   encode     bytecode for every kernel the VM covers (vm, auto)  dump: bytecode
 *   native     native code for every kernel: compiled now (llvm, and a dump's own Jit)
 *              or requested from the background compiler (auto)    dump: llvm, asm
 *
 * A dump names one stage: the pipeline runs up to it, writes that stage's text and
 * stops. The stage names are rt_stages[], and nowhere else. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../jit/jit.h"
#include "../vm/vm.h"
#include "runtime.h"

const char *const rt_stages[RT_NSTAGES] = {"ir", "deduce", "fused", "lowered", "bytecode", "llvm", "asm"};

/* Does this compile stop at stage s, and write its text? */
static bool dump_at(const Pipeline *pl, RtStage s) { return pl->dump == (int)s; }

/* Per value, the last kernel of p that reads it (its own kernel if none does); graph
 * outputs are kept (UINT32_MAX). NULL if out of memory. */
static uint32_t *liveness(const Graph *g, const Partition *p) {
  uint32_t *last = malloc((g->nodes.n + 1) * sizeof *last);
  if (!last) return NULL;
  for (uint32_t v = 0; v < g->nodes.n; v++) last[v] = 0;
  for (uint32_t i = 0; i < p->kernels.n; i++) { /* an output no kernel reads (a call's) */
    const Kernel *k = &p->kernels.v[i];
    for (uint32_t j = 0; j < k->noutputs; j++) last[fu_outputs(p, k)[j]] = i;
  }
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    const Kernel *k = &p->kernels.v[i];
    for (uint32_t j = 0; j < k->ninputs; j++) last[fu_inputs(p, k)[j]] = i;
  }
  for (uint32_t i = 0; i < g->outputs.n; i++) last[g->outputs.v[i]] = UINT32_MAX;
  return last;
}

/* `dump --stage lowered`: every kernel's members as instructions, or why it is not
 * covered. */
static char *dump_lowered(const Pipeline *pl) {
  const Partition *p = pl->part;
  Buf b = {0};
  ir_put(&b, "; %u kernels\n", p->kernels.n);
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    char *text = kn_lower_dump(pl->low[i]);
    ir_put(&b, "\n; kernel %u (%s)\n%s", i, fu_kind_name(p->kernels.v[i].kind), text);
    free(text);
  }
  return ir_buf_done(&b);
}

/* `dump --stage bytecode`: every kernel's bytecode, or the reason the VM declines it. */
static char *dump_bytecode(const Pipeline *pl) {
  const Partition *p = pl->part;
  Buf b = {0};
  int lanes;
  const char *isa = vm_isa(&lanes);
  ir_put(&b, "; %u kernels, tiles of %d lanes, interpreter for %s (%d x f32)\n", p->kernels.n, VM_T, isa, lanes);
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    ir_put(&b, "\n; kernel %u (%s): ", i, fu_kind_name(p->kernels.v[i].kind));
    if (!pl->vm[i]) {
      ir_put(&b, "not bytecode (runs on the reference path): %s\n", pl->vm_why[i]);
      continue;
    }
    char *text = vm_disasm(pl->vm[i]);
    ir_put(&b, "bytecode\n%s", text);
    free(text);
  }
  return ir_buf_done(&b);
}

/* `dump --stage llvm|asm`: every kernel's optimized module or assembly, or the reason a
 * kernel is not emitted. */
static char *dump_native(const Pipeline *pl, bool assembly) {
  const Partition *p = pl->part;
  Buf b = {0};
  ir_put(&b, "; %u kernels, target %s\n", p->kernels.n, jit_target(pl->jit));
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    const JitEntry *e = pl->entry[i];
    ir_put(&b, "\n; kernel %u (%s): ", i, fu_kind_name(p->kernels.v[i].kind));
    const char *text = assembly ? e->asm_text : e->ir;
    if (atomic_load(&e->state) == JE_READY)
      ir_put(&b, "compiled in %.2f ms\n%s", e->compile_ms,
             text ? text : "; the text was not kept (compiled before the dump, by the warm-up)\n");
    else
      ir_put(&b, "not native: %s\n", e->why);
  }
  return ir_buf_done(&b);
}

dvm_status rt_compile(Pipeline *pl, Graph *g, Err *err) {
  size_t nk;
  bool dumping = pl->dump >= 0;
  /* finish */
  if (!g->finished && ir_finish(g, err)) return err->code;
  if (dump_at(pl, RT_IR)) return pl->text = ir_dump_ir(g), DVM_OK;
  if (dump_at(pl, RT_DEDUCE)) return pl->text = ir_dump_deduce(g), DVM_OK;
  /* externs */
  if (pl->ctx || !dumping) { /* a context's functions (none without one: calls fail) */
    Err unresolved;
    if (rt_extern_resolve(pl->ctx, g, dumping ? &unresolved : err) && !dumping) return err->code;
  }
  if (pl->unfused) return DVM_OK;
  /* partition */
  if (!(pl->part = fu_partition(g, err))) return err->code;
  if (dump_at(pl, RT_FUSED)) return pl->text = fu_dump(pl->part), DVM_OK;
  nk = pl->part->kernels.n;
  /* liveness */
  if (!(pl->last = liveness(g, pl->part))) goto oom;
  /* lower, verify */
  double t0 = ir_now_us();
  pl->low = kn_lower_all(pl->part);
  for (uint32_t i = 0; (KN_CHECKED || dumping) && i < nk; i++)
    if (kn_verify(pl->low[i], err)) return err->code;
  pl->lower_us = ir_now_us() - t0;
  if (dump_at(pl, RT_LOWERED)) return pl->text = dump_lowered(pl), DVM_OK;
  /* encode */
  if (pl->encode) {
    if (!(pl->vm = calloc(nk + 1, sizeof *pl->vm))) goto oom;
    if (dumping && !(pl->vm_why = calloc(nk + 1, sizeof *pl->vm_why))) goto oom;
    char why[256];
    for (uint32_t i = 0; i < nk; i++) {
      if (!(pl->vm[i] = vm_encode(pl->low[i], why, sizeof why))) {
        if (pl->vm_why && !(pl->vm_why[i] = strdup(why))) goto oom;
        continue;
      }
      pl->vm_encodes++;
      pl->encode_us += pl->vm[i]->encode_us;
    }
  }
  if (dump_at(pl, RT_BYTECODE)) return pl->text = dump_bytecode(pl), DVM_OK;
  /* native */
  if (pl->jit) {
    if (!(pl->entry = calloc(nk + 1, sizeof *pl->entry))) goto oom;
    for (uint32_t i = 0; i < nk; i++) {
      pl->entry[i] = pl->background ? jit_request(pl->jit, pl->low[i], pl->owner)
                                    : jit_get(pl->jit, pl->low[i], dumping);
    }
  }
  if (dump_at(pl, RT_LLVM) || dump_at(pl, RT_ASM)) return pl->text = dump_native(pl, dump_at(pl, RT_ASM)), DVM_OK;
  return DVM_OK;
oom:
  return ir_err(err, DVM_ERR_NOMEM, "out of memory");
}

void rt_pipeline_free(Pipeline *pl) {
  size_t nk = pl->part ? pl->part->kernels.n : 0;
  for (size_t i = 0; pl->vm && i < nk; i++) vm_free(pl->vm[i]);
  for (size_t i = 0; pl->vm_why && i < nk; i++) free(pl->vm_why[i]);
  free(pl->vm);
  free(pl->vm_why);
  if (pl->jit) jit_release(pl->jit, pl->entry, pl->entry ? nk : 0);
  free(pl->entry);
  kn_lower_all_free(pl->low);
  free(pl->last);
  fu_free(pl->part);
  free(pl->text);
  pl->vm = NULL, pl->vm_why = NULL, pl->entry = NULL, pl->low = NULL, pl->last = NULL, pl->part = NULL, pl->text = NULL;
}

void rt_warm_up(struct Jit *j) {
  static const char text[] = "graph warm\ninput x: f32[N, 70]\ny = exp(x)\noutput y\n";
  Err err = {0};
  Graph *g = ir_parse(text, sizeof text - 1, "warm.dvm", &err);
  Pipeline pl = {.dump = -1, .jit = j};
  if (g) rt_compile(&pl, g, &err);
  rt_pipeline_free(&pl);
  ir_graph_free(g);
}
