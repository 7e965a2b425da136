// Training input: a SampleSource yields the window of global sample s (seq_len + 1 tokens);
// the AsyncLoader reads the next micro-batches on a background thread into preallocated
// buffers (a bounded ring of data.prefetch slots), so a step waits on I/O only when the reader
// falls behind; that wait is measured and reported per step.
//
// Sources: `synthetic` and `text` (the in-memory corpora of corpus.hpp) and `hdf5` (datasets
// from `strata prepare`, blended by weight: sampler.hpp). An HDF5 dataset must have been
// tokenised with the model's tokenizer (name and content hash, when data.tokenizer is set, else
// all datasets must agree) and its vocabulary must fit model.vocab_size; otherwise opening it
// is an error naming the file.
//
// Masked LM (masking.hpp): with LoaderOptions::masker set, the loader corrupts each sample by
// its global sample index: inputs are the first seq_len tokens of the window with BERT's
// corruption, targets the original token at chosen positions and -1 elsewhere. Without it,
// inputs are the first seq_len tokens and targets the next seq_len (causal LM).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/data/masking.hpp"

namespace strata::data {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // The seq_len + 1 tokens of global training sample `sample` into `window`. Called from the
  // loader thread only.
  virtual void train_window(std::uint64_t sample, std::int32_t* window) = 0;
  // Held-out windows (seq_len + 1 tokens), a fixed list; 0 when the source has none.
  virtual std::int64_t num_valid_windows() const { return 0; }
  virtual void valid_window(std::int64_t /*index*/, std::int32_t* /*window*/) {}
  virtual std::int64_t num_train_windows() const = 0;
  virtual std::string description() const = 0;
  // Expected epochs of each dataset after `total_samples` samples; one line per dataset, with
  // a warning where it exceeds data.max_epochs. Empty for the in-memory sources.
  virtual std::string epoch_plan(std::uint64_t /*total_samples*/) const { return {}; }

  // Masked LM: the [MASK] id and the vocabulary of the data (random replacements are drawn
  // from [0, data_vocab)). The tokenizer's "[MASK]" (or "<mask>") special token when it has
  // one, else id = the tokenizer's vocabulary size, which model.vocab_size must exceed (an
  // error naming both otherwise). Only sources made with masked_lm = true answer.
  struct MaskToken {
    std::int32_t mask_id = -1;
    std::int32_t data_vocab = 0;
    std::string origin;  // how the id was found, for the log
    // BERT's [CLS] when the tokenizer has one: every sample then starts with it (position 0)
    // and holds the window's first seq_len - 1 tokens after it. -1: none.
    std::int32_t cls_id = -1;
  };
  virtual MaskToken mask_token() const { return {}; }

  // How many of the global samples [0, n) each dataset supplied (path, count): the sampler
  // position a checkpoint records. Empty for the in-memory sources.
  virtual std::vector<std::pair<std::string, std::uint64_t>> consumed_per_dataset(std::uint64_t /*n*/) const {
    return {};
  }
  // Content hash of the tokenizer the data was tokenised with; "" when there is none.
  virtual std::string tokenizer_hash() const { return {}; }
};

// The source data.source names. seq_len is train.seq_len; windows are seq_len + 1 tokens.
// masked_lm: resolve the [MASK] id (mask_token()); the synthetic language then uses the ids
// [0, vocab_size - 1) and [MASK] is vocab_size - 1.
std::unique_ptr<SampleSource> make_sample_source(const config::DataConfig& data,
                                                 const config::ModelConfig& model, int seq_len,
                                                 std::uint64_t seed, bool masked_lm = false);

struct LoaderOptions {
  int micro_batch_size = 1;
  int seq_len = 1;
  int global_batch_size = 1;  // samples per optimizer step over all DP ranks
  int dp_size = 1, dp_rank = 0;
  int prefetch = 4;                // micro-batches read ahead
  std::uint64_t first_batch = 0;   // global batch to start at (a resumed run)
  const Masker* masker = nullptr;  // masked LM: corrupt each sample (outlives the loader)
};

// Micro-batches in order: step b, micro-batch m covers micro_batch_span(b, ..., m).
class AsyncLoader {
 public:
  AsyncLoader(SampleSource& source, const LoaderOptions& options);
  ~AsyncLoader();
  AsyncLoader(const AsyncLoader&) = delete;
  AsyncLoader& operator=(const AsyncLoader&) = delete;

  struct Batch {
    const std::int32_t* inputs;   // [micro_batch_size, seq_len]
    const std::int32_t* targets;  // [micro_batch_size, seq_len]
  };
  // The next micro-batch; blocks until it is ready. Valid until the next call.
  Batch next();
  // Milliseconds next() spent waiting since the last call to this.
  double take_wait_ms();
  // Stops and joins the reader thread (also done by the destructor). After it, the source may
  // be used from the calling thread again (e.g. for validation windows).
  void stop();

 private:
  void run();
  SampleSource& source_;
  LoaderOptions opt_;
  int accum_;
  std::size_t slot_elems_;
  std::vector<std::int32_t> buffers_;  // prefetch x (inputs, targets), allocated once
  std::vector<std::int32_t> window_;   // one window, loader thread
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t produced_ = 0, consumed_ = 0;  // micro-batches
  bool holding_ = false;                       // the consumer holds slot consumed_ - 1
  bool stop_ = false;
  std::exception_ptr error_;
  double wait_ms_ = 0;
  std::thread thread_;
};

}  // namespace strata::data
