/* examples/embed/embed.c — dvm embedded in a server-style program: one model loaded once
 * from an ONNX file, requests of different batch sizes served by four threads at once.
 *
 *   embed MODEL.onnx [OUTDIR]
 *
 * Each request r (0 .. 15) binds every free symbol of the model to its batch size
 * 1 + 5·r mod 13, fills the inputs with values seeded by r, runs and prints a line. With
 * OUTDIR, request r's inputs and outputs are saved there as rR-NAME.npy (for checking
 * against another framework). Build it against an installed dvm:
 *
 *   cc embed.c $(pkg-config --cflags --libs dvm) -lpthread -o embed
 *
 * or with CMake (CMakeLists.txt here: find_package(dvm), target dvm::dvm). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <dvm.h>

enum { THREADS = 4, REQUESTS = 16, MAXIO = 16, MAXSYM = 8 };

static dvm_model *model;
static const char *outdir;
static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void report(int r, const char *what, const char *msg) {
  pthread_mutex_lock(&lock);
  if (msg) fprintf(stderr, "request %d: %s: %s\n", r, what, msg), failures++;
  else printf("request %d: %s\n", r, what);
  pthread_mutex_unlock(&lock);
}

static void save(int r, const char *name, const dvm_tensor *t) {
  char path[4096];
  snprintf(path, sizeof path, "%s/r%d-%s.npy", outdir, r, name);
  if (dvm_tensor_save_npy(path, t) != DVM_OK) report(r, "save", dvm_last_error());
}

/* One request: inputs for batch size n, a run, the outputs. */
static void serve(int r) {
  int64_t n = 1 + 5 * r % 13, values[MAXSYM];
  int ns = dvm_model_num_symbols(model), ni = dvm_model_num_inputs(model), no = dvm_model_num_outputs(model);
  const char *syms[MAXSYM], *names[MAXIO];
  dvm_tensor *in[MAXIO] = {0}, *out[MAXIO] = {0};
  if (ns > MAXSYM || ni > MAXIO || no > MAXIO) {
    report(r, "model", "more symbols, inputs or outputs than embed holds");
    return;
  }
  for (int s = 0; s < ns; s++) syms[s] = dvm_model_symbol_name(model, s), values[s] = n;
  const char *err = NULL;
  for (int i = 0; i < ni && !err; i++) {
    int rank;
    int64_t shape[DVM_MAX_RANK];
    names[i] = dvm_model_input_name(model, i);
    if (dvm_model_shape(model, names[i], 0, NULL, NULL, ns, syms, values, &rank, shape) != DVM_OK ||
        dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(model, names[i]), rank, shape, &in[i]) != DVM_OK)
      err = dvm_last_error();
    else
      dvm_tensor_fill_random(in[i], 1000 + (uint64_t)r * MAXIO + (uint64_t)i);
  }
  if (!err && dvm_model_run(model, ni, names, in, out) != DVM_OK) err = dvm_last_error();
  if (err) {
    report(r, "run", err);
  } else {
    char line[256];
    const dvm_tensor *y = out[0];
    snprintf(line, sizeof line, "batch %lld, %s has %lld elements, first %g", (long long)n,
             dvm_model_output_name(model, 0), (long long)dvm_tensor_numel(y),
             dvm_tensor_dtype(y) == DVM_F32 && dvm_tensor_numel(y) ? ((float *)dvm_tensor_data(out[0]))[0] : 0.0);
    report(r, line, NULL);
    for (int i = 0; outdir && i < ni; i++) save(r, names[i], in[i]);
    for (int o = 0; outdir && o < no; o++) save(r, dvm_model_output_name(model, o), out[o]);
  }
  for (int i = 0; i < MAXIO; i++) dvm_tensor_destroy(in[i]), dvm_tensor_destroy(out[i]);
}

static void *worker(void *arg) {
  for (int r = (int)(intptr_t)arg; r < REQUESTS; r += THREADS) serve(r);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: embed MODEL.onnx [OUTDIR]\n");
    return 2;
  }
  outdir = argc == 3 ? argv[2] : NULL;
  dvm_context *ctx = NULL;
  dvm_compile_options opt = {.tier = DVM_TIER_AUTO, .threads = 1}; /* the requests are the parallelism */
  if (dvm_context_create(&ctx) != DVM_OK || dvm_model_load_onnx(ctx, argv[1], &opt, &model) != DVM_OK) {
    fprintf(stderr, "embed: %s\n", dvm_last_error());
    dvm_context_destroy(ctx);
    return 1;
  }
  pthread_t th[THREADS];
  for (intptr_t t = 0; t < THREADS; t++)
    if (pthread_create(&th[t], NULL, worker, (void *)t)) return fprintf(stderr, "embed: no thread\n"), 1;
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  dvm_model_destroy(model);
  dvm_context_destroy(ctx);
  return failures ? 1 : 0;
}
