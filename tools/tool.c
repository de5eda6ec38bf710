/* tools/tool.c — the helpers of tools/tool.h: error printing with the usage text, number
 * parsing, the clock, quantiles and option matching. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool.h"

/* The usage text; dump's stages are the library's (dvm_dump_stage). */
void tool_usage(FILE *f) {
  fputs("usage: dvm run GRAPH [-s SYM=INT]... [-i NAME=FILE.npy]... [-o NAME=FILE.npy]...\n"
        "                     [--tier auto|vm|llvm|ref] [--seed S] [--repeat K] [--threads T] "
        "[--stats]\n"
        "                     [--lazy]\n"
        "       dvm dump GRAPH [--stage ", f);
  for (int i = 0; dvm_dump_stage(i); i++) fprintf(f, "%s%s", i ? "|" : "", dvm_dump_stage(i));
  fputs("]\n"
        "       dvm bench [WORKLOAD...] [--sweep SYM=v1,v2,...] [--threads T] [--tier auto|vm|llvm|ref]\n"
        "                 [--format table|csv|json] [--peers] [--plot DIR] [--budget S] "
        "[--min-time S]\n"
        "       dvm bench --lazy [W1 W2 W3 W5] [--sweep N=v1,...] [--threads T] [--tier ...] [--format table|json]\n"
        "       dvm bench --eager [E1 E2 E3 E4] [--sweep N=v1,...] [--threads T] [--tier ...] [--format table|csv|json]\n"
        "       dvm cache stats|clear [--dir DIR]\n"
        "GRAPH (and a WORKLOAD path) is a .dvm file or an ONNX model (.onnx, docs/onnx.md)\n", f);
}

int tool_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dvm: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (code == EXIT_USAGE) tool_usage(stderr);
  return code;
}

int tool_lib_fail(void) {
  fprintf(stderr, "dvm: error: %s\n", dvm_last_error());
  return EXIT_ERR;
}

bool tool_parse_i64(const char *s, int64_t *out) {
  char *e;
  errno = 0;
  long long x = strtoll(s, &e, 10);
  if (!*s || *e || errno) return false;
  *out = x;
  return true;
}

bool tool_is_onnx(const char *path) {
  size_t n = strlen(path);
  return n >= 5 && !strcmp(path + n - 5, ".onnx");
}

dvm_status tool_load_graph(dvm_context *ctx, const char *path, dvm_graph **out) {
  return tool_is_onnx(path) ? dvm_graph_load_onnx(ctx, path, out) : dvm_graph_load(ctx, path, out);
}

double tool_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double tool_quantile(double *v, size_t n, double q) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_double);
  size_t k = (size_t)(q * (double)(n - 1) + 0.5);
  return v[k < n ? k : n - 1];
}

bool tool_is_opt(const char *arg, const char *name) {
  size_t n = strlen(name);
  return !strncmp(arg, name, n) && (arg[n] == 0 || arg[n] == '=');
}

char *tool_opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (*i + 1 < argc) return argv[++*i];
  return NULL;
}

uint64_t tool_name_seed(const char *name, uint64_t salt) {
  uint64_t h = 1469598103934665603ull ^ salt; /* FNV-1a, started from the salt */
  for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211ull;
  return h;
}
