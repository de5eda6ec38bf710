/* tools/dvm.c — the `dvm` command line (docs/format.md): run, dump, bench.
 *
 * Uses the public API only (include/dvm.h); `bench` lives in bench.c (with limits.c and
 * peers.c), the shared helpers in tool.c. Exit status: 0 success; 1 a graph, shape,
 * data or runtime error; 2 a usage error (a malformed command line, or a tier or stage
 * this build does not have yet). Errors go to stderr as `dvm: error: MESSAGE`, where the
 * library's message already starts with FILE:LINE when a graph line is involved. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool.h"

#define MAX_ARGS 256

/* Split NAME=VALUE in place; false if there is no '=' or an empty side. */
static bool split_kv(char *s, char **k, char **v) {
  char *eq = strchr(s, '=');
  if (!eq || eq == s || !eq[1]) return false;
  *eq = 0;
  *k = s;
  *v = eq + 1;
  return true;
}

/* ---- run ------------------------------------------------------------------------------ */

typedef struct RunArgs {
  const char *graph;
  char *sym_names[MAX_ARGS];
  int64_t sym_values[MAX_ARGS];
  int nsyms;
  char *in_names[MAX_ARGS], *in_files[MAX_ARGS];
  int nin;
  char *out_names[MAX_ARGS], *out_files[MAX_ARGS];
  int nout;
  dvm_tier tier;
  uint64_t seed;
  int64_t repeat, threads;
  bool stats, repeat_given, lazy; /* lazy: replay the graph op by op (dvm_lazy_apply) */
} RunArgs;

static int parse_tier(const char *s, dvm_tier *t) {
  static const char *const names[] = {"auto", "vm", "llvm", "ref"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) return *t = (dvm_tier)i, 0;
  return tool_fail(EXIT_USAGE, "unknown tier '%s' (auto, vm, llvm, ref)", s);
}

static int parse_run(int argc, char **argv, RunArgs *a) {
  a->repeat = 1;
  for (int i = 0; i < argc; i++) {
    char *arg = argv[i], *k, *v;
    if (!strcmp(arg, "-s") || !strcmp(arg, "-i") || !strcmp(arg, "-o")) {
      if (i + 1 >= argc) return tool_fail(EXIT_USAGE, "%s needs NAME=VALUE", arg);
      char *kv = argv[++i];
      if (!split_kv(kv, &k, &v)) return tool_fail(EXIT_USAGE, "%s needs NAME=VALUE, got '%s'", arg, kv);
      if (a->nsyms >= MAX_ARGS || a->nin >= MAX_ARGS || a->nout >= MAX_ARGS)
        return tool_fail(EXIT_USAGE, "too many %s options", arg);
      if (arg[1] == 's') {
        if (!tool_parse_i64(v, &a->sym_values[a->nsyms]))
          return tool_fail(EXIT_USAGE, "-s %s=%s: not an integer", k, v);
        a->sym_names[a->nsyms++] = k;
      } else if (arg[1] == 'i') {
        a->in_names[a->nin] = k, a->in_files[a->nin++] = v;
      } else {
        a->out_names[a->nout] = k, a->out_files[a->nout++] = v;
      }
    } else if (tool_is_opt(arg, "--tier")) {
      char *t = tool_opt_value(argc, argv, &i, "--tier");
      if (!t) return tool_fail(EXIT_USAGE, "--tier needs a value");
      if (parse_tier(t, &a->tier)) return EXIT_USAGE;
    } else if (tool_is_opt(arg, "--seed") || tool_is_opt(arg, "--repeat") || tool_is_opt(arg, "--threads")) {
      const char *name = arg[2] == 's' ? "--seed" : arg[2] == 'r' ? "--repeat" : "--threads";
      char *t = tool_opt_value(argc, argv, &i, name);
      int64_t x;
      if (!t || !tool_parse_i64(t, &x) || x < 0 || (name[2] == 'r' && x < 1))
        return tool_fail(EXIT_USAGE, "%s needs a %s integer", name, name[2] == 'r' ? "positive" : "non-negative");
      if (name[2] == 's') a->seed = (uint64_t)x;
      else if (name[2] == 'r') a->repeat = x, a->repeat_given = true;
      else a->threads = x;
    } else if (!strcmp(arg, "--stats")) {
      a->stats = true;
    } else if (!strcmp(arg, "--lazy")) {
      a->lazy = true;
    } else if (arg[0] == '-' && arg[1]) {
      return tool_fail(EXIT_USAGE, "unknown option '%s'", arg);
    } else if (!a->graph) {
      a->graph = arg;
    } else {
      return tool_fail(EXIT_USAGE, "unexpected argument '%s'", arg);
    }
  }
  if (!a->graph) return tool_fail(EXIT_USAGE, "run needs a GRAPH file");
  return 0;
}

static void summarize(const char *name, dvm_tensor *t) {
  int r = dvm_tensor_rank(t);
  const int64_t *s = dvm_tensor_shape(t);
  printf("%s: %s[", name, dvm_dtype_name(dvm_tensor_dtype(t)));
  for (int i = 0; i < r; i++) printf("%s%" PRId64, i ? ", " : "", s[i]);
  printf("]");
  int64_t n = dvm_tensor_numel(t);
  double sum = 0, lo = INFINITY, hi = -INFINITY, first[6];
  int nf = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = dvm_tensor_get_f64(t, i);
    sum += x;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
    if (nf < 6) first[nf++] = x;
  }
  printf(" sum=%.6g min=%.6g max=%.6g first=[", sum, n ? lo : 0, n ? hi : 0);
  for (int i = 0; i < nf; i++) printf("%s%.6g", i ? ", " : "", first[i]);
  printf("%s]\n", n > nf ? ", ..." : "");
}

/* One run of `run --lazy`: g applied to lazy values over the inputs (ins, in order) and
 * the params (lazy constants made once, pars), its outputs read into outs (new tensors
 * when `fresh`). */
static dvm_status run_lazy(dvm_context *ctx, dvm_graph *g, dvm_model *m, dvm_tensor *const *ins,
                           dvm_lazy *const *pars, dvm_tensor **outs, bool fresh) {
  int ni = dvm_model_num_inputs(m), np = dvm_model_num_params(m), no = dvm_model_num_outputs(m);
  dvm_lazy *args[2 * MAX_ARGS] = {0}, **res = calloc((size_t)no, sizeof *res);
  dvm_status st = res ? DVM_OK : DVM_ERR_NOMEM;
  for (int i = 0; i < ni && !st; i++) st = dvm_lazy_wrap(ctx, ins[i], &args[i]);
  for (int i = 0; i < np; i++) args[ni + i] = pars[i];
  if (!st) st = dvm_lazy_apply(ctx, g, ni + np, args, res);
  for (int k = 0; k < no && !st && res[k]; k++) {
    dvm_tensor *t;
    if ((st = dvm_lazy_tensor(res[k], &t))) break;
    if (fresh && (st = dvm_tensor_create(dvm_tensor_dtype(t), dvm_tensor_rank(t), dvm_tensor_shape(t), &outs[k])))
      break;
    memcpy(dvm_tensor_data(outs[k]), dvm_tensor_data(t),
           (size_t)dvm_tensor_numel(t) * dvm_dtype_size(dvm_tensor_dtype(t)));
  }
  for (int k = 0; res && k < no; k++) dvm_lazy_destroy(res[k]);
  for (int i = 0; i < ni; i++) dvm_lazy_destroy(args[i]);
  free(res);
  return st;
}

static int cmd_run(int argc, char **argv) {
  RunArgs a = {.tier = DVM_TIER_AUTO};
  int rc = parse_run(argc, argv, &a);
  if (rc) return rc;
  dvm_context *ctx = NULL;
  dvm_graph *g = NULL;
  dvm_model *m = NULL;
  dvm_tensor *given[MAX_ARGS] = {0}, *made[2 * MAX_ARGS] = {0}, **outs = NULL;
  const char *names[2 * MAX_ARGS];
  dvm_tensor *ins[2 * MAX_ARGS], *pars[2 * MAX_ARGS];
  dvm_lazy *lpars[2 * MAX_ARGS] = {0};
  int nmade = 0, nins = 0, npars = 0;
  double *times = NULL;
  rc = EXIT_ERR;
  dvm_compile_options opt = {.tier = a.tier, .threads = (int)a.threads};
  if (dvm_context_create(&ctx)) goto lib;
  if (tool_is_onnx(a.graph) && !a.lazy) { /* the model binds its initializers (or specializes) */
    if (dvm_model_load_onnx(ctx, a.graph, &opt, &m)) goto lib;
  } else if (tool_load_graph(ctx, a.graph, &g) || dvm_model_compile(ctx, g, &opt, &m)) {
    goto lib;
  }
  /* -i files: inputs or params */
  for (int i = 0; i < a.nin; i++) {
    const char *n = a.in_names[i];
    bool known = false;
    for (int k = 0; k < dvm_model_num_inputs(m); k++) known |= !strcmp(dvm_model_input_name(m, k), n);
    for (int k = 0; k < dvm_model_num_params(m); k++) known |= !strcmp(dvm_model_param_name(m, k), n);
    if (!known) {
      tool_fail(EXIT_ERR, "-i %s=%s: '%s' is not an input or param of %s", n, a.in_files[i], n, a.graph);
      goto out;
    }
    for (int k = 0; k < i; k++)
      if (!strcmp(a.in_names[k], n)) {
        tool_fail(EXIT_USAGE, "-i %s given twice", n);
        rc = EXIT_USAGE;
        goto out;
      }
    if (dvm_tensor_load_npy(a.in_files[i], &given[i])) goto lib;
  }
  /* validate -s against the files (and each other) before making any data */
  int rank;
  int64_t shape[DVM_MAX_RANK];
  const char *first_out = dvm_model_output_name(m, 0);
  if (dvm_model_shape(m, first_out, a.nin, (const char *const *)a.in_names, given, a.nsyms,
                      (const char *const *)a.sym_names, a.sym_values, &rank, shape))
    goto lib;
  /* every input and param not given: deterministic random data of the bound shape */
  int ndecl = dvm_model_num_inputs(m) + dvm_model_num_params(m);
  for (int k = 0; k < ndecl; k++) {
    bool param = k >= dvm_model_num_inputs(m);
    const char *n = param ? dvm_model_param_name(m, k - dvm_model_num_inputs(m)) : dvm_model_input_name(m, k);
    dvm_tensor *t = NULL;
    for (int i = 0; i < a.nin; i++)
      if (!strcmp(a.in_names[i], n)) t = given[i];
    if (!t && param && !g) continue; /* an ONNX initializer the model holds */
    if (!t && param) t = dvm_graph_param_value(g, n);
    if (!t) {
      if (dvm_model_shape(m, n, a.nin, (const char *const *)a.in_names, given, a.nsyms,
                          (const char *const *)a.sym_names, a.sym_values, &rank, shape) ||
          dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, n), rank, shape, &t))
        goto lib;
      dvm_tensor_fill_random(t, tool_name_seed(n, a.seed * 0x9E3779B97F4A7C15ull));
      made[nmade++] = t;
      int64_t vals[64];
      int nv;
      if (!param && dvm_model_values(m, n, a.nin, (const char *const *)a.in_names, given, a.nsyms,
                                     (const char *const *)a.sym_names, a.sym_values, vals, 64, &nv))
        goto lib;
      for (int e = 0; !param && e < nv; e++) { /* its values: dims */
        dvm_tensor_set_i64(t, e, vals[e]);
        if (dvm_tensor_get_i64(t, e) != vals[e]) {
          rc = tool_fail(EXIT_ERR, "input '%s' element %d would be %lld, which its dtype does not hold", n, e,
                         (long long)vals[e]);
          goto out;
        }
      }
    }
    if (param) {
      pars[npars++] = t;
      if (dvm_model_set_param(m, n, t)) goto lib;
    } else {
      names[nins] = n;
      ins[nins++] = t;
    }
  }
  /* -o names must be outputs */
  int nouts = dvm_model_num_outputs(m);
  for (int i = 0; i < a.nout; i++) {
    bool known = false;
    for (int k = 0; k < nouts; k++) known |= !strcmp(dvm_model_output_name(m, k), a.out_names[i]);
    if (!known) {
      tool_fail(EXIT_ERR, "-o %s=%s: '%s' is not an output of %s", a.out_names[i], a.out_files[i],
           a.out_names[i], a.graph);
      goto out;
    }
  }
  outs = calloc((size_t)nouts, sizeof *outs);
  times = malloc((size_t)a.repeat * sizeof *times);
  if (!outs || !times) {
    tool_fail(EXIT_ERR, "out of memory");
    goto out;
  }
  double first_us = 0;
  if (a.lazy) {
    dvm_lazy_options lo = {.tier = a.tier, .threads = (int)a.threads};
    if (dvm_context_set_lazy_options(ctx, &lo)) goto lib;
    for (int i = 0; i < npars; i++)
      if (dvm_lazy_wrap_const(ctx, pars[i], &lpars[i])) goto lib;
  }
  for (int64_t r = 0; r < a.repeat; r++) { /* later runs write into the first run's outputs */
    double t0 = tool_now_us();
    if (a.lazy ? run_lazy(ctx, g, m, ins, lpars, outs, r == 0)
               : r ? dvm_model_run_into(m, nins, names, ins, outs) : dvm_model_run(m, nins, names, ins, outs))
      goto lib;
    times[r] = tool_now_us() - t0;
    if (!r) first_us = times[0];
  }
  for (int i = 0; i < a.nout; i++)
    for (int k = 0; k < nouts; k++)
      if (!strcmp(dvm_model_output_name(m, k), a.out_names[i]) &&
          dvm_tensor_save_npy(a.out_files[i], outs[k]))
        goto lib;
  if (!a.nout)
    for (int k = 0; k < nouts; k++) summarize(dvm_model_output_name(m, k), outs[k]);
  double median = tool_quantile(times, (size_t)a.repeat, 0.5);
  if (a.repeat_given)
    printf("# median run %.3f us over %" PRId64 " runs (first %.3f us)\n", median, a.repeat,
           first_us);
  if (a.stats && a.lazy) {
    dvm_lazy_stats s;
    dvm_lazy_stats_get(ctx, &s);
    fprintf(stderr,
            "{\"lazy\": true, \"ops\": %" PRId64 ", \"flushes\": %" PRId64 ", \"hits\": %" PRId64
            ", \"misses\": %" PRId64 ", \"variants\": %" PRId64 ", \"evictions\": %" PRId64
            ", \"entries\": %" PRId64 ", \"bytes\": %" PRId64 ", \"run_us\": %.3f, \"first_run_us\": %.3f}\n",
            s.ops, s.flushes, s.hits, s.misses, s.variants, s.evictions, s.entries, s.bytes, median, first_us);
  } else if (a.stats) {
    dvm_stats s;
    dvm_model_stats(m, &s);
    fprintf(stderr,
            "{\"tier\": \"%s\", \"kernels\": %" PRId64 ", \"native_kernels\": %" PRId64
            ", \"cache_hits\": %" PRId64
            ", \"cache_misses\": %" PRId64 ", \"vm_encodes\": %" PRId64
            ", \"llvm_compiles\": %" PRId64 ", \"lower_us\": %.3f, \"encode_us\": %.3f, \"compile_ms\": %.3f, "
            "\"run_us\": %.3f, \"first_run_us\": %.3f, \"runs\": %" PRId64 ", \"plan_hits\": %" PRId64
            ", \"plan_misses\": %" PRId64 ", \"disk_hits\": %" PRId64 ", \"disk_misses\": %" PRId64
            ", \"disk_writes\": %" PRId64 ", \"disk_rejects\": %" PRId64 ", \"code_bytes\": %" PRId64
            ", \"code_evictions\": %" PRId64 "}\n",
            a.tier == DVM_TIER_REF ? "ref" : a.tier == DVM_TIER_LLVM ? "llvm" : a.tier == DVM_TIER_VM ? "vm" : "auto", s.kernels,
            s.native_kernels, s.cache_hits, s.cache_misses, s.vm_encodes, s.llvm_compiles, s.lower_us, s.encode_us,
            s.compile_ms, median, first_us, s.runs, s.plan_hits, s.plan_misses, s.disk_hits, s.disk_misses,
            s.disk_writes, s.disk_rejects, s.code_bytes, s.code_evictions);
  }
  rc = 0;
  goto out;
lib:
  rc = tool_lib_fail();
out:
  if (outs)
    for (int k = 0; k < dvm_model_num_outputs(m); k++) dvm_tensor_destroy(outs[k]);
  free(outs);
  free(times);
  for (int i = 0; i < npars; i++) dvm_lazy_destroy(lpars[i]);
  dvm_model_destroy(m); /* before the params it references */
  for (int i = 0; i < nmade; i++) dvm_tensor_destroy(made[i]);
  for (int i = 0; i < a.nin; i++) dvm_tensor_destroy(given[i]);
  dvm_graph_destroy(g);
  dvm_context_destroy(ctx);
  return rc;
}

/* ---- dump ----------------------------------------------------------------------------- */

static int cmd_dump(int argc, char **argv) {
  const char *graph = NULL, *stage = "ir";
  for (int i = 0; i < argc; i++) {
    if (tool_is_opt(argv[i], "--stage")) {
      if (!(stage = tool_opt_value(argc, argv, &i, "--stage"))) return tool_fail(EXIT_USAGE, "--stage needs a value");
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return tool_fail(EXIT_USAGE, "unknown option '%s'", argv[i]);
    } else if (!graph) {
      graph = argv[i];
    } else {
      return tool_fail(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
    }
  }
  if (!graph) return tool_fail(EXIT_USAGE, "dump needs a GRAPH file");
  bool known = false;
  for (int i = 0; dvm_dump_stage(i); i++) known |= !strcmp(stage, dvm_dump_stage(i));
  if (!known) { /* the stages are the library's (dvm_dump_stage) */
    char list[256] = "";
    for (int i = 0; dvm_dump_stage(i); i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", dvm_dump_stage(i));
    return tool_fail(EXIT_USAGE, "unknown stage '%s' (%s)", stage, list);
  }
  dvm_context *ctx = NULL;
  dvm_graph *g = NULL;
  int rc = 0;
  if (dvm_context_create(&ctx) || tool_load_graph(ctx, graph, &g)) {
    rc = tool_lib_fail();
  } else {
    char *text = dvm_graph_dump(g, stage);
    if (text) fputs(text, stdout);
    else rc = tool_fail(EXIT_USAGE, "%s", dvm_last_error());
    free(text);
  }
  dvm_graph_destroy(g);
  dvm_context_destroy(ctx);
  return rc;
}

/* dvm cache stats|clear [--dir DIR]: the object cache's directory and what it holds, or
 * emptied. */
static int cmd_cache(int argc, char **argv) {
  const char *what = argc > 0 ? argv[0] : NULL, *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (tool_is_opt(argv[i], "--dir")) {
      if (!(dir = tool_opt_value(argc, argv, &i, "--dir"))) return tool_fail(EXIT_USAGE, "--dir needs a directory");
    } else return tool_fail(EXIT_USAGE, "cache: unknown argument '%s'", argv[i]);
  }
  if (!what || (strcmp(what, "stats") && strcmp(what, "clear")))
    return tool_fail(EXIT_USAGE, "cache: stats or clear");
  dvm_cache_info info;
  if (dvm_cache_info_get(dir, &info)) return tool_lib_fail();
  if (!info.dir[0]) return printf("the kernel cache is off (DVM_CACHE_DIR=off)\n"), 0;
  if (!strcmp(what, "stats")) {
    printf("dir: %s\nfiles: %lld\nbytes: %lld\n", info.dir, (long long)info.files, (long long)info.bytes);
    return 0;
  }
  int64_t removed;
  if (dvm_cache_clear(dir, &removed)) return tool_lib_fail();
  printf("removed %lld files from %s\n", (long long)removed, info.dir);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return tool_fail(EXIT_USAGE, "no command");
  const char *cmd = argv[1];
  if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
  if (!strcmp(cmd, "dump")) return cmd_dump(argc - 2, argv + 2);
  if (!strcmp(cmd, "bench")) return tool_bench(argc - 2, argv + 2);
  if (!strcmp(cmd, "cache")) return cmd_cache(argc - 2, argv + 2);
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    tool_usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("dvm %d.%d\n", DVM_VERSION_MAJOR, DVM_VERSION_MINOR);
    return 0;
  }
  return tool_fail(EXIT_USAGE, "unknown command '%s'", cmd);
}
