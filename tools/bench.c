/* tools/bench.c — `dvm bench`: workloads × symbol bindings, timed in one process, with
 * the machine's limits and the peers side by side (docs/format.md; bench/README.md).
 *
 * For each workload the model is compiled once; then each binding of the sweep runs in
 * the same process, so `recompiles` shows whether new symbol values cost compiles. A
 * binding's timing: one first run (first_run_us), then repeated runs into preallocated
 * outputs until both min-time and 5 runs are reached (at most 1000 runs or the budget);
 * median and p90. Throughput: compulsory bytes (inputs, params, outputs once) over the
 * median, as GB/s and as % of the DRAM triad measured at the start; GFLOP/s where the
 * graph has matmuls. A binding whose run time, predicted from the previous binding's by
 * the ratio of their FLOPs (bytes where there are none), exceeds --budget is skipped with
 * a line saying so; a first run over a third of the budget is reported as the one run. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

#define MAXW 64
#define MAXSYM 8
#define MAXPEER 8

typedef enum Format { FMT_TABLE, FMT_CSV, FMT_JSON } Format;

typedef struct Sweep {
  char sym[64];
  const int64_t *v; /* --sweep's own (malloc'd, freed with the Args) or a default's */
  int n;
  bool owned;
} Sweep;

typedef struct Args {
  const char *work[MAXW];
  int nwork;
  Sweep sweep[MAXSYM];
  int nsweep;
  int threads;
  dvm_tier tier;
  Format fmt;
  bool peers;
  const char *only; /* --peers=a,b: just these */
  const char *plot;
  double budget_s, min_time_s;
  bool lazy; /* --lazy: the workloads written op by op against their graphs (bench_lazy.c) */
} Args;

typedef struct Limits {
  double dram, l2, sgemm;
  const char *sgemm_why;
} Limits;

/* ---- arguments ---------------------------------------------------------------------- */

static int parse_sweep(char *s, Sweep *sw) {
  char *eq = strchr(s, '=');
  if (!eq || eq == s || (size_t)(eq - s) >= sizeof sw->sym)
    return tool_fail(EXIT_USAGE, "--sweep needs SYM=v1,v2,..., got '%s'", s);
  snprintf(sw->sym, sizeof sw->sym, "%.*s", (int)(eq - s), s);
  size_t cap = 1;
  for (const char *q = eq + 1; *q; q++) cap += *q == ',';
  int64_t *v = malloc(cap * sizeof *v);
  if (!v) return tool_fail(EXIT_ERR, "out of memory");
  *sw = (Sweep){.v = v, .n = 0, .owned = true};
  snprintf(sw->sym, sizeof sw->sym, "%.*s", (int)(eq - s), s);
  for (char *tok = strtok(eq + 1, ","); tok; tok = strtok(NULL, ",")) {
    if (!tool_parse_i64(tok, &v[sw->n]) || v[sw->n] < 0)
      return tool_fail(EXIT_USAGE, "--sweep %s: '%s' is not a non-negative integer", sw->sym, tok);
    sw->n++;
  }
  if (!sw->n) return tool_fail(EXIT_USAGE, "--sweep %s: no values", sw->sym);
  return 0;
}

static void free_args(Args *a) {
  for (int i = 0; i < a->nsweep; i++)
    if (a->sweep[i].owned) free((void *)a->sweep[i].v);
}

static int parse_args(int argc, char **argv, Args *a) {
  *a = (Args){.threads = 1, .tier = DVM_TIER_AUTO, .budget_s = 10, .min_time_s = 0.25};
  for (int i = 0; i < argc; i++) {
    char *arg = argv[i], *v;
    if (tool_is_opt(arg, "--sweep")) {
      if (!(v = tool_opt_value(argc, argv, &i, "--sweep"))) return tool_fail(EXIT_USAGE, "--sweep needs a value");
      if (a->nsweep >= MAXSYM) return tool_fail(EXIT_USAGE, "too many --sweep options");
      if (parse_sweep(v, &a->sweep[a->nsweep++])) return EXIT_USAGE;
    } else if (tool_is_opt(arg, "--threads")) {
      int64_t t;
      if (!(v = tool_opt_value(argc, argv, &i, "--threads")) || !tool_parse_i64(v, &t) || t < 1 || t > 64)
        return tool_fail(EXIT_USAGE, "--threads needs an integer from 1 to 64");
      a->threads = (int)t;
    } else if (tool_is_opt(arg, "--tier")) {
      static const char *const names[] = {"auto", "vm", "llvm", "ref"};
      if (!(v = tool_opt_value(argc, argv, &i, "--tier"))) return tool_fail(EXIT_USAGE, "--tier needs a value");
      int k = 0;
      while (k < 4 && strcmp(v, names[k])) k++;
      if (k == 4) return tool_fail(EXIT_USAGE, "unknown tier '%s' (auto, vm, llvm, ref)", v);
      a->tier = (dvm_tier)k;
    } else if (tool_is_opt(arg, "--format")) {
      if (!(v = tool_opt_value(argc, argv, &i, "--format"))) return tool_fail(EXIT_USAGE, "--format needs a value");
      if (!strcmp(v, "table")) a->fmt = FMT_TABLE;
      else if (!strcmp(v, "csv")) a->fmt = FMT_CSV;
      else if (!strcmp(v, "json")) a->fmt = FMT_JSON;
      else return tool_fail(EXIT_USAGE, "unknown format '%s' (table, csv, json)", v);
    } else if (!strcmp(arg, "--lazy")) {
      a->lazy = true;
    } else if (!strcmp(arg, "--peers")) {
      a->peers = true;
    } else if (!strncmp(arg, "--peers=", 8)) { /* an extension: only the peers listed */
      a->peers = true;
      a->only = arg + 8;
    } else if (tool_is_opt(arg, "--plot")) {
      if (!(a->plot = tool_opt_value(argc, argv, &i, "--plot"))) return tool_fail(EXIT_USAGE, "--plot needs a directory");
    } else if (tool_is_opt(arg, "--budget") || tool_is_opt(arg, "--min-time")) {
      bool budget = arg[2] == 'b';
      char *e;
      if (!(v = tool_opt_value(argc, argv, &i, budget ? "--budget" : "--min-time")) ||
          !(strtod(v, &e) > 0) || *e)
        return tool_fail(EXIT_USAGE, "%s needs a positive number of seconds", budget ? "--budget" : "--min-time");
      *(budget ? &a->budget_s : &a->min_time_s) = strtod(v, NULL);
    } else if (arg[0] == '-' && arg[1]) {
      return tool_fail(EXIT_USAGE, "unknown option '%s'", arg);
    } else if (a->nwork < MAXW) {
      a->work[a->nwork++] = arg;
    } else {
      return tool_fail(EXIT_USAGE, "too many workloads");
    }
  }
  return 0;
}

/* ---- where things are -------------------------------------------------------------------- */

/* The bench directory: $DVM_BENCH_DIR, the source tree this dvm was built from, or
 * ../bench next to the executable. */
static void bench_dir(char *out, size_t n) {
  const char *env = getenv("DVM_BENCH_DIR");
  struct stat st;
  if (env && *env) {
    snprintf(out, n, "%s", env);
    return;
  }
#ifdef DVM_SOURCE_DIR
  snprintf(out, n, "%s/bench", DVM_SOURCE_DIR);
  if (!stat(out, &st)) return;
#endif
  char exe[1024];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[k > 0 ? k : 0] = 0;
  snprintf(out, n, "%s/../bench", dirname(exe));
}

/* A workload name (W1) or the path of a .dvm file. */
static void workload_path(const char *bdir, const char *w, char *out, size_t n) {
  struct stat st;
  if (strchr(w, '/') || strstr(w, ".dvm") || tool_is_onnx(w) || !stat(w, &st)) snprintf(out, n, "%s", w);
  else snprintf(out, n, "%s/workloads/%s.dvm", bdir, w);
}

static const char *const default_workloads[] = {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8"};

/* The default sweep of a symbol: sequence lengths S get {16, 128}; other symbols (the
 * batch) get {1, 7, 64, 333, 1024, 4096}, or {1, 7, 64} next to S (W7: N·S tokens). */
static void default_sweep(const char *sym, bool has_s, Sweep *sw) {
  static const int64_t batch[] = {1, 7, 64, 333, 1024, 4096}, seqs[] = {16, 128}, small[] = {1, 7, 64};
  *sw = (Sweep){.v = !strcmp(sym, "S") ? seqs : has_s ? small : batch, .n = !strcmp(sym, "S") ? 2 : has_s ? 3 : 6};
  snprintf(sw->sym, sizeof sw->sym, "%s", sym);
}

/* ---- output ---------------------------------------------------------------------------- */

typedef struct Row {
  const char *workload;
  char binding[256];     /* "N=64 S=16" */
  char binding_json[256];/* {"N": 64, "S": 16} */
  int64_t kernels, native;
  double encode_us, compile_ms, first_us, median_us, p90_us, gbps, pct_bw, gflops;
  int64_t recompiles, reps;
  const char *skipped;   /* non-NULL: not run, and why */
  PeerResult peer[MAXPEER];
  int npeer;
} Row;

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static void json_num(FILE *f, double x) {
  if (isfinite(x)) fprintf(f, "%.6g", x);
  else fputs("null", f);
}

static const char *tier_label(dvm_tier t) {
  return t == DVM_TIER_REF ? "ref" : t == DVM_TIER_LLVM ? "llvm" : t == DVM_TIER_VM ? "vm" : "auto";
}

static const char *executor(dvm_tier t) {
  return t == DVM_TIER_REF ? "the unfused reference executor"
         : t == DVM_TIER_LLVM ? "native kernels compiled before the first run"
         : t == DVM_TIER_VM   ? "tile bytecode only, never native code"
                              : "bytecode at once while LLVM compiles in the background, then "
                                "native kernels";
}

static void row_json(FILE *f, const Row *r, const Args *a) {
  fprintf(f, "{\"workload\": ");
  json_string(f, r->workload);
  fprintf(f, ", \"bindings\": %s, \"threads\": %d, \"tier\": \"%s\", \"executor\": \"%s\"",
          r->binding_json, a->threads, tier_label(a->tier), executor(a->tier));
  if (r->skipped) {
    fprintf(f, ", \"skipped\": ");
    json_string(f, r->skipped);
    fprintf(f, "}\n");
    return;
  }
  fprintf(f, ", \"kernels\": %lld, \"native_kernels\": %lld, \"encode_us\": ", (long long)r->kernels,
          (long long)r->native);
  json_num(f, r->encode_us);
  fprintf(f, ", \"compile_ms\": ");
  json_num(f, r->compile_ms);
  const char *keys[] = {"first_run_us", "median_us", "p90_us", "gbps", "pct_bw", "gflops"};
  double vals[] = {r->first_us, r->median_us, r->p90_us, r->gbps, r->pct_bw, r->gflops};
  for (int i = 0; i < 6; i++) fprintf(f, ", \"%s\": ", keys[i]), json_num(f, vals[i]);
  fprintf(f, ", \"recompiles\": %lld, \"reps\": %lld, \"peers\": {", (long long)r->recompiles,
          (long long)r->reps);
  for (int i = 0; i < r->npeer; i++) {
    const PeerResult *p = &r->peer[i];
    fprintf(f, "%s\"%s\": {\"median_us\": ", i ? ", " : "", p->name);
    json_num(f, p->ran ? p->median_us : NAN);
    fprintf(f, ", \"ratio\": ");
    json_num(f, p->ran ? r->median_us / p->median_us : NAN);
    fprintf(f, ", \"match\": %s", p->ran ? (p->match ? "true" : "false") : "null");
    if (p->note[0]) {
      fprintf(f, ", \"%s\": ", p->ran ? "error" : p->failed ? "failed" : "skip");
      json_string(f, p->note);
    }
    fprintf(f, "}");
  }
  fprintf(f, "}}\n");
}

static void csv_header(const Args *a, char names[][32], int npeer) {
  printf("workload,bindings,threads,tier,kernels,encode_us,compile_ms,first_run_us,median_us,"
         "p90_us,gbps,pct_bw,gflops,recompiles,reps,limit_triad_dram_gbps,limit_triad_l2_gbps,"
         "limit_sgemm_gflops");
  for (int i = 0; i < npeer; i++) printf(",%s_median_us,%s_ratio,%s_match", names[i], names[i], names[i]);
  printf("\n");
  (void)a;
}

static void csv_num(double x) {
  if (isfinite(x)) printf(",%.6g", x);
  else printf(",");
}

static void row_csv(const Row *r, const Args *a, const Limits *l) {
  printf("%s,%s,%d,%s", r->workload, r->binding, a->threads, tier_label(a->tier));
  if (r->skipped) {
    printf(",,,,,,,,,,,,,,\n");
    return;
  }
  printf(",%lld", (long long)r->kernels);
  double v[] = {r->encode_us, r->compile_ms, r->first_us, r->median_us, r->p90_us, r->gbps, r->pct_bw, r->gflops};
  for (int i = 0; i < 8; i++) csv_num(v[i]);
  printf(",%lld,%lld", (long long)r->recompiles, (long long)r->reps);
  csv_num(l->dram), csv_num(l->l2), csv_num(l->sgemm);
  for (int i = 0; i < r->npeer; i++) {
    const PeerResult *p = &r->peer[i];
    csv_num(p->ran ? p->median_us : NAN);
    csv_num(p->ran ? r->median_us / p->median_us : NAN);
    printf(",%s", p->ran ? (p->match ? "true" : "false") : "");
  }
  printf("\n");
}

/* Time in the unit that reads best. */
static const char *fmt_us(double us, char *buf) {
  if (!isfinite(us)) snprintf(buf, 16, "-");
  else if (us < 1e3) snprintf(buf, 16, "%.1fus", us);
  else if (us < 1e6) snprintf(buf, 16, "%.2fms", us / 1e3);
  else snprintf(buf, 16, "%.2fs", us / 1e6);
  return buf;
}

static void table_header(const Args *a, char names[][32], int npeer) {
  printf("\n%-10s %-14s %6s %9s %9s %9s %8s %5s %8s %4s", "workload", "binding", "kern", "first",
         "median", "p90", "GB/s", "%bw", "GFLOP/s", "rec");
  for (int i = 0; i < npeer; i++) printf("  %-20s", names[i]);
  printf("\n");
  (void)a;
}

static void row_table(const Row *r, char notes[][600], int *nnotes) {
  char b1[16], b2[16], b3[16];
  printf("%-10s %-14s", r->workload, r->binding);
  if (r->skipped) {
    printf(" skipped: %s\n", r->skipped);
    return;
  }
  char kern[24];
  snprintf(kern, sizeof kern, "%lld/%lld", (long long)r->native, (long long)r->kernels);
  printf(" %6s %9s %9s %9s %8.2f %5.1f", kern, fmt_us(r->first_us, b1),
         fmt_us(r->median_us, b2), fmt_us(r->p90_us, b3), r->gbps, r->pct_bw);
  if (isfinite(r->gflops)) printf(" %8.2f", r->gflops);
  else printf(" %8s", "-");
  printf(" %4lld", (long long)r->recompiles);
  for (int i = 0; i < r->npeer; i++) {
    const PeerResult *p = &r->peer[i];
    char cell[64];
    if (p->ran)
      snprintf(cell, sizeof cell, "%s x%.2f%s", fmt_us(p->median_us, b1), r->median_us / p->median_us,
               p->match ? "" : " MISMATCH");
    else
      snprintf(cell, sizeof cell, "%s", p->failed ? "FAILED" : "skip");
    printf("  %-20s", cell);
    if (p->note[0] && *nnotes < 64) { /* each distinct note once, under the table */
      char line[600];
      snprintf(line, sizeof line, "%s: %s", p->name, p->note);
      bool seen = false;
      for (int k = 0; k < *nnotes && !seen; k++) seen = !strcmp(notes[k], line);
      if (!seen) snprintf(notes[(*nnotes)++], 600, "%s", line);
    }
  }
  printf("\n");
}

/* ---- running ----------------------------------------------------------------------------- */

/* Write the peers' data directory: inputs and params, bindings.json, outputs.json. */
static int write_peer_dir(const char *dir, const Row *r, const dvm_model *m, int nin,
                          const char *const *in_names, dvm_tensor *const *ins, int npar,
                          const char *const *par_names, dvm_tensor *const *pars) {
  char path[1200];
  for (int i = 0; i < nin + npar; i++) {
    const char *n = i < nin ? in_names[i] : par_names[i - nin];
    snprintf(path, sizeof path, "%s/%s.npy", dir, n);
    if (dvm_tensor_save_npy(path, i < nin ? ins[i] : pars[i - nin])) return tool_lib_fail();
  }
  snprintf(path, sizeof path, "%s/bindings.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) return tool_fail(EXIT_ERR, "cannot write %s: %s", path, strerror(errno));
  fprintf(f, "%s\n", r->binding_json);
  fclose(f);
  snprintf(path, sizeof path, "%s/outputs.json", dir);
  if (!(f = fopen(path, "w"))) return tool_fail(EXIT_ERR, "cannot write %s: %s", path, strerror(errno));
  fprintf(f, "[");
  for (int i = 0; i < dvm_model_num_outputs(m); i++)
    fprintf(f, "%s\"%s\"", i ? ", " : "", dvm_model_output_name(m, i));
  fprintf(f, "]\n");
  fclose(f);
  return 0;
}

typedef struct Ctx {
  const Args *a;
  const Limits *lim;
  char bdir[1024];
  char peer_names[MAXPEER][32], peer_cmds[MAXPEER][1024];
  int npeer;
  FILE *plot;    /* JSON lines for --plot */
  char notes[64][600];
  int nnotes;
} Ctx;

/* One binding of one workload: fills r. Returns 0, or an exit code on error. */
static int run_binding(Ctx *c, dvm_model *m, const dvm_graph *g, const char *graph, const char *const *syms,
                       const int64_t *vals, int nsyms, dvm_tensor **params, int64_t compiles0,
                       bool first_binding, Row *r) {
  const Args *a = c->a;
  int nin = dvm_model_num_inputs(m), npar = dvm_model_num_params(m), nout = dvm_model_num_outputs(m);
  /* names and tensors of the inputs, params and outputs, as many as the model has */
  size_t nall = (size_t)nin + (size_t)npar + (size_t)nout + 1;
  const char **names = calloc(nall, sizeof *names);
  dvm_tensor **tens = calloc(nall, sizeof *tens);
  int rc = EXIT_ERR, rank;
  int64_t shape[DVM_MAX_RANK];
  double *times = NULL;
  if (!names || !tens) {
    free(names);
    free(tens);
    return tool_fail(EXIT_ERR, "out of memory");
  }
  const char **in_names = names, **par_names = names + nin, **out_names = names + nin + npar;
  dvm_tensor **ins = tens, **pars = tens + nin, **outs = tens + nin + npar;
  for (int i = 0; i < npar; i++) /* unbound, so the last binding's params say nothing */
    dvm_model_set_param(m, dvm_model_param_name(m, i), NULL);
  for (int i = 0; i < npar; i++) { /* params: made once, remade only if their shape changes */
    par_names[i] = dvm_model_param_name(m, i);
    if ((pars[i] = dvm_graph_param_value(g, par_names[i]))) { /* an ONNX initializer */
      if (dvm_model_set_param(m, par_names[i], pars[i])) goto lib;
      continue;
    }
    if (dvm_model_shape(m, par_names[i], 0, NULL, NULL, nsyms, syms, vals, &rank, shape)) goto lib;
    if (params[i] && (dvm_tensor_rank(params[i]) != rank ||
                      memcmp(dvm_tensor_shape(params[i]), shape, (size_t)rank * sizeof *shape)))
      dvm_tensor_destroy(params[i]), params[i] = NULL;
    if (!params[i]) {
      if (dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, par_names[i]), rank, shape, &params[i])) goto lib;
      dvm_tensor_fill_random(params[i], tool_name_seed(par_names[i], 7));
    }
    if (dvm_model_set_param(m, par_names[i], pars[i] = params[i])) goto lib;
  }
  for (int i = 0; i < nin; i++) {
    in_names[i] = dvm_model_input_name(m, i);
    if (dvm_model_shape(m, in_names[i], 0, NULL, NULL, nsyms, syms, vals, &rank, shape) ||
        dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, in_names[i]), rank, shape, &ins[i]))
      goto lib;
    dvm_tensor_fill_random(ins[i], tool_name_seed(in_names[i], 11));
    int64_t ev[64];
    int nv;
    if (dvm_model_values(m, in_names[i], 0, NULL, NULL, nsyms, syms, vals, ev, 64, &nv)) goto lib;
    for (int e = 0; e < nv; e++) { /* an input whose values are dims */
      dvm_tensor_set_i64(ins[i], e, ev[e]);
      if (dvm_tensor_get_i64(ins[i], e) != ev[e]) {
        rc = tool_fail(EXIT_ERR, "input '%s' element %d would be %lld, which its dtype does not hold", in_names[i],
                       e, (long long)ev[e]);
        goto out;
      }
    }
  }
  for (int i = 0; i < nout; i++) {
    out_names[i] = dvm_model_output_name(m, i);
    if (dvm_model_shape(m, out_names[i], nin, in_names, ins, 0, NULL, NULL, &rank, shape) ||
        dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, out_names[i]), rank, shape, &outs[i]))
      goto lib;
  }
  dvm_cost cost;
  if (dvm_model_cost(m, nin, in_names, ins, 0, NULL, NULL, &cost)) goto lib;
  double t0 = tool_now_us();
  if (dvm_model_run_into(m, nin, in_names, ins, outs)) goto lib;
  r->first_us = tool_now_us() - t0;
  dvm_model_wait(m); /* steady state: the auto tier's background compiles are done */
  dvm_stats st;
  dvm_model_stats(m, &st);
  r->kernels = st.kernels;
  r->native = st.native_kernels;
  r->recompiles = first_binding ? 0 : st.vm_encodes + st.llvm_compiles - compiles0;
  r->compile_ms = st.compile_ms; /* this model's kernels, once their compiles are done */
  r->encode_us = st.lower_us + st.encode_us; /* to bytecode: the lower and encode stages */
  /* repetitions: at least 5 and min-time, at most 1000 or the budget */
  size_t cap = 1000;
  times = malloc(cap * sizeof *times);
  if (!times) goto out;
  size_t n = 0;
  double start = tool_now_us(), budget_us = a->budget_s * 1e6;
  if (r->first_us * 3 > budget_us) {
    times[n++] = r->first_us; /* too slow to repeat within the budget: the one run */
  } else {
    while (n < cap) {
      double t1 = tool_now_us();
      if (dvm_model_run_into(m, nin, in_names, ins, outs)) goto lib;
      times[n++] = tool_now_us() - t1;
      double el = tool_now_us() - start;
      if ((n >= 5 && el >= a->min_time_s * 1e6) || el >= budget_us) break;
    }
  }
  r->reps = (int64_t)n;
  r->median_us = tool_quantile(times, n, 0.5);
  r->p90_us = tool_quantile(times, n, 0.9);
  r->gbps = cost.bytes / (r->median_us * 1e3);
  r->pct_bw = c->lim->dram > 0 ? 100.0 * r->gbps / c->lim->dram : NAN;
  r->gflops = cost.flops > 0 ? cost.flops / (r->median_us * 1e3) : NAN;
  if (a->peers && c->npeer) {
    char dir[] = "/tmp/dvm-bench-XXXXXX";
    if (!mkdtemp(dir)) {
      tool_fail(EXIT_ERR, "cannot make a temporary directory: %s", strerror(errno));
      goto out;
    }
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (write_peer_dir(dir, r, m, nin, in_names, ins, npar, par_names, pars)) {
      if (system(cmd)) { /* leftover temporary files are not worth another error */
      }
      goto out;
    }
    int reps = r->reps < 3 ? 3 : r->reps > 50 ? 50 : (int)r->reps;
    for (int i = 0; i < c->npeer; i++) {
      PeerResult *p = &r->peer[r->npeer++];
      if (tool_is_onnx(graph) && strcmp(c->peer_names[i], "onnxruntime")) { /* .dvm peers */
        *p = (PeerResult){0};
        snprintf(p->name, sizeof p->name, "%s", c->peer_names[i]);
        snprintf(p->note, sizeof p->note, "runs .dvm graphs only, not ONNX models");
        continue;
      }
      peer_run(c->peer_names[i], c->peer_cmds[i], graph, dir, a->threads, reps, nout, out_names,
               outs, p);
    }
    if (system(cmd)) { /* a leftover temporary directory is not worth failing the bench */
    }
  }
  rc = 0;
  goto out;
lib:
  rc = tool_lib_fail();
out:
  free(times);
  for (int i = 0; i < nin; i++) dvm_tensor_destroy(ins[i]);
  for (int i = 0; i < nout; i++) dvm_tensor_destroy(outs[i]);
  free(names);
  free(tens);
  return rc;
}

static void emit(Ctx *c, const Row *r) {
  if (c->a->fmt == FMT_JSON) row_json(stdout, r, c->a);
  else if (c->a->fmt == FMT_CSV) row_csv(r, c->a, c->lim);
  else row_table(r, c->notes, &c->nnotes);
  if (c->plot) row_json(c->plot, r, c->a);
  fflush(stdout);
}

static int run_workload(Ctx *c, dvm_context *ctx, const char *w) {
  const Args *a = c->a;
  char path[1100];
  workload_path(c->bdir, w, path, sizeof path);
  dvm_graph *g = NULL;
  dvm_model *m = NULL;
  dvm_tensor **params = NULL; /* the params bench makes (ONNX initializers come with g) */
  int rc = 0, npar = 0;
  dvm_compile_options opt = {.tier = a->tier, .threads = a->threads};
  if (tool_load_graph(ctx, path, &g) || dvm_model_compile(ctx, g, &opt, &m)) {
    rc = tool_lib_fail();
    goto done;
  }
  npar = dvm_model_num_params(m);
  if (!(params = calloc((size_t)npar + 1, sizeof *params))) {
    rc = tool_fail(EXIT_ERR, "out of memory");
    goto done;
  }
  /* the sweep: --sweep values for the symbols they name, defaults for the rest */
  Sweep sw[MAXSYM];
  int ns = dvm_model_num_symbols(m);
  bool has_s = false;
  for (int i = 0; i < ns; i++) has_s |= !strcmp(dvm_model_symbol_name(m, i), "S");
  if (ns > MAXSYM) ns = MAXSYM;
  for (int i = 0; i < ns; i++) {
    const char *sym = dvm_model_symbol_name(m, i);
    default_sweep(sym, has_s, &sw[i]);
    for (int k = 0; k < a->nsweep; k++)
      if (!strcmp(a->sweep[k].sym, sym)) sw[i] = a->sweep[k];
  }
  for (int k = 0; k < a->nsweep; k++) {
    bool known = false;
    for (int i = 0; i < ns; i++) known |= !strcmp(a->sweep[k].sym, sw[i].sym);
    if (!known && a->nwork == 1) {
      rc = tool_fail(EXIT_ERR, "--sweep %s: %s has no free symbol %s", a->sweep[k].sym, path, a->sweep[k].sym);
      goto done;
    }
  }
  dvm_stats st0;
  dvm_model_stats(m, &st0);
  const char *syms[MAXSYM];
  int64_t vals[MAXSYM];
  int idx[MAXSYM] = {0};
  for (int i = 0; i < ns; i++) syms[i] = sw[i].sym;
  bool first = true;
  const char *skip = NULL;
  char why[200];
  int64_t compiles0 = 0;
  dvm_cost prev = {0};
  double prev_us = 0;
  for (;;) { /* the cartesian product of the sweeps, last symbol fastest */
    Row r = {.workload = w, .encode_us = st0.lower_us + st0.encode_us, .compile_ms = st0.compile_ms};
    size_t kb = 0, kj = 0;
    kj += (size_t)snprintf(r.binding_json + kj, sizeof r.binding_json - kj, "{");
    for (int i = 0; i < ns; i++) {
      vals[i] = sw[i].v[idx[i]];
      kb += (size_t)snprintf(r.binding + kb, sizeof r.binding - kb, "%s%s=%lld", i ? " " : "", syms[i], (long long)vals[i]);
      kj += (size_t)snprintf(r.binding_json + kj, sizeof r.binding_json - kj, "%s\"%s\": %lld", i ? ", " : "", syms[i], (long long)vals[i]);
    }
    snprintf(r.binding_json + kj, sizeof r.binding_json - kj, "}");
    dvm_cost cost = {0};
    skip = NULL;
    if (!first && !dvm_model_cost(m, 0, NULL, NULL, ns, syms, vals, &cost)) {
      /* predict from the previous binding; skip what would not fit in the budget */
      double scale = prev.flops > 0 ? cost.flops / prev.flops : prev.bytes > 0 ? cost.bytes / prev.bytes : 0;
      if (prev_us * scale > a->budget_s * 1e6) {
        snprintf(why, sizeof why, "predicted %.0f s per run at this tier, over --budget %g s",
                 prev_us * scale / 1e6, a->budget_s);
        skip = why;
      }
    }
    if (skip) {
      r.skipped = skip;
    } else {
      if ((rc = run_binding(c, m, g, path, syms, vals, ns, params, compiles0, first, &r))) goto done;
      if (first) { /* compiles after the first binding are recompiles */
        dvm_stats s;
        dvm_model_stats(m, &s);
        compiles0 = s.vm_encodes + s.llvm_compiles;
      }
      first = false;
      if (dvm_model_cost(m, 0, NULL, NULL, ns, syms, vals, &prev)) prev.bytes = prev.flops = 0;
      prev_us = r.median_us;
    }
    emit(c, &r);
    int i = ns - 1;
    while (i >= 0 && ++idx[i] == sw[i].n) idx[i--] = 0;
    if (i < 0) break;
  }
done:
  dvm_model_destroy(m);
  for (int i = 0; params && i < npar; i++) dvm_tensor_destroy(params[i]);
  free(params);
  dvm_graph_destroy(g);
  return rc;
}

/* `dvm bench --eager [ARGS...]`: bench/eager.py with ARGS, by Debian's Python, with the
 * module next to this dvm (its build tree's python/) first on PYTHONPATH. */
static int bench_eager(const char *bdir, int argc, char **argv) {
  char script[1100], dir[1024], py[1100];
  snprintf(script, sizeof script, "%s/eager.py", bdir);
  ssize_t k = readlink("/proc/self/exe", dir, sizeof dir - 1);
  dir[k > 0 ? k : 0] = 0;
  snprintf(py, sizeof py, "%s/python", dirname(dir));
  struct stat st;
  if (!stat(py, &st)) {
    const char *old = getenv("PYTHONPATH");
    char path[3000];
    snprintf(path, sizeof path, "%s%s%s", py, old && *old ? ":" : "", old && *old ? old : "");
    setenv("PYTHONPATH", path, 1);
  }
  char **args = calloc((size_t)argc + 3, sizeof *args);
  if (!args) return tool_fail(EXIT_ERR, "out of memory");
  args[0] = "/usr/bin/python3", args[1] = script;
  for (int i = 0, n = 2; i < argc; i++)
    if (strcmp(argv[i], "--eager")) args[n++] = argv[i];
  fflush(stdout);
  execv(args[0], args);
  free(args);
  return tool_fail(EXIT_ERR, "--eager: cannot run /usr/bin/python3 %s: %s", script, strerror(errno));
}

static int bench(Args *a);

int tool_bench(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--eager")) {
      char bdir[1024];
      bench_dir(bdir, sizeof bdir);
      return bench_eager(bdir, argc, argv);
    }
  Args a;
  int rc = parse_args(argc, argv, &a);
  if (!rc) rc = bench(&a);
  free_args(&a);
  return rc;
}

/* `dvm bench` after its arguments: the workloads' rows, then the notes. */
static int bench(Args *pa) {
  Args a = *pa;
  int rc = 0;
  Ctx c = {.a = &a};
  bench_dir(c.bdir, sizeof c.bdir);
  if (a.lazy) {
    if (a.peers || a.plot || a.fmt == FMT_CSV || a.nsweep > 1 || (a.nsweep && strcmp(a.sweep[0].sym, "N")))
      return tool_fail(EXIT_USAGE, "--lazy takes workloads, --sweep N=..., --threads, --tier, --min-time and --format table|json");
    return tool_bench_lazy(c.bdir, a.work, a.nwork, a.nsweep ? a.sweep[0].v : NULL, a.nsweep ? a.sweep[0].n : 0,
                           a.threads, a.tier, a.min_time_s, a.fmt == FMT_JSON);
  }
  if (!a.nwork)
    for (size_t i = 0; i < sizeof default_workloads / sizeof *default_workloads; i++)
      a.work[a.nwork++] = default_workloads[i];
  for (int i = 0; i < a.nwork; i++) { /* every workload must exist before anything runs */
    char path[1100];
    struct stat st;
    workload_path(c.bdir, a.work[i], path, sizeof path);
    if (stat(path, &st)) return tool_fail(EXIT_ERR, "no workload '%s' (%s: %s)", a.work[i], path, strerror(errno));
  }
  if (a.peers) c.npeer = peers_list(c.bdir, c.peer_names, c.peer_cmds, MAXPEER);
  if (a.only) { /* keep the listed peers, in the list's order; an unknown name is an error */
    char names[MAXPEER][32], cmds[MAXPEER][1024], list[512];
    int n = 0;
    snprintf(list, sizeof list, "%s", a.only);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
      int k = 0;
      while (k < c.npeer && strcmp(c.peer_names[k], tok)) k++;
      if (k == c.npeer) return tool_fail(EXIT_USAGE, "--peers: no peer '%s' (bench/peers/README.md)", tok);
      if (n < MAXPEER) memcpy(names[n], c.peer_names[k], 32), memcpy(cmds[n], c.peer_cmds[k], 1024), n++;
    }
    memcpy(c.peer_names, names, sizeof names);
    memcpy(c.peer_cmds, cmds, sizeof cmds);
    c.npeer = n;
  }
  Limits lim = {0};
  c.lim = &lim;
  lim.dram = limit_triad_gbps(a.threads, (size_t)128 << 20);
  lim.l2 = limit_triad_gbps(a.threads, (size_t)256 << 10);
  lim.sgemm = limit_sgemm_gflops(a.threads, 1024, &lim.sgemm_why);
  if (a.plot) {
    char path[1100];
    mkdir(a.plot, 0755);
    snprintf(path, sizeof path, "%s/bench.jsonl", a.plot);
    if (!(c.plot = fopen(path, "w"))) return tool_fail(EXIT_ERR, "cannot write %s: %s", path, strerror(errno));
  }
  FILE *sinks[2] = {a.fmt == FMT_JSON ? stdout : NULL, c.plot};
  for (int k = 0; k < 2; k++) {
    if (!sinks[k]) continue;
    fprintf(sinks[k], "{\"limit\": \"triad_dram\", \"gbps\": %.3f, \"threads\": %d}\n", lim.dram, a.threads);
    fprintf(sinks[k], "{\"limit\": \"triad_l2\", \"gbps\": %.3f, \"threads\": %d}\n", lim.l2, a.threads);
    if (lim.sgemm > 0)
      fprintf(sinks[k], "{\"limit\": \"sgemm_openblas\", \"gflops\": %.3f, \"threads\": %d, \"n\": 1024}\n", lim.sgemm, a.threads);
    else
      fprintf(sinks[k], "{\"limit\": \"sgemm_openblas\", \"gflops\": null, \"skip\": \"%s\"}\n", lim.sgemm_why);
  }
  if (a.fmt == FMT_CSV) csv_header(&a, c.peer_names, c.npeer);
  if (a.fmt == FMT_TABLE) {
    printf("dvm bench: %d thread%s, tier %s (%s; kernels the codegen does not cover yet run "
           "on the kernel-level reference path; 'kern' is native/all)\n",
           a.threads, a.threads == 1 ? "" : "s", tier_label(a.tier), executor(a.tier));
    printf("machine: triad %.1f GB/s (DRAM), %.1f GB/s (L2); ", lim.dram, lim.l2);
    if (lim.sgemm > 0) printf("sgemm 1024^3 %.1f GFLOP/s (OpenBLAS)\n", lim.sgemm);
    else printf("sgemm: %s\n", lim.sgemm_why);
    if (a.peers) {
      printf("peers:");
      for (int i = 0; i < c.npeer; i++) printf(" %s", c.peer_names[i]);
      printf("%s  (cells: peer median, then dvm/peer ratio: below 1 means dvm is faster)\n",
             c.npeer ? "" : " none found");
    }
  }
  dvm_context *ctx = NULL;
  if (dvm_context_create(&ctx)) return tool_lib_fail();
  for (int i = 0; i < a.nwork && !rc; i++) {
    if (a.fmt == FMT_TABLE) table_header(&a, c.peer_names, c.npeer);
    rc = run_workload(&c, ctx, a.work[i]);
  }
  dvm_context_destroy(ctx);
  if (a.fmt == FMT_TABLE && c.nnotes) {
    printf("\nnotes:\n");
    for (int i = 0; i < c.nnotes; i++) printf("  %s\n", c.notes[i]);
  }
  if (c.plot) {
    fclose(c.plot);
    if (!rc) {
      char cmd[3300];
      snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/plot.py' '%s/bench.jsonl' '%s'", c.bdir, a.plot, a.plot);
      if (system(cmd)) rc = tool_fail(EXIT_ERR, "--plot: %s failed (needs python3-matplotlib)", cmd);
    }
  }
  return rc;
}
