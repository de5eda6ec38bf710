/* tools/tool.h — what the pieces of the `dvm` command share: exit codes, error printing,
 * number parsing, clocks and order statistics. The command uses the public API only. */
#ifndef DVM_TOOL_H
#define DVM_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dvm.h"

enum { EXIT_ERR = 1, EXIT_USAGE = 2 };

/* Print the usage lines of the command to f. */
void tool_usage(FILE *f);
/* Print `dvm: error: ...` (plus the usage text for EXIT_USAGE) and return code. */
int tool_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the library's last error and return EXIT_ERR. */
int tool_lib_fail(void);
bool tool_parse_i64(const char *s, int64_t *out);
/* Load GRAPH: an ONNX model if the path ends in .onnx, else the text format. */
dvm_status tool_load_graph(dvm_context *ctx, const char *path, dvm_graph **out);
bool tool_is_onnx(const char *path);
double tool_now_us(void);
/* A seed for a value's random data that depends only on its name and the salt, so every
 * input gets its own values whatever the declaration order. */
uint64_t tool_name_seed(const char *name, uint64_t salt);
/* Sort v[0..n) and return its q-quantile (0.5: median) by nearest rank. */
double tool_quantile(double *v, size_t n, double q);
/* "--x V" or "--x=V": is argv[i] option `name`, and its value (NULL if missing). */
bool tool_is_opt(const char *arg, const char *name);
char *tool_opt_value(int argc, char **argv, int *i, const char *name);

/* bench.c */
int tool_bench(int argc, char **argv);
/* bench_lazy.c: `dvm bench --lazy` (no workloads: W1 W2 W3 W5; no sizes: N = 1, 64, 1024). */
int tool_bench_lazy(const char *bench_dir, const char *const *work, int nwork, const int64_t *sizes, int nsizes,
                    int threads, dvm_tier tier, double min_time_s, bool json);

/* limits.c: the machine's own limits, measured in this process with `threads` threads. */
double limit_triad_gbps(int threads, size_t bytes_per_array); /* best of several trials */
/* sgemm n^3 through OpenBLAS (dlopen'ed, OPENBLAS_CORETYPE/L2_SIZE unset first); GFLOP/s,
 * or a negative value with *why set when OpenBLAS cannot be loaded. */
double limit_sgemm_gflops(int threads, int n, const char **why);

/* peers.c */
typedef struct PeerResult {
  char name[32];
  bool ran;          /* false: skipped or failed, see note */
  bool failed;       /* the peer broke the protocol or exited non-zero */
  double median_us, p90_us;
  bool match;        /* outputs agree with dvm's */
  double max_err;    /* worst |peer - dvm| / tolerance scale over the outputs */
  char note[512];    /* skip reason, failure, or the mismatch */
} PeerResult;
/* The peers to run: the built-in ones found under bench_dir plus DVM_PEERS. */
int peers_list(const char *bench_dir, char names[][32], char cmds[][1024], int max);
/* Run one peer on the data in dir (see bench/peers/README.md) and compare its outputs with
 * dvm's (outputs[i] named out_names[i]). */
void peer_run(const char *name, const char *cmd, const char *graph, const char *dir, int threads,
              int reps, int nout, const char *const *out_names, dvm_tensor *const *outputs,
              PeerResult *r);

#endif /* DVM_TOOL_H */
