// Times llm.c's CPU trainer (karpathy/llm.c, train_gpt2.c) on GPT-2 124M at a given B and T,
// for benchmarks/train_throughput.sh. This file holds no llm.c code: it is compiled against a
// checkout the user names (LLMC_DIR), whose train_gpt2.c it includes with TESTING defined (as
// llm.c's own test_gpt2.c does) and calls through its public functions:
//   gpt2_build_from_checkpoint, gpt2_forward, gpt2_zero_grad, gpt2_backward, gpt2_update.
// Weights: a GPT-2 124M checkpoint in llm.c's format (header: magic 20240326, version 3, maxT,
// V, L, NH, C, padded V; then every parameter in fp32) filled with a fixed pseudo-random
// draw (std 0.02 as GPT-2's init; LayerNorm weights 1) is written to `ckpt` first, so no
// download is needed. Tokens: a fixed pseudo-random draw in [0, V). Throughput does not
// depend on the values.
//   usage: llmc_driver B T steps ckpt
// Prints one line per step: "step S: B x T tokens in X ms"
#define TESTING
#include "train_gpt2.c"

static uint64_t driver_rng = 88172645463325252ull;
static uint32_t driver_u32(void) {  // xorshift64
  driver_rng ^= driver_rng << 13;
  driver_rng ^= driver_rng >> 7;
  driver_rng ^= driver_rng << 17;
  return (uint32_t)(driver_rng >> 32);
}

static void write_checkpoint(const char* path) {
  GPT2Config cfg = {.max_seq_len = 1024,
                    .vocab_size = 50257,
                    .padded_vocab_size = 50304,
                    .num_layers = 12,
                    .num_heads = 12,
                    .channels = 768};
  int header[256] = {0};
  header[0] = 20240326;
  header[1] = 3;
  header[2] = cfg.max_seq_len;
  header[3] = cfg.vocab_size;
  header[4] = cfg.num_layers;
  header[5] = cfg.num_heads;
  header[6] = cfg.channels;
  header[7] = cfg.padded_vocab_size;
  size_t sizes[NUM_PARAMETER_TENSORS];
  fill_in_parameter_sizes(sizes, cfg);
  FILE* f = fopenCheck(path, "wb");
  fwriteCheck(header, sizeof(int), 256, f);
  for (int t = 0; t < NUM_PARAMETER_TENSORS; ++t) {
    // tensors 2, 8, 14 are LayerNorm weights (ln1w, ln2w, lnfw): 1; biases and the rest a
    // uniform draw of std 0.02 (half-width 0.02 * sqrt(3)).
    const int ln_weight = t == 2 || t == 8 || t == 14;
    float* buf = (float*)mallocCheck(sizes[t] * sizeof(float));
    for (size_t i = 0; i < sizes[t]; ++i)
      buf[i] = ln_weight ? 1.0f : 0.0346f * ((float)driver_u32() / 4294967296.0f * 2.0f - 1.0f);
    fwriteCheck(buf, sizeof(float), sizes[t], f);
    free(buf);
  }
  fcloseCheck(f);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s B T steps checkpoint-path\n", argv[0]);
    return 2;
  }
  const int B = atoi(argv[1]), T = atoi(argv[2]), steps = atoi(argv[3]);
  write_checkpoint(argv[4]);
  GPT2 model;
  gpt2_build_from_checkpoint(&model, argv[4]);
  int* inputs = (int*)mallocCheck((size_t)B * T * sizeof(int));
  int* targets = (int*)mallocCheck((size_t)B * T * sizeof(int));
  for (int i = 0; i < B * T; ++i) {
    inputs[i] = (int)(driver_u32() % 50257u);
    targets[i] = (int)(driver_u32() % 50257u);
  }
  for (int step = 1; step <= steps; ++step) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gpt2_forward(&model, inputs, targets, B, T);
    gpt2_zero_grad(&model);
    gpt2_backward(&model);
    gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
    printf("step %d: %d x %d tokens in %.1f ms (loss %.4f)\n", step, B, T, ms, model.mean_loss);
    fflush(stdout);
  }
  gpt2_free(&model);
  free(inputs);
  free(targets);
  return 0;
}
