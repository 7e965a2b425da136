// BERT-style masked LM on WordPiece tokens (bert-base-uncased's vocabulary, 30,522 ids) with
// tensor parallelism over 2 ranks: strata prepare tokenises text with WordPiece over both ranks
// (documents end in [SEP]), the loader opens every sample with [CLS] and masks with [MASK]
// (id 103), and the masked-LM loss falls. Needs the tokenizer files (CTest fixture).
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mpi_test_util.hpp"
#include "strata/comm/mpi_communicator.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/prepare.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

// English-like paragraphs; some words split into several WordPiece pieces.
std::string paragraph(int seed) {
  static const char* words[] = {
      "the",       "river",    "mountain",  "light",   "garden",  "people",    "ancient",      "market",
      "winter",    "letter",   "window",    "silver",  "morning", "harbour",   "village",      "forest",
      "teacher",   "evening",  "kitchen",   "bridge",  "meadow",  "candle",    "thunder",      "orchard",
      "and",       "of",       "under",     "near",    "from",    "with",      "strawberries", "tokenization",
      "unaffable", "lanterns", "whispered", "shadows", "islands", "travellers"};
  std::string s;
  std::uint64_t x = std::uint64_t(seed) * 0x9E3779B97F4A7C15ull + 77;
  for (int i = 0; i < 60; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    s += words[x % 38];
    s += i % 10 == 9 ? ". " : " ";
  }
  return s;
}

}  // namespace

TEST(BertWordPiece, MaskedLmOnWordPieceTokensTrainsWithTwoTensorParallelRanks) {
  ASSERT_EQ(test::world_size(), 2);
  const std::string dir = testing::TempDir() + "/strata_bert_wordpiece";
  if (test::world_rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    for (int part = 0; part < 2; ++part) {
      std::ofstream out(dir + "/part" + std::to_string(part) + ".jsonl");
      for (int d = 0; d < 150; ++d)
        out << nlohmann::json({{"text", paragraph(part * 1000 + d)}}).dump() << "\n";
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // prepare over both ranks (each reads one file) with the WordPiece vocabulary.
  data::PrepareOptions o;
  o.inputs = {dir};
  o.output = dir + "/bert.h5";
  o.tokenizer = "bert-base-uncased";
  o.filters.min_words = 10;
  o.filters.max_top_ngram = {1, 1, 1};  // a small vocabulary repeats its bigrams
  o.filters.max_duplicate_ngram = {1, 1, 1, 1, 1, 1};
  o.quiet = true;
  o.progress_interval_s = 0;
  {
    MPI_Comm dup = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    comm::MpiCommunicator group(dup, "prepare", test::world_rank(), 120.0);
    const data::PrepareStats st = data::run_prepare(o, group);
    EXPECT_EQ(st.documents_written, 300u);
  }
  const data::TokenDataset ds(o.output);
  EXPECT_EQ(ds.info().tokenizer_name, "bert-base-uncased");
  EXPECT_EQ(ds.info().vocab_size, 30522);
  EXPECT_EQ(ds.info().eos_id, 102);  // [SEP] ends every document
  std::vector<std::int32_t> last(1);
  ds.read(ds.num_tokens() - 1, 1, last.data());
  EXPECT_EQ(last[0], 102);

  config::JobConfig j;
  j.model.name = "bert_wordpiece_tiny";
  j.model.num_layers = 2;
  j.model.d_model = 32;
  j.model.num_heads = 4;
  j.model.ffn_hidden = 64;
  j.model.vocab_size = 30522;
  j.model.max_seq_len = 32;
  j.model.attention = config::AttentionKind::bidirectional;
  j.parallel.tp = 2;
  j.parallel.micro_batch_size = 4;
  j.parallel.global_batch_size = 8;
  j.optim.lr = 3e-3;
  j.optim.warmup_steps = 0;
  j.optim.schedule = config::ScheduleKind::constant;
  j.train.steps = 30;
  j.train.seq_len = 32;
  j.train.seed = 3;
  j.train.objective = config::ObjectiveKind::masked_lm;
  j.train.out_dir = dir + "/run";
  j.train.log_interval = 100;
  j.data.source = config::DataSource::hdf5;
  j.data.datasets = {{o.output, 1.0}};
  j.data.tokenizer = "bert-base-uncased";
  j.eval.windows = 0;
  j.ckpt.save_at_end = false;
  j.hardware.threads = 1;
  j.hardware.peak_tflops = 1.0;

  // The source resolves BERT's own special tokens and opens each sample with [CLS].
  const auto source = data::make_sample_source(j.data, j.model, j.train.seq_len, j.train.seed, true);
  EXPECT_EQ(source->mask_token().mask_id, 103);
  EXPECT_EQ(source->mask_token().cls_id, 101);
  std::vector<std::int32_t> window(std::size_t(j.train.seq_len) + 1);
  source->train_window(0, window.data());
  EXPECT_EQ(window[0], 101);

  const train::TrainSummary s = train::run_training(j, MPI_COMM_WORLD);
  ASSERT_EQ(s.steps.size(), 30u);
  double first = 0, tail = 0;
  for (int i = 0; i < 3; ++i) first += s.steps[std::size_t(i)].loss / 3;
  for (int i = 27; i < 30; ++i) tail += s.steps[std::size_t(i)].loss / 3;
  EXPECT_GT(first, 9.0) << "an untrained model is near ln(30522) = 10.3";
  EXPECT_LT(tail, first - 3.0) << "masked-LM loss did not fall: first steps " << first << ", last steps "
                               << tail;
}
