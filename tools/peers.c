/* tools/peers.c — peers of `dvm bench --peers`: other systems run on the same data in
 * their own processes (bench/peers/README.md is the protocol). A peer prints one JSON
 * line; its outputs are compared with dvm's, elementwise, |peer − dvm| ≤ 1e-3·|dvm| +
 * 1e-4·scale with scale = max(1, RMS of dvm's output). A peer that disagrees is reported
 * as a mismatch with its error, never silently timed; one that fails is reported with
 * its stderr. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"

#define PYTHON "/usr/bin/python3"
#define PEER_SECONDS 900 /* longest a peer may take for one binding */

int peers_list(const char *bench_dir, char names[][32], char cmds[][1024], int max) {
  static const struct {
    const char *name, *script, *extra;
  } known[] = {
      {"numpy", "peers/eager.py", "--backend numpy"},
      {"torch", "peers/eager.py", "--backend torch"},
      {"onnxruntime", "peers/onnxrt.py", ""},
      {"halide", "peers/halide_peer.py", ""},
  };
  int n = 0;
  for (size_t i = 0; i < sizeof known / sizeof *known && n < max; i++) {
    char path[900];
    snprintf(path, sizeof path, "%s/%s", bench_dir, known[i].script);
    if (access(path, R_OK)) continue;
    snprintf(names[n], 32, "%s", known[i].name);
    snprintf(cmds[n], 1024, "%s '%s' %s", PYTHON, path, known[i].extra);
    n++;
  }
  /* DVM_PEERS="name=command;name2=command2" adds peers without rebuilding dvm */
  const char *env = getenv("DVM_PEERS");
  while (env && *env && n < max) {
    const char *end = strchr(env, ';'), *eq = strchr(env, '=');
    size_t len = end ? (size_t)(end - env) : strlen(env);
    if (eq && (size_t)(eq - env) < len && eq > env) {
      snprintf(names[n], 32, "%.*s", (int)(eq - env), env);
      snprintf(cmds[n], 1024, "%.*s", (int)(len - (size_t)(eq - env) - 1), eq + 1);
      n++;
    }
    env = end ? end + 1 : NULL;
  }
  return n;
}

/* The number after "key": in a flat JSON object; NAN if absent. */
static double json_num(const char *s, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(s, pat);
  if (!p) return NAN;
  p = strchr(p + strlen(pat), ':');
  return p ? strtod(p + 1, NULL) : NAN;
}

/* The string after "key": into out; false if absent. */
static bool json_str(const char *s, const char *key, char *out, size_t n) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(s, pat);
  if (!p || !(p = strchr(p + strlen(pat), ':'))) return false;
  while (*++p == ' ') {}
  if (*p != '"') return false;
  size_t k = 0;
  for (p++; *p && *p != '"' && k + 1 < n; p++) {
    if (*p == '\\' && p[1]) p++;
    out[k++] = *p;
  }
  out[k] = 0;
  return true;
}

static char *slurp(const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max, f) : 0;
  fclose(f);
  if (buf) buf[n] = 0;
  return buf;
}

/* Run `cmd ARGS...` through /bin/sh with the peer environment; stdout and stderr go to
 * files. Returns the exit status, or -1 if it could not start or died by a signal. */
static int spawn(const char *cmd, char *const *args, int threads, const char *out, const char *err) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || in < 0) _exit(127);
    dup2(in, 0), dup2(o, 1), dup2(e, 2);
    alarm(PEER_SECONDS); /* a peer that hangs is killed (SIGALRM) and reported as failed */
    char t[16];
    snprintf(t, sizeof t, "%d", threads);
    unsetenv("OPENBLAS_CORETYPE"); /* they halve OpenBLAS speed here (see the brief) */
    unsetenv("OPENBLAS_L2_SIZE");
    setenv("OPENBLAS_NUM_THREADS", t, 1);
    setenv("OMP_NUM_THREADS", t, 1);
    setenv("HL_NUM_THREADS", t, 1);
    char script[1200];
    snprintf(script, sizeof script, "%s \"$@\"", cmd);
    char *argv[32] = {"/bin/sh", "-c", script, "peer"};
    int k = 4;
    for (int i = 0; args[i] && k < 31; i++) argv[k++] = args[i];
    argv[k] = NULL;
    execv("/bin/sh", argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Compare a peer's output with dvm's; returns the worst error in units of the tolerance
 * (<= 1 is a match), or a negative value if the shapes or dtypes differ. */
static double compare(const dvm_tensor *dvm, const dvm_tensor *peer) {
  int r = dvm_tensor_rank(dvm);
  if (r != dvm_tensor_rank(peer) || dvm_tensor_dtype(dvm) != dvm_tensor_dtype(peer) ||
      memcmp(dvm_tensor_shape(dvm), dvm_tensor_shape(peer), (size_t)r * sizeof(int64_t)))
    return -1;
  int64_t n = dvm_tensor_numel(dvm);
  double ss = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = dvm_tensor_get_f64(dvm, i);
    if (isfinite(x)) ss += x * x;
  }
  double scale = n ? sqrt(ss / (double)n) : 1;
  scale = scale > 1 ? scale : 1;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = dvm_tensor_get_f64(dvm, i), b = dvm_tensor_get_f64(peer, i);
    if (a == b || (isnan(a) && isnan(b))) continue;
    double e = fabs(a - b) / (1e-3 * fabs(a) + 1e-4 * scale);
    if (isnan(e)) e = INFINITY;
    worst = e > worst ? e : worst;
  }
  return worst;
}

void peer_run(const char *name, const char *cmd, const char *graph, const char *dir, int threads,
              int reps, int nout, const char *const *out_names, dvm_tensor *const *outputs,
              PeerResult *r) {
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  char t[16], rp[16], out[1100], err[1100];
  snprintf(t, sizeof t, "%d", threads);
  snprintf(rp, sizeof rp, "%d", reps);
  snprintf(out, sizeof out, "%s/%s.stdout", dir, name);
  snprintf(err, sizeof err, "%s/%s.stderr", dir, name);
  char *args[] = {"--graph", (char *)graph, "--dir", (char *)dir, "--threads", t, "--reps", rp,
                  "--peer-name", (char *)name, NULL};
  int status = spawn(cmd, args, threads, out, err);
  char *so = slurp(out, 1 << 16), *se = slurp(err, 1 << 16);
  const char *line = so ? strrchr(so, '{') : NULL;
  if (status != 0 || !line) {
    r->failed = true;
    const char *tail = se && strlen(se) > 300 ? se + strlen(se) - 300 : se ? se : "";
    snprintf(r->note, sizeof r->note, "peer failed (status %d): %s", status, tail);
    for (char *c = r->note; *c; c++) *c = *c == '\n' ? ' ' : *c;
    goto done;
  }
  if (json_str(line, "skip", r->note, sizeof r->note)) goto done;
  r->median_us = json_num(line, "median_us");
  r->p90_us = json_num(line, "p90_us");
  if (!(r->median_us > 0)) {
    r->failed = true;
    snprintf(r->note, sizeof r->note, "peer printed no median_us: %.200s", line);
    goto done;
  }
  r->ran = true;
  r->match = true;
  for (int i = 0; i < nout; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.%s.npy", dir, out_names[i], name);
    dvm_tensor *p = NULL;
    if (dvm_tensor_load_npy(path, &p)) {
      r->match = false;
      snprintf(r->note, sizeof r->note, "no output '%s': %s", out_names[i], dvm_last_error());
      break;
    }
    double e = compare(outputs[i], p);
    dvm_tensor_destroy(p);
    if (e < 0) {
      r->match = false;
      snprintf(r->note, sizeof r->note, "output '%s' has another dtype or shape", out_names[i]);
      break;
    }
    r->max_err = e > r->max_err ? e : r->max_err;
    if (e > 1) {
      r->match = false;
      snprintf(r->note, sizeof r->note, "output '%s' differs: %.3g x the tolerance", out_names[i], e);
    }
  }
done:
  free(so);
  free(se);
}
